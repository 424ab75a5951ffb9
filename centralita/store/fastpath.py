"""A read-only SQLite connection used in the event loop's own thread, for the lookups a
ringing call waits on: the returning caller's last agent (`Store.last_agent_for`) and the
contacts a screen pop shows (`Store.contacts_for_number_now`).

Why: the store has one aiosqlite connection, and a call-record commit there can stall for
hundreds of ms on a slow fsync (synchronous=FULL, WAL checkpoints); a lookup queued behind
it would wait as long (bench/pop_bench.py measured a ringing pop's p99 over 200 ms). These
lookups are one or two index probes, tens of microseconds, so they run inline on a second
connection: a WAL reader never waits for the writer.
`busy_timeout = 0` and a progress-handler deadline bound the time spent in the loop; a
lookup that is busy or past its deadline raises `sqlite3.OperationalError`, and the caller
asks the store's worker thread instead.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from centralita.store.records import CONTACT_COLUMNS, Contact, contact_from_row

# Longest a lookup may run in the event loop's thread before it is interrupted and handed
# to aiosqlite's thread: the returning caller's agent, and a pop's contacts.
FAST_LOOKUP_S = 0.002
FAST_CONTACTS_S = 0.005

_CONTACTS_BY_KEY = (
    f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id IN "  # noqa: S608 (constant columns)
    "(SELECT contact_id FROM contact_numbers WHERE key = ?) ORDER BY name_fold, id"
)


class FastReader:
    """One read-only connection on the store's file, bounded in time per query."""

    def __init__(self, path: Path) -> None:
        # Opened after the migration, so the WAL files exist for a read-only opener.
        # busy_timeout 0: the event loop never waits on a lock.
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 0")
        db.row_factory = sqlite3.Row
        # Bound the time spent in the loop's thread: a query past the deadline is
        # interrupted (OperationalError).
        db.set_progress_handler(self._past_deadline, 1000)
        self._db: sqlite3.Connection | None = db
        self._deadline = 0.0

    def _past_deadline(self) -> int:
        return 1 if time.perf_counter() > self._deadline else 0

    def first_row(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        """The first row of a query answered within FAST_LOOKUP_S; raises
        sqlite3.OperationalError when busy, past the deadline or closed."""
        db = self._db
        if db is None:
            raise sqlite3.OperationalError("the fast reader is closed")
        self._deadline = time.perf_counter() + FAST_LOOKUP_S
        row: sqlite3.Row | None = db.execute(sql, params).fetchone()
        return row

    def all_rows(self, sql: str, params: tuple[Any, ...], budget_s: float) -> list[sqlite3.Row]:
        """Every row of a query answered within `budget_s`; raises sqlite3.OperationalError
        when busy, past the deadline or closed."""
        db = self._db
        if db is None:
            raise sqlite3.OperationalError("the fast reader is closed")
        self._deadline = time.perf_counter() + budget_s
        rows: list[sqlite3.Row] = db.execute(sql, params).fetchall()
        return rows

    def contacts(self, key: str) -> list[Contact] | None:
        """The contacts with number key `key`, by name, within FAST_CONTACTS_S; None when
        they cannot be read now (busy, past the deadline, closed): ask the store instead."""
        db = self._db
        if db is None:
            return None
        self._deadline = time.perf_counter() + FAST_CONTACTS_S
        try:
            rows = db.execute(_CONTACTS_BY_KEY, (key,)).fetchall()
            if not rows:
                return []
            ids = [int(r["id"]) for r in rows]
            numbers: dict[int, list[str]] = {i: [] for i in ids}
            marks = ",".join("?" * len(ids))
            for r in db.execute(
                f"SELECT contact_id, number FROM contact_numbers "  # noqa: S608 (only ?s)
                f"WHERE contact_id IN ({marks}) ORDER BY rowid",
                ids,
            ):
                numbers[int(r["contact_id"])].append(str(r["number"]))
        except sqlite3.Error:
            return None
        return [contact_from_row(r, tuple(numbers[int(r["id"])])) for r in rows]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._db is not None:
            self._db.close()
            self._db = None
