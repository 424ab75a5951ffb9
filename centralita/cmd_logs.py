"""The log subcommands: `callbacks`, `complaints`, `calls` and `cdr import`.

They read the store in data_dir (the server may be running: SQLite WAL lets both work) and
print tables for a terminal. Cells hold caller IDs and names from strangers, so control
characters are shown escaped instead of being sent to the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from centralita.cli import add_config_argument, help_of
from centralita.csvfiles import LEASE as CSV_LEASE
from centralita.csvfiles import CsvFiles
from centralita.csvlog import (
    CALLBACKS_HEADER,
    CALLS_HEADER,
    COMPLAINTS_HEADER,
    CsvLog,
    call_row,
    callback_row,
    complaint_row,
    encode_row,
    rebuild,
    reconcile,
)
from centralita.settings import Settings, load_settings
from centralita.store import CALLBACK_STATUSES, SqliteLocation, StoreInputError, open_store
from centralita.store.postgres import PgStore
from centralita.times import shown

MAX_CELL = 40
# `callbacks --csv` without a FILE: the data_dir files rebuilt (as before exports existed).
REBUILD = "\0rebuild"
# Who closed a callback from the command line, in the store and the audit log.
CLI_ACTOR = "cli"
CLOSED_ACTIONS = {"done": "callback.done", "cancelled": "callback.cancel"}


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `callbacks`, `complaints`, `calls` and `cdr`."""
    cb = subparsers.add_parser(
        "callbacks",
        help="list callback requests, or close one",
        description="List the callback requests left by callers; `done ID` closes one.",
    )
    add_config_argument(cb)
    cb.add_argument(
        "--status", choices=CALLBACK_STATUSES, default=None, help="only requests in this status"
    )
    cb.add_argument(
        "--csv",
        nargs="?",
        const=REBUILD,
        default=None,
        metavar="FILE",
        help="alone: rebuild callbacks.csv and complaints.csv in data_dir from the database; "
        "with FILE (- for standard output): export the requests there as CSV",
    )
    cb.set_defaults(func=_callbacks_list)
    actions = cb.add_subparsers(dest="action", metavar="ACTION")
    for action, status in (("done", "done"), ("cancel", "cancelled")):
        sub = actions.add_parser(action, help=f"mark a callback request {status}")
        # SUPPRESS: `callbacks --config F done 5` must keep the F given before the action
        # (a sub-parser's own default would overwrite it).
        sub.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="config file")
        sub.add_argument("id", type=int, metavar="ID", help="the request's id")
        sub.add_argument(
            "--note", default="", metavar="TEXT", help="why, or what came of it (kept with it)"
        )
        sub.set_defaults(func=_callbacks_set, new_status=status)

    complaints = subparsers.add_parser(
        "complaints",
        help="list survey ratings below the threshold",
        description="List the survey ratings below [survey] threshold (with --all, every one).",
    )
    add_config_argument(complaints)
    complaints.add_argument("--all", action="store_true", help="every rating, not only low ones")
    complaints.add_argument(
        "--csv",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="export the ratings as CSV to FILE (default: standard output)",
    )
    complaints.set_defaults(func=_complaints)

    calls = subparsers.add_parser(
        "calls",
        help="list call records with outcomes",
        description="List call records (newest first) with the agents' outcomes.",
    )
    add_config_argument(calls)
    calls.add_argument("--from", dest="start", type=_day, metavar="DATE", help="YYYY-MM-DD")
    calls.add_argument("--to", dest="end", type=_day, metavar="DATE", help="YYYY-MM-DD")
    calls.add_argument("--agent", metavar="EXT", help="agent extension")
    calls.add_argument("--customer", metavar="TEXT", help="part of the number or contact name")
    calls.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    calls.add_argument("--offset", type=int, default=0, help="rows to skip")
    calls.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    calls.set_defaults(func=_calls)

    cdr = subparsers.add_parser(
        "cdr",
        help="call records (CDR)",
        description="Call records: `cdr import FILE` loads Asterisk's cdr-csv Master.csv into "
        "the store (the live records arrive over AMI).",
    )
    cdr_actions = cdr.add_subparsers(dest="cdr_action", metavar="ACTION")
    cdr.set_defaults(func=help_of(cdr))
    imp = cdr_actions.add_parser(
        "import",
        help="import an Asterisk cdr-csv Master.csv",
        description="Import Asterisk's cdr-csv Master.csv; rows already stored are skipped.",
    )
    add_config_argument(imp)
    imp.add_argument("file", type=Path, metavar="FILE", help="Master.csv")
    imp.set_defaults(func=_cdr_import)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _no_store_yet(settings: Settings) -> bool:
    """True (after saying so) when the database does not exist yet.

    Reading must not create it: run from the wrong folder, `centralita calls` would leave a
    fresh `data/centralita.sqlite3` behind and show an empty log as if it were the real one.
    """
    location = settings.store_location()
    if not isinstance(location, SqliteLocation):
        return False  # a PostgreSQL server: the tables are created as it opens
    path = location.path
    if path.exists():
        return False
    print(f"centralita: no database at {path} yet (nothing recorded there)", file=sys.stderr)
    return True


