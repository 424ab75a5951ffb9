"""`centralita render`: write Asterisk's config files from the config, optionally reload them.

Everything is validated and rendered in memory first; only then are the files replaced, each
atomically, with the previous version kept as `<name>.bak` (dialplan.render.write_rendered).
`--reload` then asks Asterisk over AMI (`Action: Command`, protocol doc 2.7) to reload the
dialplan, the queues, the SIP driver, voicemail, features and the manager users.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from centralita.cli import add_config_argument
from centralita.settings import Settings, is_loopback, load_settings, public_secrets
from dialplan.render import AsteriskAccess, render_site, write_rendered
from dialplan.validate import ConfigError, check_secret

# AMI framing (protocol doc 2.1): Asterisk ends lines with CRLF, a blank line ends a packet,
# and it reads at most 1024 bytes per line; we accept longer lines from it but not unbounded.
MAX_LINE = 8192
MAX_PACKET_LINES = 5000
MAX_BUFFER = 1 << 20
BANNER_PREFIX = b"Asterisk Call Manager/"


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
    public = [key for key in public_secrets(settings) if key.startswith("agents")]
    if public and not is_loopback(bind.rpartition(":")[0].strip("[]")):
        print(
            f"centralita: refusing to render: {', '.join(public)} still hold the demo's SIP "
            f"passwords, which are published with Centralita, and {settings.site.sip_driver}"
            f" would listen on {bind} (asterisk.sip_bind). Give each agent its own secret "
            "(`centralita agent remove EXT` then `agent add`, which generates one; "
            "`centralita init DIR` writes a config with random ones).",
            file=err,
        )
        return 2
    secret, note = ami_secret_for(settings, out_dir)
    files = render_files(settings, secret)
    try:
        results = write_rendered(out_dir, files)
    except OSError as exc:
        print(f"centralita: cannot write into {out_dir}: {exc}", file=err)
        return 1
    for result in results:
        print(f"{result.status:>9}  {result.path}", file=out)
    if note:
        print(note, file=err)
    if settings.asterisk.ami_host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"note: manager.conf lets Centralita in from 127.0.0.1 only, but asterisk.ami_host "
            f"is {settings.asterisk.ami_host}: run Centralita on the Asterisk machine",
            file=err,
        )
    if not reload:
        return 0
    return reload_asterisk(settings, secret, out=out, err=err)


def access_for(settings: Settings, ami_secret: str) -> AsteriskAccess:
    """What the rendered files need from [server] and [asterisk]."""
    return AsteriskAccess(
        agi_host=settings.server.agi_host,
        agi_port=settings.server.agi_port,
        ami_user=settings.asterisk.ami_user,
        ami_secret=ami_secret,
        ami_port=settings.asterisk.ami_port,
        fallback=settings.server.fallback,
        file=str(settings.file) if settings.file else "<demo centralita.toml>",
    )


def render_files(settings: Settings, ami_secret: str | None = None) -> dict[str, str]:
    """Render every file in memory ({name: text}); raises ConfigError. Writes nothing."""
    secret = ami_secret or settings.asterisk.ami_secret or ""
    return render_site(settings.site, access_for(settings, secret))


def ami_secret_for(settings: Settings, out_dir: Path) -> tuple[str, str | None]:
    """The AMI secret to write into manager.conf, and a note for the admin when generated.

    Without `asterisk.ami_secret`, the secret already in `out_dir/manager.conf` is kept (so
    rendering twice does not lock Centralita out again); otherwise a new one is generated.
    """
    if settings.asterisk.ami_secret:
        return settings.asterisk.ami_secret, None
    kept = existing_ami_secret(out_dir / "manager.conf", settings.asterisk.ami_user)
    secret = kept or secrets.token_urlsafe(24)
    how = "kept the one in manager.conf" if kept else "generated one for manager.conf"
    note = (
        f"note: asterisk.ami_secret is not set, so Centralita cannot log in to AMI; {how}. "
        f'Add to the [asterisk] section of the config: ami_secret = "{secret}" '
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


def reload_asterisk(settings: Settings, secret: str, *, out: TextIO, err: TextIO) -> int:
    """Send the reload commands over AMI and print what Asterisk answered. Exit code."""
    ast = settings.asterisk
    where = f"{ast.ami_host}:{ast.ami_port}"
    try:
        replies = asyncio.run(
            ami_commands(
                ast.ami_host,
                ast.ami_port,
                ast.ami_user,
                secret,
                reload_commands(settings),
                wait_s=ast.ami_timeout_s,
            )
        )
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        print(
            f"centralita: Asterisk's AMI at {where} is unreachable ({reason}); the files are "
            "written but Asterisk was not reloaded",
            file=err,
        )
        return 1
    except AmiError as exc:
        print(f"centralita: AMI at {where}: {exc}; Asterisk was not reloaded", file=err)
        return 1
    failed = 0
    for command, reply in replies:
        text = " / ".join(line for line in (reply.message, *reply.output) if line)
        print(f"asterisk: {command}: {reply.response}: {text}", file=out)
        failed += reply.response != "Success"
    return 1 if failed else 0


# --------------------------------------------------------------------------- a minimal AMI


class AmiError(Exception):
    """AMI said no (login refused) or broke the framing."""


@dataclass(frozen=True)
class AmiReply:
    """The response to one action: `Response`, `Message` and any `Output` lines."""

    response: str
    message: str
    output: tuple[str, ...]


def encode_action(fields: Sequence[tuple[str, str]]) -> bytes:
    """One AMI action packet; CR or LF in a value would start a new header, so it is refused."""
    lines = []
    for key, value in fields:
        if any(c in key or c in value for c in "\r\n\0") or ":" in key:
            raise AmiError(f"refusing a line break in AMI header {key!r}")
        lines.append(f"{key}: {value}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")


class AmiPacketParser:
    """Sans-IO AMI framing: bytes in, packets out ({lower-case key: [values]})."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[str] = []

    def feed(self, data: bytes) -> list[dict[str, list[str]]]:
        """Add bytes; return the packets they complete. Raises AmiError past the bounds."""
        self._buffer += data
        packets = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise AmiError("AMI line too long")
                break
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            if len(raw) > MAX_LINE:
                raise AmiError("AMI line too long")
            # Asterisk writes CRLF; bare LF is accepted too (main/manager.c:7188-7193).
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if line:
                self._lines.append(line)
                if len(self._lines) > MAX_PACKET_LINES:
                    raise AmiError("AMI packet too long")
                continue
            if self._lines:
                packets.append(_packet(self._lines))
                self._lines = []
        if len(self._buffer) > MAX_BUFFER:
            raise AmiError("AMI buffer overflow")
        return packets


