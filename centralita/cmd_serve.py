"""`centralita serve` and `centralita init DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from centralita.settings import load_settings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `serve` and `init`."""
    from centralita.cli import add_config_argument

    serve = subparsers.add_parser("serve", help="run FastAGI, the AMI listener and the web console")
    add_config_argument(serve)
    serve.set_defaults(func=cmd_serve)

    init = subparsers.add_parser("init", help="write the commented demo config into DIR")
    init.add_argument("dir", metavar="DIR", type=Path)
    init.add_argument("--force", action="store_true", help="overwrite an existing config")
    init.set_defaults(func=cmd_init)


def cmd_serve(args: argparse.Namespace) -> int:
    from centralita.app import run
    from centralita.logs import setup_logging

    settings = load_settings(args.config)
    setup_logging(settings.server.log_format, settings.server.log_level)
    try:
        run(settings)
    except OSError as exc:
        print(f"centralita: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from centralita.settings import demo_text

    target: Path = args.dir / "centralita.toml"
    if target.exists() and not args.force:
        print(f"centralita: {target} already exists (use --force to overwrite)", file=sys.stderr)
        return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    target.write_text(demo_text(), encoding="utf-8")
    # Validate what we wrote, so a broken demo can never reach a user.
    load_settings(target)
    print(f"wrote {target}")
    print(f"next: edit it, then `centralita serve --config {target}`")
    return 0
