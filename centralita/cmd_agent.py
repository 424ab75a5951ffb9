"""`centralita member add|edit|remove|list|passwd` (or `agent …`): manage the members.

add, edit and remove edit the TOML file in place (comments and order kept, centralita.agents_admin),
validate the whole result before writing it atomically, then render the Asterisk files when
`--render-to DIR` is given. They refuse to edit the built-in demo: the admin's own file must
exist (`--config FILE` or ./centralita.toml; `centralita init DIR` writes one).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from centralita import agents_admin
from centralita.cli import add_config_argument, help_of
from centralita.cmd_render import render_to
from centralita.cmd_serve import tell_running_server
from centralita.settings import DEFAULT_CONFIG, Settings, load_settings
from centralita.store import SqliteLocation, open_store
from dialplan.validate import ConfigError

MIN_PASSWORD = 8


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `centralita member …` and its older name `centralita agent …`."""
    _register(subparsers, "member", "add, edit, remove or list members; set a console password")
    _register(subparsers, "agent", "the same as `member` (its name before roles)")


def _register(subparsers: argparse._SubParsersAction[Any], noun: str, summary: str) -> None:
    parser = subparsers.add_parser(
        noun,
        help=summary,
        description="Manage the members (staff with a phone: agents, supervisors, quality "
        "staff, managers) of the config file.",
    )
    # A bare `centralita member` prints this parser's help (help_of), not an argparse error.
    commands = parser.add_subparsers(dest="member_command", metavar="ACTION")
    parser.set_defaults(func=help_of(parser), noun=noun)

    add = commands.add_parser("add", help=f"add a {noun} (generates a SIP secret if none given)")
    add_config_argument(add)
    add.add_argument("extension", metavar="EXT", help="the extension (digits)")
    add.add_argument("--name", required=True, help="display name (any language)")
    add.add_argument("--role", help="one of the config's [[roles]] (default: agent)")
    _member_options(add)
    add.add_argument("--secret", help="SIP password (default: a generated 24-character one)")
    add.set_defaults(func=_add)

    edit = commands.add_parser("edit", help=f"change a {noun}'s name, role, queues, ...")
    add_config_argument(edit)
    edit.add_argument("extension", metavar="EXT")
    edit.add_argument("--name", help="display name (any language)")
    edit.add_argument("--role", help="one of the config's [[roles]]")
    _member_options(edit)
    secret = edit.add_mutually_exclusive_group()
    secret.add_argument("--secret", help="a new SIP password")
    secret.add_argument(
        "--new-secret", action="store_true", help="generate a new SIP password and show it once"
    )
    edit.set_defaults(func=_edit)

    remove = commands.add_parser("remove", help=f"remove a {noun}")
    add_config_argument(remove)
    remove.add_argument("extension", metavar="EXT")
    remove.add_argument("--render-to", metavar="DIR", help="then render the Asterisk files here")
    remove.set_defaults(func=_remove)

    listing = commands.add_parser("list", help="list the members")
    add_config_argument(listing)
    listing.set_defaults(func=_list)

    passwd = commands.add_parser("passwd", help=f"set a {noun}'s web console password")
    add_config_argument(passwd)
    passwd.add_argument("extension", metavar="EXT")
    passwd.add_argument(
        "--password",
        help="the new password (default: asked twice on a terminal, else one line of stdin)",
    )
    passwd.set_defaults(func=_passwd)


def _member_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queues",
        metavar="Q1,Q2",
        help="comma-separated queue names, e.g. support-en,support-fr (on add, default: none, "
        "the member answers only calls to their extension)",
    )
    parser.add_argument(
        "--language",
        help="one of the config's [[languages]] codes, for the member's phone (default: en)",
    )
    voicemail = parser.add_mutually_exclusive_group()
    voicemail.add_argument(
        "--voicemail", action="store_true", default=None, help="a voicemail box (the default)"
    )
    voicemail.add_argument(
        "--no-voicemail", action="store_false", dest="voicemail", help="no voicemail box"
    )
    parser.add_argument("--render-to", metavar="DIR", help="then render the Asterisk files here")


def _queues(option: str | None) -> list[str] | None:
    return None if option is None else [q.strip() for q in option.split(",") if q.strip()]


def editable_config(option: str | None) -> Path:
    """The config file to edit: --config FILE, else ./centralita.toml; never the demo."""
    if option is not None:
        path = Path(option)
        if not path.is_file():
            raise ConfigError(option, "(file)", "no such config file")
        return path
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    raise ConfigError(
        "<demo centralita.toml>",
        "(file)",
        "the built-in demo cannot be edited: pass --config FILE, or create "
        "./centralita.toml with `centralita init DIR`",
    )