def _packet(lines: list[str]) -> dict[str, list[str]]:
    packet: dict[str, list[str]] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        packet.setdefault(key.strip().lower(), []).append(value.lstrip(" "))
    return packet


async def ami_commands(
    host: str,
    port: int,
    user: str,
    secret: str,
    commands: Sequence[str],
    *,
    wait_s: float,
) -> list[tuple[str, AmiReply]]:
    """Log in, run each CLI command with `Action: Command`, log off. Every wait is bounded."""
    timeout = wait_s  # each single wait (connect, one read, one drain) is bounded by this
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        banner = await asyncio.wait_for(reader.readline(), timeout)
        if not banner.startswith(BANNER_PREFIX):
            raise AmiError(f"not an Asterisk manager port (banner {banner[:60]!r})")
        parser = AmiPacketParser()
        pending: list[dict[str, list[str]]] = []

        async def reply(action_id: str) -> dict[str, list[str]]:
            # Events may come before and after a response (protocol doc 2.2): skip them.
            while True:
                while pending:
                    packet = pending.pop(0)
                    if "response" in packet and packet.get("actionid", [""])[0] == action_id:
                        return packet
                data = await asyncio.wait_for(reader.read(65536), timeout)
                if not data:
                    raise AmiError("Asterisk closed the connection")
                pending.extend(parser.feed(data))

        writer.write(
            encode_action(
                [("Action", "Login"), ("ActionID", "login"), ("Username", user), ("Secret", secret)]
            )
        )
        await asyncio.wait_for(writer.drain(), timeout)
        login = await reply("login")
        if login["response"][0] != "Success":
            message = login.get("message", [""])[0]
            raise AmiError(f"login as {user!r} refused: {message}")
        results = []
        for index, command in enumerate(commands):
            action_id = f"cmd-{index}"
            writer.write(
                encode_action(
                    [("Action", "Command"), ("ActionID", action_id), ("Command", command)]
                )
            )
            await asyncio.wait_for(writer.drain(), timeout)
            packet = await reply(action_id)
            results.append(
                (
                    command,
                    AmiReply(
                        response=packet["response"][0],
                        message=packet.get("message", [""])[0],
                        output=tuple(packet.get("output", [])),
                    ),
                )
            )
        writer.write(encode_action([("Action", "Logoff"), ("ActionID", "logoff")]))
        await asyncio.wait_for(writer.drain(), timeout)
        return results
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), timeout)
        except (OSError, TimeoutError):
            pass
