"""`centralita render`: write Asterisk's config files from the config, optionally reload them.

With several Asterisk servers (`[[asterisk]]`) whose files differ (their `agents`, or their
AMI user, port or secret), each server's set goes to a folder of its own, `DIR/<name>/`;
when they are the same, one set in DIR serves them all (docs/cluster.md).

Everything is validated and rendered in memory first; only then are the files replaced, each
atomically, with the previous version kept as `<name>.bak` (dialplan.render.write_rendered).
`--reload` then asks Asterisk over AMI (`Action: Command`, protocol doc 2.7) to reload the
dialplan, the queues, the SIP driver, voicemail, features and the manager users, logged in
(MD5 challenge) as the reload user of the manager.conf it just wrote, with the project's own
AMI code (`ami.client.run_commands`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import secrets
import sys
from pathlib import Path
from typing import Any, TextIO

from ami.client import AmiAuthError, AmiError, run_commands
from ami.protocol import AmiProtocolError
from centralita.cli import add_config_argument
from centralita.settings import (
    AsteriskSettings,
    Settings,
    is_loopback,
    load_settings,
    public_secrets,
)
from dialplan.model import Site
from dialplan.render import AsteriskAccess, reload_user, render_site, write_rendered
from dialplan.validate import ConfigError, check_secret


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `centralita render`."""
    parser = subparsers.add_parser(
        "render",
        help="write Asterisk's config files (pjsip/sip, queues, extensions, ...)",
        description="Validate the config, render every Asterisk config file, and replace the "
        "files in DIR atomically (the previous versions are kept as .bak).",
    )
    add_config_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    parser.add_argument(
        "--reload", action="store_true", help="then ask Asterisk over AMI to reload them"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    return render_to(settings, Path(args.out), reload=args.reload)


def reload_commands(settings: Settings) -> tuple[str, ...]:
    """The CLI commands that make Asterisk read the rendered files again."""
    sip = "res_pjsip.so" if settings.site.sip_driver == "pjsip" else "chan_sip.so"
    return (
        "dialplan reload",
        "module reload app_queue.so",
        f"module reload {sip}",
        "module reload app_voicemail.so",
        "module reload features",
        "manager reload",
    )


def render_to(
    settings: Settings,
    out_dir: Path,
    *,
    reload: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Render and write every file into `out_dir`; with `reload`, reload Asterisk. Exit code.

    Raises ConfigError (before anything is written) when the config cannot be rendered.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    # A phone password from the published demo would let anyone who reaches the SIP port
    # register as an agent (manager.conf listens on 127.0.0.1 only, so the AMI secret may stay).
    bind = settings.site.sip_bind
    public = [key for key in public_secrets(settings) if key.startswith(settings.site.member_table)]
    if public and not is_loopback(bind.rpartition(":")[0].strip("[]")):
        print(
            f"centralita: refusing to render: {', '.join(public)} still hold the demo's SIP "
            f"passwords, which are published with Centralita, and {settings.site.sip_driver}"
            f" would listen on {bind} (asterisk.sip_bind). Give each member their own secret "
            "(`centralita member edit EXT --new-secret` generates one; "
            "`centralita init DIR` writes a config with random ones).",
            file=err,
        )
        return 2
    targets = render_targets(settings, out_dir)
    planned = []
    for server, folder in targets:
        secret, note = ami_secret_for(settings, folder, server)
        reload_secret = reload_secret_for(settings, folder, server)
        files = render_files(settings, secret, reload_secret, server=server)
        planned.append((server, folder, files, note, reload_secret))
    # Every set rendered (and so validated) before any file is written.
    for server, folder, files, note, _ in planned:
        try:
            results = write_rendered(folder, files)
        except OSError as exc:
            print(f"centralita: cannot write into {folder}: {exc}", file=err)
            return 1
        for result in results:
            print(f"{result.status:>9}  {result.path}", file=out)
        if note:
            print(note, file=err)
        if server.ami_host not in ("127.0.0.1", "localhost", "::1"):
            key = (
                "asterisk.ami_host" if len(settings.asterisks) == 1 else f"{server.name}'s ami_host"
            )
            print(
                f"note: manager.conf lets Centralita in from 127.0.0.1 only, but {key} "
                f"is {server.ami_host}: run Centralita on the Asterisk machine",
                file=err,
            )
    if not reload:
        return 0
    code = 0
    for server, _, _, _, reload_secret in planned:
        code |= reload_asterisk(settings, reload_secret, out=out, err=err, server=server)
    return code


def one_set(settings: Settings) -> bool:
    """True when every server gets the same files: one server, or the same members, AMI
    user, port, secret and sip_bind on each (`render` then writes one set, as for one)."""
    members = {m.extension for m in settings.site.members}

    def shape(server: AsteriskSettings) -> tuple[object, ...]:
        hosted = frozenset(members if server.agents is None else server.agents)
        bind = server.sip_bind or settings.site.sip_bind
        return (hosted, server.ami_user, server.ami_port, server.ami_secret, bind)

    return len({shape(server) for server in settings.asterisks}) == 1


def render_targets(settings: Settings, out_dir: Path) -> list[tuple[AsteriskSettings, Path]]:
    """Where each set of files goes: `out_dir` itself when `one_set`, else a folder per
    server named after it (`out_dir/<name>/`, a name is letters, digits, `_.-`)."""
    if one_set(settings):
        return [(settings.asterisk, out_dir)]
    return [(server, out_dir / server.name) for server in settings.asterisks]


def server_site(settings: Settings, server: AsteriskSettings) -> Site:
    """The site as `server` renders it: only the members whose phones live there (their
    endpoints, queue member lines, mailboxes and the roles' dial contexts), and its own
    `sip_bind` when it has one."""
    site = settings.site
    if server.sip_bind is not None:
        site = dataclasses.replace(site, sip_bind=server.sip_bind)
    if server.agents is None:
        return site
    members = tuple(m for m in site.members if server.hosts(m.extension))
    return dataclasses.replace(site, members=members)


def access_for(
    settings: Settings,
    ami_secret: str,
    reload_secret: str,
    server: AsteriskSettings | None = None,
) -> AsteriskAccess:
    """What the rendered files need from [server] and [asterisk] (`server`: the first)."""
    ast = server or settings.asterisk
    return AsteriskAccess(
        agi_host=settings.server.agi_host,
        agi_port=settings.server.agi_port,
        agi_instances=settings.server.agi_instances,
        ami_user=ast.ami_user,
        ami_secret=ami_secret,
        ami_reload_secret=reload_secret,
        ami_port=ast.ami_port,
        fallback=settings.server.fallback,
        file=str(settings.file) if settings.file else "<demo centralita.toml>",
    )


def render_files(
    settings: Settings,
    ami_secret: str | None = None,
    reload_secret: str | None = None,
    *,
    server: AsteriskSettings | None = None,
) -> dict[str, str]:
    """Render every file of one server (default: the first) in memory ({name: text});
    raises ConfigError. Writes nothing.

    Without `reload_secret`, a new random one is made (`render_to` keeps the one already in
    manager.conf)."""
    ast = server or settings.asterisk
    secret = ami_secret or ast.ami_secret or ""
    reload = reload_secret or secrets.token_urlsafe(24)
    site = settings.site if one_set(settings) else server_site(settings, ast)
    try:
        return render_site(site, access_for(settings, secret, reload, ast))
    except ConfigError as exc:
        if site is settings.site:
            raise
        raise ConfigError(
            exc.file,
            exc.key,
            f"{exc.reason} (in the files of Asterisk {ast.name!r}, which hosts the members "
            f"{', '.join(m.extension for m in site.members) or 'none'})",
        ) from None


def check_render(settings: Settings) -> None:
    """Render every server's files in memory with throwaway secrets (the checks only)."""
    for server in settings.asterisks if not one_set(settings) else (settings.asterisk,):
        render_files(settings, secrets.token_urlsafe(12), secrets.token_urlsafe(12), server=server)


def reload_secret_for(
    settings: Settings, out_dir: Path, server: AsteriskSettings | None = None
) -> str:
    """The reload user's secret: the one in `out_dir/manager.conf`, else a new one.

    It lives only in manager.conf (root:asterisk 0640), never in the config that `serve`
    reads, so the server cannot log in as the user that may run CLI commands.
    """
    ast = server or settings.asterisk
    kept = existing_ami_secret(out_dir / "manager.conf", reload_user(ast.ami_user))
    return kept or secrets.token_urlsafe(24)


def ami_secret_for(
    settings: Settings, out_dir: Path, server: AsteriskSettings | None = None
) -> tuple[str, str | None]:
    """The AMI secret to write into manager.conf, and a note for the admin when generated.

    Without `asterisk.ami_secret`, the secret already in `out_dir/manager.conf` is kept (so
    rendering twice does not lock Centralita out again); otherwise a new one is generated.
    """
    ast = server or settings.asterisk
    if ast.ami_secret:
        return ast.ami_secret, None
    kept = existing_ami_secret(out_dir / "manager.conf", ast.ami_user)
    secret = kept or secrets.token_urlsafe(24)
    how = "kept the one in manager.conf" if kept else "generated one for manager.conf"
    where = "the [asterisk] section" if len(settings.asterisks) == 1 else f"[[asterisk]] {ast.name}"
    note = (
        f"note: asterisk.ami_secret is not set, so Centralita cannot log in to AMI; {how}. "
        f'Add to {where} of the config: ami_secret = "{secret}" '
        '(or ami_secret = { env = "CENTRALITA_AMI_SECRET" }).'
    )
    return secret, note


def existing_ami_secret(path: Path, user: str) -> str | None:
    """The `secret` of `[user]` in an existing manager.conf, if it is a valid secret."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    section = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            section = header.group(1)
            continue
        if section == user:
            key, _, value = line.partition("=")
            if key.strip() == "secret":
                value = value.lstrip(">").strip()
                try:
                    return check_secret(value, str(path), "secret")
                except ConfigError:
                    return None
    return None


def reload_asterisk(
    settings: Settings,
    secret: str,
    *,
    out: TextIO,
    err: TextIO,
    server: AsteriskSettings | None = None,
) -> int:
    """Send the reload commands over AMI as the reload user and print what Asterisk answered.

    `secret` is the reload user's (from the manager.conf just written); `server` the Asterisk
    to reload (default: the first). Exit code.
    """
    return asyncio.run(reload_asterisk_async(settings, secret, out=out, err=err, server=server))


async def reload_asterisk_async(
    settings: Settings,
    secret: str,
    *,
    out: TextIO,
    err: TextIO,
    server: AsteriskSettings | None = None,
) -> int:
    """`reload_asterisk` for a caller already in the event loop (the /admin page)."""
    ast = server or settings.asterisk
    where = f"{ast.ami_host}:{ast.ami_port}"
    user = reload_user(ast.ami_user)
    try:
        replies = await run_commands(
            ast.ami_host,
            ast.ami_port,
            user,
            secret,
            reload_commands(settings),
            timeout_s=ast.ami_timeout_s,
        )
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        print(
            f"centralita: Asterisk's AMI at {where} is unreachable ({reason}); the files are "
            "written but Asterisk was not reloaded",
            file=err,
        )
        return 1
    except AmiAuthError as exc:
        print(
            f"centralita: AMI at {where}: login as {user!r} refused: {exc}; Asterisk was not "
            f"reloaded. If this is the first render with the {user!r} user, Asterisk has not "
            'read it yet: run `asterisk -rx "manager reload"` once, then render --reload again',
            file=err,
        )
        return 1
    except (AmiError, AmiProtocolError) as exc:
        print(f"centralita: AMI at {where}: {exc}; Asterisk was not reloaded", file=err)
        return 1
    failed = 0
    for command, reply in replies:
        text = " / ".join(
            line for line in (reply.value("Message"), *reply.get_all("Output")) if line
        )
        print(f"asterisk: {command}: {reply.name}: {text}", file=out)
        failed += not reply.is_success
    return 1 if failed else 0
