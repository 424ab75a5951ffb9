"""`centralita db migrate` and `centralita db copy --from URL --to URL`: the store's schema,
and moving a site's data between stores (SQLite to PostgreSQL; docs/cluster.md#the-store)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from centralita.cli import add_config_argument, help_of
from centralita.settings import load_settings
from centralita.store import SCHEMA_VERSION, open_location, open_store
from centralita.store.copy import CopyError, copy_store
from centralita.store.url import PgLocation, StoreLocation, parse_store_url


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `centralita db migrate|copy`."""
    db = subparsers.add_parser(
        "db",
        help="the store's schema, and copying a store (SQLite to PostgreSQL)",
        description="Migrate the configured store, or copy every row of one store into "
        "another (docs/cluster.md#the-store).",
    )
    actions = db.add_subparsers(dest="db_action", metavar="ACTION")
    db.set_defaults(func=help_of(db))

    migrate = actions.add_parser(
        "migrate",
        help="create or bring the configured store's tables up to this version",
        description="Open the store [store] url names (default: the SQLite file in data_dir) "
        "and apply the migrations it lacks. `serve` does the same as it starts; this runs it "
        "alone, e.g. before starting several instances on one PostgreSQL.",
    )
    add_config_argument(migrate)
    migrate.set_defaults(func=cmd_migrate)

    copy = actions.add_parser(
        "copy",
        help="copy every row of one store into another (ids kept)",
        description="Copy every table, every row, from --from to --to, e.g. "
        "--from sqlite:///data/centralita.sqlite3 --to postgresql://centralita@db/centralita. "
        "Both are migrated to this version first. The copy is one transaction on the target; "
        "a target that holds rows is refused unless --replace. Row counts are compared at the "
        "end. The PostgreSQL password comes from PGPASSWORD (or ~/.pgpass, or --password-env), "
        "never from the URL. Stop `serve` first, so no row arrives during the copy.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL")
    copy.add_argument("--to", dest="target", required=True, metavar="URL")
    copy.add_argument(
        "--replace", action="store_true", help="delete the target's rows first (if it has any)"
    )
    copy.add_argument(
        "--password-env",
        metavar="NAME",
        default=None,
        help="the environment variable holding the PostgreSQL password (both URLs)",
    )
    copy.set_defaults(func=cmd_copy)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    location = settings.store_location()

    async def run() -> int:
        async with open_store(settings) as store:
            return await store.schema_version()

    version = asyncio.run(run())
    print(f"{location.display}: schema version {version} (this Centralita: {SCHEMA_VERSION})")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    source = _location(args.source, args.password_env)
    target = _location(args.target, args.password_env)
    if source == target:
        print("centralita: --from and --to name the same store", file=sys.stderr)
        return 2

    def progress(table: str, rows: int) -> None:
        print(f"  {table}: {rows} rows")

    async def run() -> int:
        async with open_location(source) as src, open_location(target) as dst:
            print(f"copying {source.display} -> {target.display}")
            try:
                report = await copy_store(src, dst, replace=args.replace, progress=progress)
            except CopyError as exc:
                print(f"centralita: db copy: {exc}", file=sys.stderr)
                return 1
        print(f"copied {report.rows} rows in {len(report.tables)} tables; counts match")
        return 0

    return asyncio.run(run())


def _location(url: str, password_env: str | None) -> StoreLocation:
    # Relative sqlite:/// paths: from the current folder, as any path on a command line.
    location = parse_store_url(url, base=Path.cwd())
    if password_env is not None and isinstance(location, PgLocation):
        location = parse_store_url(url, base=Path.cwd(), password_env=password_env)
    return location
