"""Append-only CSV logs in data_dir (`callbacks.csv`, `complaints.csv`, `calls.csv`).

They are a projection of the store: every row is written after its record is committed, so
a crash (`kill -9`) between the two leaves the CSV behind the database. `reconcile()` (run
when `serve` starts, or when an instance becomes the CSV writer, and by `centralita
callbacks --csv`) rebuilds a file from the store when it lags (issue 10, finding 13). Which
instance writes them, and whether any does (`[server] csv_files`): centralita/csvfiles.py.

Supervisors open these in a spreadsheet, and their cells hold caller IDs and names chosen by
strangers, so every cell that a spreadsheet would read as a formula is neutralised with a
leading `'` (OWASP "CSV injection"). Each row is one `os.write` on an O_APPEND descriptor,
under one asyncio.Lock per file, so concurrent writers never interleave or split a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import os
import stat
import tempfile
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from centralita.times import shown
from dialplan.render import keep_owner

if TYPE_CHECKING:
    from centralita.store import CallbackRequest, CallRow, Rating, StoreBackend

log = logging.getLogger("centralita.csvlog")

CALLBACKS_CSV = "callbacks.csv"
COMPLAINTS_CSV = "complaints.csv"
CALLS_CSV = "calls.csv"

CALLBACKS_HEADER = (
    "time",
    "callerid",
    "language",
    "queue",
    "number",
    "alternative",
    "status",
    "id",
)
COMPLAINTS_HEADER = ("time", "caller", "agent", "queue", "rating", "call_id")
CALLS_HEADER = (
    "time",
    "uniqueid",
    "linkedid",
    "caller",
    "dst",
    "agent",
    "disposition",
    "duration",
    "billsec",
    "contact",
    "outcome",
    "notes",
    "follow_up",
)

# A spreadsheet starts a formula at these (and DDE at `=`/`+`/`-`/`@`); TAB and CR can hide
# one. Cells that already start with `'` before one of them get one more, so `read_rows`
# can strip exactly one and give back what was written.
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# asyncio.Lock binds to the loop it first waits in: keep one table of locks per loop.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _lock_for(path: Path) -> asyncio.Lock:
    table = _locks.setdefault(asyncio.get_running_loop(), {})
    lock = table.get(path)
    if lock is None:
        lock = table[path] = asyncio.Lock()
    return lock


def neutralize(value: object) -> str:
    """A cell's text, with a leading `'` if a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)  # our own numbers: "-1" is a number, not a formula
    text = str(value)
    if text.lstrip("'").startswith(_TRIGGERS):
        return "'" + text
    return text


def unneutralize(text: str) -> str:
    """Undo `neutralize` on a cell read back."""
    if text.startswith("'") and text.lstrip("'").startswith(_TRIGGERS):
        return text[1:]
    return text


def encode_row(row: Sequence[object]) -> bytes:
    """One CSV record (RFC 4180 quoting, CRLF end) as UTF-8 bytes."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([neutralize(v) for v in row])
    return buffer.getvalue().encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class CsvLog:
    """One append-only CSV file with a fixed header."""

    def __init__(self, path: Path | str, header: Sequence[str]) -> None:
        self.path = Path(path).resolve()
        self.header = tuple(header)

    async def append(self, row: Sequence[object]) -> None:
        """Append one row (the header first if the file is new or empty)."""
        if len(row) != len(self.header):
            raise ValueError(
                f"{self.path.name}: a row has {len(self.header)} cells, got {len(row)}"
            )
        data = encode_row(row)
        async with _lock_for(self.path):
            await asyncio.to_thread(self._append_sync, data)

    async def append_rows(self, rows: Sequence[Sequence[object]]) -> None:
        """Append several rows in one write (nothing for none)."""
        if not rows:
            return
        for row in rows:
            if len(row) != len(self.header):
                raise ValueError(
                    f"{self.path.name}: a row has {len(self.header)} cells, got {len(row)}"
                )
        data = b"".join(encode_row(row) for row in rows)
        async with _lock_for(self.path):
            await asyncio.to_thread(self._append_sync, data)

    def _append_sync(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            if os.fstat(fd).st_size == 0:
                data = encode_row(self.header) + data
            # One write per row: O_APPEND puts it at the end even if another process
            # (a second Centralita, logrotate's copytruncate) touched the file.
            # os.write is unbuffered: the row is in the kernel when this returns. No fsync:
            # the store holds the durable copy, the CSV is the human-readable log of it.
            _write_all(fd, data)
        finally:
            os.close(fd)


def read_rows(path: Path | str) -> list[dict[str, str]]:
    """The rows of a CSV log as dicts keyed by its header; [] when the file is missing."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            return [
                {key: unneutralize(value or "") for key, value in row.items() if key is not None}
                for row in csv.DictReader(handle)
            ]
    except FileNotFoundError:
        return []


def now_text() -> str:
    """The `time` cell: local time with its UTC offset, as everywhere (centralita.times)."""
    return shown(datetime.now(UTC))


def callback_row(cb: CallbackRequest, time: str | None = None) -> tuple[object, ...]:
    """A `callbacks.csv` row for a callback request (written on creation and status change)."""
    return (
        time or now_text(),
        cb.callerid,
        cb.language,
        cb.queue,
        cb.number,
        cb.alternative,
        cb.status,
        cb.id,
    )


def complaint_row(rating: Rating) -> tuple[object, ...]:
    """A `complaints.csv` row for a rating below the survey threshold."""
    return (
        shown(rating.created_at),
        rating.callerid,
        rating.agent,
        rating.queue,
        rating.rating,
        rating.call_id,
    )


def call_row(call: CallRow) -> tuple[object, ...]:
    """A `calls.csv` row for one call record with its outcome."""
    return (
        shown(call.start),
        call.uniqueid,
        call.linkedid,
        call.src,
        call.dst,
        call.agent,
        call.disposition,
        call.duration,
        call.billsec,
        call.contact_name or "",
        call.outcome or "",
        call.notes or "",
        call.follow_up.isoformat() if call.follow_up else "",
    )


def callbacks_log(data_dir: Path | str) -> CsvLog:
    """The callbacks log of a data_dir."""
    return CsvLog(Path(data_dir) / CALLBACKS_CSV, CALLBACKS_HEADER)


def complaints_log(data_dir: Path | str) -> CsvLog:
    """The complaints log of a data_dir."""
    return CsvLog(Path(data_dir) / COMPLAINTS_CSV, COMPLAINTS_HEADER)


async def rebuild(csv_log: CsvLog, rows: Sequence[Sequence[object]]) -> None:
    """Replace a CSV log with `rows` (header first), atomically, keeping mode and owner."""
    data = encode_row(csv_log.header) + b"".join(encode_row(r) for r in rows)
    async with _lock_for(csv_log.path):
        await asyncio.to_thread(_replace_sync, csv_log.path, data)


def _replace_sync(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.stat() if path.exists() else None
    mode = stat.S_IMODE(previous.st_mode) if previous is not None else 0o640
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        keep_owner(fd, previous)
        os.fchmod(fd, mode)
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


async def reconcile(
    store: StoreBackend, data_dir: Path | str, *, force: bool = False
) -> list[Path]:
    """Rebuild `callbacks.csv` and `complaints.csv` from the store where they lag behind it
    (or always, with `force`); returns the files rebuilt.

    callbacks.csv lags when a request's latest row is missing or shows another status;
    complaints.csv when a rating has no row. A rebuilt callbacks.csv has one row per request,
    in its current status (the status history is in the store's `updated_at` only).
    """
    rebuilt: list[Path] = []
    callbacks = await store.list_callbacks()
    cb_log = callbacks_log(data_dir)
    shown = {
        r.get("id", ""): r.get("status", "")
        for r in await asyncio.to_thread(read_rows, cb_log.path)
    }
    if force or any(shown.get(str(cb.id)) != cb.status for cb in callbacks):
        await rebuild(cb_log, [callback_row(cb, cb.updated_at) for cb in callbacks])
        rebuilt.append(cb_log.path)
    ratings = await store.list_ratings()
    rating_log = complaints_log(data_dir)
    present = {
        (r.get("time", ""), r.get("call_id", ""), r.get("rating", ""))
        for r in await asyncio.to_thread(read_rows, rating_log.path)
    }
    wanted = [complaint_row(r) for r in ratings]
    if force or any((str(w[0]), str(w[5]), str(w[4])) not in present for w in wanted):
        await rebuild(rating_log, wanted)
        rebuilt.append(rating_log.path)
    if not force:
        for path in rebuilt:
            log.warning("%s lagged behind the database (a crash?): rebuilt from it", path)
    return rebuilt
