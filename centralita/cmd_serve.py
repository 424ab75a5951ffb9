"""`centralita serve` and `centralita init DIR`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Literal

from agi import loops
from centralita.agents_admin import save_config
from centralita.app import run
from centralita.cli import add_config_argument
from centralita.datadir import running_server
from centralita.logs import setup_logging
from centralita.settings import (
    Settings,
    fresh_config_text,
    load_settings,
    public_secrets_refusal,
)
from centralita.spool import spool_problem
from dialplan.validate import ConfigError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `serve` and `init`."""
    serve = subparsers.add_parser(
        "serve",
        help="run FastAGI, the AMI listener and the web console",
        description="Serve the call flows over FastAGI, follow Asterisk's AMI for screen pops "
        "and call records (retrying while it is away), and serve the agents' console, the "
        "JSON API, /metrics and /healthz, until SIGINT or SIGTERM. SIGHUP applies the config "
        "file again without a restart (members, queues, roles, the call flows).",
    )
    add_config_argument(serve)
    serve.set_defaults(func=cmd_serve)

    reload = subparsers.add_parser(
        "reload",
        help="have the running serve apply its config file now (SIGHUP)",
        description="Check the config file as `serve` reads it, then send SIGHUP to the "
        "`centralita serve` running on its data_dir: members, queues, roles and the call "
        "flows apply at once, with no restart (docs/admin.md). Nothing is sent when the file "
        "does not load.",
    )
    add_config_argument(reload)
    reload.set_defaults(func=cmd_reload)

    init = subparsers.add_parser(
        "init",
        help="write the commented demo config into DIR",
        description="Write DIR/centralita.toml: the demo config with every key explained, and "
        "random secrets (SIP passwords, AMI secret, session key) in a file only you can read.",
    )
    init.add_argument("dir", metavar="DIR", type=Path)
    init.add_argument("--force", action="store_true", help="overwrite an existing config")
    init.set_defaults(func=cmd_init)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    refusal = public_secrets_refusal(settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    if not loops.available(settings.server.event_loop):
        where = settings.file or "<demo centralita.toml>"
        raise ConfigError(str(where), "server.event_loop", loops.UVLOOP_MISSING)
    setup_logging(settings.server.log_format, settings.server.log_level)
    # A warning, not a refusal: calls, pops and the console work without the spool.
    for server in settings.asterisks:
        problem = spool_problem(server.spool_dir)
        if problem:
            logging.getLogger("centralita").warning("%s", problem)
    try:
        run(settings)
    except OSError as exc:
        print(f"centralita: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)  # a file that does not load: exit 2, nothing sent
    if settings.file is None:
        print("centralita: the built-in demo has no file to reload", file=sys.stderr)
        return 2
    refusal = public_secrets_refusal(settings)
    if refusal:  # the server would refuse it, as at start
        print(refusal, file=sys.stderr)
        return 2
    told = tell_running_server(settings)
    if told == "none":
        print(
            f"centralita: no centralita serve runs on {settings.data_dir}; "
            f"it reads {settings.file} when it starts",
            file=sys.stderr,
        )
    return 0 if told == "sent" else 1


def tell_running_server(settings: Settings) -> Literal["sent", "none", "denied"]:
    """Have the `centralita serve` running on this config's data_dir apply the file now
    (SIGHUP: centralita/live.py) and say so, or say how when this user may not signal it."""
    try:
        pid = running_server(settings.data_dir)
        if pid is None:
            return "none"
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:  # another user's server (serve runs as `centralita`)
        print(
            "a running centralita serve uses the change after `systemctl reload centralita` "
            f"(SIGHUP; {exc.strerror})",
            file=sys.stderr,
        )
        return "denied"
    print(f"the running centralita serve (pid {pid}) applies the change now (SIGHUP)")
    return "sent"


def cmd_init(args: argparse.Namespace) -> int:
    target: Path = args.dir / "centralita.toml"
    if target.exists() and not args.force:
        print(f"centralita: {target} already exists (use --force to overwrite)", file=sys.stderr)
        return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    # Random secrets (SIP, AMI, session key): the demo's are public. 0600 for a new file.
    save_config(target, fresh_config_text())
    # Validate what we wrote, so a broken demo can never reach a user.
    load_settings(target)
    print(f"wrote {target}")
    print(f"next: edit it, then `centralita serve --config {target}`")
    return 0
