"""The SQLite `Store`: opening (creating, protecting and migrating the file) and closing;
the tables' methods come from one mixin per group of tables."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from centralita.store.agents import AgentsMixin
from centralita.store.audit import AuditMixin
from centralita.store.base import Script, T
from centralita.store.callbacks import CallbacksMixin
from centralita.store.calls import CallRecordsMixin
from centralita.store.contacts import ContactsMixin
from centralita.store.desk import DeskMixin
from centralita.store.fastpath import FastReader
from centralita.store.outbox import OutboxMixin
from centralita.store.quality import QualityMixin
from centralita.store.queue_events import QueueEventsMixin
from centralita.store.report_queries import ReportData, ReportQueriesMixin, read_report_sqlite
from centralita.store.schema import REPORT_TABLES_VERSION, migrate, protect
from centralita.store.shared import SharedStateMixin


def run_script_sync(db: sqlite3.Connection, script: Script[T]) -> T:
    """`script` on `db` (in the thread that owns it) in one transaction: BEGIN IMMEDIATE,
    its statements, COMMIT; ROLLBACK when anything raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = _drive(db, script)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def _drive(db: sqlite3.Connection, script: Script[T]) -> T:
    try:
        statement = next(script)
        while True:
            if statement.many:
                db.executemany(statement.sql, statement.parameters)
                rows: list[sqlite3.Row] = []
            else:
                rows = db.execute(statement.sql, statement.parameters).fetchall()
            statement = script.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class StoreOpening:
    """What `Store.open` returns: await it, or use it directly in `async with`."""

    def __init__(self, path: Path, kwargs: dict[str, Any]) -> None:
        self._path = path
        self._kwargs = kwargs
        self._store: Store | None = None

    def __await__(self) -> Generator[Any, None, Store]:
        return Store._open(self._path, **self._kwargs).__await__()

    async def __aenter__(self) -> Store:
        self._store = await Store._open(self._path, **self._kwargs)
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


class Store(
    CallbacksMixin,
    CallRecordsMixin,
    ContactsMixin,
    AgentsMixin,
    OutboxMixin,
    AuditMixin,
    DeskMixin,
    QueueEventsMixin,
    QualityMixin,
    ReportQueriesMixin,
    SharedStateMixin,
):
    """SQLite store. Open with `await Store.open(path)` or `async with Store.open(path)`."""

    dialect = "sqlite"

    def __init__(
        self, db: aiosqlite.Connection, path: Path, region: str, match_digits: int, min_digits: int
    ) -> None:
        super().__init__(region, match_digits, min_digits)
        self._db = db
        self.path = path
        # One aiosqlite connection is one SQLite connection: a transaction must not
        # interleave with another coroutine's statements.
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException:
                # Also on cancellation: a BEGIN already queued to aiosqlite's thread runs
                # anyway, and would leave the connection inside a transaction. The thread
                # runs calls in order, so this ROLLBACK comes after it.
                await self._rollback()
                raise

    async def _run_script(self, script: Script[T]) -> T:
        """Run `script` in one write transaction, whole, in aiosqlite's worker thread: one
        trip there and back (a Future and two thread switches) for the batch, where `_tx`
        pays one per statement. The transaction begins and ends inside the thread's call,
        so a cancelled caller cannot leave it open."""
        async with self._lock:
            # aiosqlite (0.20-0.22) has no public "run this callable on the connection's
            # thread"; `_execute` is what each of its own methods queues its call with.
            run: Callable[..., Awaitable[T]] = self._db._execute
            return await run(run_script_sync, self._db._conn, script)

    async def report_data(
        self, *, first_day: str, end_day: str, start_utc: str, end_utc: str, by_hour: bool
    ) -> ReportData:
        """As `ReportQueriesMixin.report_data`, on a read-only connection of its own in one
        worker thread (`read_report_sqlite`): no wait on the store's lock."""
        return await asyncio.to_thread(
            read_report_sqlite, self.path, first_day, end_day, start_utc, end_utc, by_hour
        )

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass  # no transaction open: BEGIN failed, or COMMIT went through

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            yield self._db

    async def _first_row_soon(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        # The query is one covering-index probe, ~10-30 us. A trip to aiosqlite's thread
        # costs more, and on a loaded 2-core machine its tail reaches ~2 ms (bench/
        # lookup_bench.py prints both), so it runs here, bounded to fastpath.FAST_LOOKUP_S.
        if self._fast is not None:
            try:
                return self._fast.first_row(sql, params)
            except sqlite3.OperationalError:
                pass  # busy or past the deadline: ask the worker thread instead
        async with self._read() as db:
            rows = list(await db.execute_fetchall(sql, params))
        return rows[0] if rows else None

    @staticmethod
    def open(
        path: Path | str,
        *,
        region: str = "ES",
        match_digits: int = 10,
        min_digits: int = 6,
    ) -> StoreOpening:
        """Open (creating or migrating) the database at `path`.

        `region`, `match_digits` and `min_digits` are the `phone.normalize` settings used for
        call-record and contact keys (config `[manager]`).
        """
        kwargs = {"region": region, "match_digits": match_digits, "min_digits": min_digits}
        return StoreOpening(Path(path), kwargs)

    @classmethod
    async def _open(cls, path: Path, *, region: str, match_digits: int, min_digits: int) -> Store:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        protect(path)
        # isolation_level=None: no implicit transactions; `_tx` issues BEGIN IMMEDIATE.
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = sqlite3.Row  # rows are read by column name, never by position
        try:
            await db.execute("PRAGMA busy_timeout = 5000")  # the CLI and the server share it
            await db.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed callback survives a power cut, not only a crash.
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            store = cls(db, path, region, match_digits, min_digits)
            async with store._tx() as tx:
                found = await migrate(tx, str(path))
            if 0 < found < REPORT_TABLES_VERSION:
                await store.backfill_reports()
            # After the migration, so the WAL files exist for a read-only opener.
            store._fast = FastReader(path)
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connections (idempotent)."""
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """The schema version of the open database."""
        async with self._read() as db, db.execute("SELECT version FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row["version"]) if row else 0
