"""Read-only SQLite connections used in the event loop's own thread, for the lookups a
ringing call waits on.

Why: the store has one aiosqlite connection, and a call-record commit there can stall for
hundreds of ms on a slow fsync (synchronous=FULL, WAL checkpoints); a lookup queued behind
it would wait as long. These lookups are one or two index probes, tens of microseconds, so
they run inline on a second connection: a WAL reader never waits for the writer.
`busy_timeout = 0` and a progress-handler deadline bound the time spent in the loop; a
lookup that is busy or past its deadline raises `sqlite3.OperationalError`, and the caller
asks the store's worker thread instead.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

# Longest a returning-caller lookup may run in the event loop's thread before it is
# interrupted and handed to aiosqlite's thread.
FAST_LOOKUP_S = 0.002


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

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._db is not None:
            self._db.close()
            self._db = None