def _add(args: argparse.Namespace) -> int:
    path = editable_config(args.config)
    queues = _queues(args.queues) or []
    secret = args.secret
    generated = secret is None
    if generated:
        secret = agents_admin.generate_secret()
    fields = agents_admin.MemberFields(
        name=args.name,
        role=args.role,
        queues=queues,
        secret=secret,
        language=args.language,
        voicemail=args.voicemail,
    )
    text = path.read_text(encoding="utf-8")
    new_text = agents_admin.add_member(text, args.extension, fields, file=str(path))
    agents_admin.save_config(path, new_text)
    where = ", ".join(queues) or "no queue"
    print(f"added {args.noun} {args.extension} ({args.name}) to {where} in {path}")
    if generated:
        # Shown once: it is in the config file too, but nobody should have to dig for it.
        print(f"SIP secret for {args.extension}: {secret}")
    return _after_edit(path, args.render_to)


def _edit(args: argparse.Namespace) -> int:
    path = editable_config(args.config)
    secret = agents_admin.generate_secret() if args.new_secret else args.secret
    fields = agents_admin.MemberFields(
        name=args.name,
        role=args.role,
        queues=_queues(args.queues),
        secret=secret,
        language=args.language,
        voicemail=args.voicemail,
    )
    text = path.read_text(encoding="utf-8")
    new_text = agents_admin.edit_member(text, args.extension, fields, file=str(path))
    if new_text == text:
        print(f"{args.noun} {args.extension}: nothing to change in {path}")
        return 0
    agents_admin.save_config(path, new_text)
    print(f"edited {args.noun} {args.extension} in {path}")
    if args.new_secret:
        print(f"SIP secret for {args.extension}: {secret}")
    return _after_edit(path, args.render_to)


def _remove(args: argparse.Namespace) -> int:
    path = editable_config(args.config)
    text = path.read_text(encoding="utf-8")
    new_text = agents_admin.remove_member(text, args.extension, file=str(path))
    agents_admin.save_config(path, new_text)
    print(f"removed {args.noun} {args.extension} from {path}")
    settings = load_settings(path)
    location = settings.store_location()
    if not isinstance(location, SqliteLocation) or location.path.exists():
        removed = asyncio.run(_forget_password(settings, args.extension))
        if removed:
            print(f"removed the console password of {args.extension}")
    return _after_edit(path, args.render_to)


def _after_edit(path: Path, render_dir: str | None) -> int:
    settings = load_settings(path)
    if render_dir is None:
        print(f"to update Asterisk: centralita render --config {path} --out DIR --reload")
        code = 0
    else:
        code = render_to(settings, Path(render_dir))
    tell_running_server(settings)
    return code


def _list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    sys.stdout.write(agents_admin.format_agents(agents_admin.list_agents(settings)))
    return 0


def _passwd(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if settings.site.agent(args.extension) is None:
        print(
            f"centralita: there is no {args.noun} with extension {args.extension}",
            file=sys.stderr,
        )
        return 1
    password = args.password
    if password is None and not sys.stdin.isatty():
        # Scripts pipe it in (`echo "$PW" | centralita agent passwd 1004`): one line, read
        # once; getpass would raise EOFError on an empty or closed stdin.
        line = sys.stdin.readline()
        if not line:
            print(
                "centralita: no password on standard input (pipe one line, or use --password)",
                file=sys.stderr,
            )
            return 1
        password = line.removesuffix("\n").removesuffix("\r")
    elif password is None:
        password = getpass.getpass(f"console password for {args.extension}: ")
        if getpass.getpass("again: ") != password:
            print("centralita: the passwords differ", file=sys.stderr)
            return 1
    if len(password) < MIN_PASSWORD or any(ord(c) < 32 for c in password):
        print(
            f"centralita: a console password needs at least {MIN_PASSWORD} characters "
            "and no control characters",
            file=sys.stderr,
        )
        return 1
    asyncio.run(_set_password(settings, args.extension, password))
    print(f"console password set for {args.extension}")
    return 0


async def _set_password(settings: Settings, extension: str, password: str) -> None:
    async with open_store(settings) as store:
        await store.set_agent_password(extension, password)


async def _forget_password(settings: Settings, extension: str) -> bool:
    async with open_store(settings) as store:
        return await store.remove_agent_password(extension)
