"""`centralita backup DIR`: a consistent copy of the data folder while the server runs.

The database is copied with SQLite's online backup API (`sqlite3.Connection.backup`): one read
transaction, so the copy is the database as of one moment, with the server writing beside it
(WAL mode: a reader blocks no writer). Copying the file with `cp` instead can catch it
between a write to the WAL and its checkpoint and give a copy that is corrupt or behind.
The copy is checked with `PRAGMA integrity_check` before it is kept.

The CSV logs are appended whole lines by one writer: each is copied up to its last complete
line. `secret_key` (the console's session key, if kept there) and the config file come along,
so a restore (docs/deploy.md) gives back a working installation. Every file is written 0600.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from centralita.cli import add_config_argument
from centralita.csvlog import CALLBACKS_CSV, CALLS_CSV, COMPLAINTS_CSV
from centralita.settings import load_settings
from centralita.store import DB_FILENAME, SqliteLocation
from centralita.web.auth import KEY_FILE

SECRET_KEY_FILE = KEY_FILE  # the console's session key, when kept in data_dir
CONFIG_COPY = "centralita.toml"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `centralita backup`."""
    parser = subparsers.add_parser(
        "backup",
        help="copy the data folder (database, logs, key) while Centralita runs",
        description="Write a consistent copy of data_dir into DIR (which must be empty or "
        "new): the database through SQLite's online backup, checked; the CSV logs up to "
        "their last complete line; secret_key and the config file. Safe while `serve` runs.",
    )
    add_config_argument(parser)
    parser.add_argument("dest", metavar="DIR", type=Path, help="where to write the copy")
    parser.set_defaults(func=cmd_backup)


def cmd_backup(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    data_dir = settings.server.data_dir
    dest: Path = args.dest
    location = settings.store_location()
    if not isinstance(location, SqliteLocation):
        print(
            f"centralita: the store is on PostgreSQL ({location.display}): back it up with "
            "pg_dump (docs/cluster.md#the-store); this command copies a SQLite store",
            file=sys.stderr,
        )
        return 1
    database = location.path
    if not database.is_file():
        print(f"centralita: no database at {database}: nothing to back up", file=sys.stderr)
        return 1
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        print(f"centralita: {dest} exists and is not an empty folder", file=sys.stderr)
        return 1
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        pages = backup_database(database, dest / DB_FILENAME)
    except (sqlite3.Error, OSError) as exc:
        print(f"centralita: backup of {database} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{dest / DB_FILENAME}: {pages} pages, integrity ok")
    for name in (CALLBACKS_CSV, COMPLAINTS_CSV, CALLS_CSV):
        if (data_dir / name).is_file():
            copy_whole_lines(data_dir / name, dest / name)
            print(f"{dest / name}")
    extras = [(data_dir / SECRET_KEY_FILE, dest / SECRET_KEY_FILE)]
    if settings.file is not None:
        extras.append((settings.file, dest / CONFIG_COPY))
    for source, target in extras:
        if source.is_file():
            _write_private(target, source.read_bytes())
            print(f"{target}")
    return 0


def backup_database(source: Path, target: Path) -> int:
    """Copy the live database at `source` to `target` (a new file); the page count."""
    tmp = target.with_name(f".{target.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    src = sqlite3.connect(source, timeout=30.0)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        dst = sqlite3.connect(tmp)
        try:
            # pages=-1: all in one step, inside one read transaction: one consistent moment.
            src.backup(dst, pages=-1)
            # A standalone file: no WAL beside it to carry along.
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"the copy fails integrity_check: {check}")
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
        os.replace(tmp, target)
        return pages
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        src.close()


def copy_whole_lines(source: Path, target: Path) -> None:
    """Copy `source` up to its last newline (a line being appended is left out)."""
    data = source.read_bytes()
    end = data.rfind(b"\n") + 1
    _write_private(target, data[:end])


def _write_private(target: Path, data: bytes) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