def _cell(value: object) -> str:
    """A cell safe to print: control characters escaped, long text cut."""
    text = "" if value is None else str(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as aligned columns under a header, for a terminal."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _callbacks_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if _no_store_yet(settings):
        if args.csv not in (None, REBUILD):
            return asyncio.run(_export(args.csv, CALLBACKS_HEADER, []))
        print("no callback requests")
        return 0
    if args.csv == REBUILD:
        return _rebuild_csv(settings)

    async def run() -> int:
        async with open_store(settings) as store:
            requests = await store.list_callbacks(args.status)
        if args.csv is not None:
            rows = [callback_row(c, shown(c.updated_at)) for c in requests]
            return await _export(args.csv, CALLBACKS_HEADER, rows)
        if not requests:
            print("no callback requests" + (f" in status {args.status}" if args.status else ""))
            return 0
        header = ("id", "time", "status", "number", "alternative", "callerid", "language", "queue")
        rows = [
            (
                c.id,
                shown(c.created_at),
                c.status,
                c.number,
                c.alternative,
                c.callerid,
                c.language,
                c.queue,
            )
            for c in requests
        ]
        print(format_table(header, rows))
        return 0

    return asyncio.run(run())


def _rebuild_csv(settings: Settings) -> int:
    """`callbacks --csv`: the CSV logs regenerated from the database (the record). With
    PostgreSQL, only while no instance holds the CSV writer's lease (centralita/csvfiles.py):
    it would be writing the same files."""

    async def run() -> list[Path] | None:
        async with open_store(settings) as store:
            if not isinstance(store, PgStore):
                return await reconcile(store, settings.server.data_dir, force=True)
            lease = await store.try_lease(CSV_LEASE)
            if lease is None:
                return None
            try:
                return await reconcile(store, settings.server.data_dir, force=True)
            finally:
                await lease.release()

    rebuilt = asyncio.run(run())
    if rebuilt is None:
        print(
            "centralita: a running instance writes the CSV files (it holds the writer's "
            "lease); export with --csv FILE instead",
            file=sys.stderr,
        )
        return 1
    for path in rebuilt:
        print(f"rebuilt {path}")
    return 0


async def _export(target: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> int:
    """Rows as CSV (csvlog's encoder: formula cells neutralised) to `target`, a file
    (replaced whole) or `-` for standard output."""
    if target == "-":
        out = sys.stdout.buffer
        out.write(encode_row(header) + b"".join(encode_row(r) for r in rows))
        out.flush()
        return 0
    try:
        await rebuild(CsvLog(Path(target), header), rows)
    except OSError as exc:
        print(f"centralita: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"exported {len(rows)} rows to {target}")
    return 0


def _callbacks_set(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if _no_store_yet(settings):
        print(f"centralita: there is no callback request {args.id}", file=sys.stderr)
        return 1

    async def run() -> int:
        async with open_store(settings) as store:
            try:
                request = await store.close_callback(
                    args.id, status=args.new_status, by=CLI_ACTOR, note=args.note
                )
            except StoreInputError as exc:
                print(f"centralita: {exc}", file=sys.stderr)
                return 1
            if request is None:
                print(f"centralita: there is no callback request {args.id}", file=sys.stderr)
                return 1
            # As the web's closing (centralita/web/callbacks.py), in the audit log.
            await store.add_audit(
                actor=CLI_ACTOR,
                action=CLOSED_ACTIONS[args.new_status],
                subject=f"callback {args.id}",
                changes=args.note,
            )
            # callbacks.csv: this row now (SQLite), or the elected writer's (PostgreSQL).
            await CsvFiles(store, settings).callback_changed(request)
        print(f"callback {args.id} ({_cell(request.number)}) is {args.new_status}")
        return 0

    return asyncio.run(run())


def _complaints(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    threshold = settings.site.survey.threshold
    if _no_store_yet(settings):
        if args.csv is not None:
            return asyncio.run(_export(args.csv, COMPLAINTS_HEADER, []))
        print("no ratings")
        return 0

    async def run() -> int:
        async with open_store(settings) as store:
            ratings = await store.list_ratings(below=None if args.all else threshold)
        if args.csv is not None:
            return await _export(args.csv, COMPLAINTS_HEADER, [complaint_row(r) for r in ratings])
        if not ratings:
            print("no ratings" if args.all else f"no ratings below {threshold}")
            return 0
        header = ("id", "time", "caller", "agent", "queue", "rating", "call_id")
        rows = [
            (r.id, shown(r.created_at), r.callerid, r.agent, r.queue, r.rating, r.call_id)
            for r in ratings
        ]
        print(format_table(header, rows))
        return 0

    return asyncio.run(run())


def _calls(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.limit < 1 or args.offset < 0:
        print("centralita: --limit must be 1 or more, --offset 0 or more", file=sys.stderr)
        return 2
    if _no_store_yet(settings):
        if args.csv:
            sys.stdout.buffer.write(encode_row(CALLS_HEADER))
        else:
            print("no calls")
        return 0

    async def run() -> int:
        async with open_store(settings) as store:
            calls, total = await store.list_calls(
                start=args.start,
                end=args.end,
                agent=args.agent,
                customer=args.customer,
                offset=args.offset,
                limit=args.limit,
            )
        if args.csv:
            out = sys.stdout.buffer
            out.write(encode_row(CALLS_HEADER))
            for call in calls:
                out.write(encode_row(call_row(call)))
            out.flush()
            return 0
        if not calls:
            print("no calls")
            return 0
        header = (
            "time",
            "caller",
            "contact",
            "agent",
            "disposition",
            "billsec",
            "outcome",
            "notes",
        )
        rows = [
            (
                shown(c.start),
                c.src,
                c.contact_name or "",
                c.agent,
                c.disposition,
                c.billsec,
                c.outcome or "",
                c.notes or "",
            )
            for c in calls
        ]
        print(format_table(header, rows))
        shown_to = args.offset + len(calls)
        print(f"\n{args.offset + 1}-{shown_to} of {total} calls")
        return 0

    return asyncio.run(run())


def _cdr_import(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    path: Path = args.file
    if not path.is_file():
        print(f"centralita: {path}: no such file", file=sys.stderr)
        return 1

    async def run() -> int:
        async with open_store(settings) as store:
            result = await store.import_master_csv(path)  # the [manager] rules
        print(
            f"imported {result.imported}, already stored {result.duplicates}, "
            f"unreadable {result.unreadable}"
        )
        return 0

    return asyncio.run(run())
