"""The `centralita` command: subcommands are registered by the modules in COMMAND_MODULES."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence

from centralita.store.errors import StoreError
from dialplan.validate import ConfigError

# Each module exposes `register(subparsers)` and sets `func(args) -> int` on its parsers.
COMMAND_MODULES = (
    "centralita.cmd_serve",  # serve, init
    "centralita.cmd_render",  # render
    "centralita.cmd_agent",  # agent add|remove|list|passwd
    "centralita.cmd_logs",  # callbacks, complaints, calls, cdr import
    "centralita.cmd_demo",  # demo
    "centralita.cmd_backup",  # backup
    "centralita.cmd_db",  # db migrate|copy
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centralita",
        description="Call-center application server for Asterisk.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    # Not required: a bare `centralita` prints this help instead of an argparse error.
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    parser.set_defaults(func=help_of(parser))
    return parser


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version("centralita")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command function that prints `parser`'s help (for a command given no action)."""

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return show_help


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
    except StoreError as exc:  # a bad [store] url, an unreachable server, a newer schema
        print(f"centralita: store: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
