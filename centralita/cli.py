"""The `centralita` command: subcommands are registered by the modules in COMMAND_MODULES."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dialplan.validate import ConfigError

# Each module exposes `register(subparsers)` and sets `func(args) -> int` on its parsers.
COMMAND_MODULES = (
    "centralita.cmd_serve",  # serve, init
    "centralita.cmd_render",  # render
    "centralita.cmd_agent",  # agent add|remove|list|passwd
    "centralita.cmd_logs",  # callbacks, complaints, calls, cdr import
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centralita",
        description="Call-center application server for Asterisk.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Every subcommand takes --config FILE (default ./centralita.toml, else the demo)."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="config file (default: ./centralita.toml if present, else the built-in demo)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"centralita: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
