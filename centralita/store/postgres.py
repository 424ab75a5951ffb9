"""The PostgreSQL store (`[store] url = "postgresql://..."`): the same table mixins as the
SQLite store, over psycopg 3 (async) with a connection pool.

Why psycopg 3 rather than asyncpg: its row factories and adapters let the mixins' SQL and
row handling run unchanged (rows by name, `?` rewritten once per query text, no per-call
conversion layer), it is libpq itself (every libpq setting and `PGPASSWORD`/`.pgpass`/
`PGSSLMODE` work as an admin expects), and it has a maintained pool (psycopg_pool). Its
automatic prepared statements keep the hot lookups to one round trip.

What differs from SQLite lives here and in `schema` (DDL types), nowhere else:
* placeholders: `?` and `:name` become `%s` and `%(name)s` (`pg_sql`);
* rows: `PgRow`, read by name or position like `sqlite3.Row`; `numeric` results (sum,
  avg) come back as int or float, as SQLite gives them;
* transactions: each `_tx` takes a pooled connection and runs in one PostgreSQL
  transaction; reads take any pooled connection (no lock: the server serialises);
* the returning-caller lookup (`_first_row_soon`): a dedicated connection whose statements
  the server cancels past `PG_FAST_LOOKUP_TIMEOUT_MS`, then the pool, as SQLite's fast
  reader falls back to its worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Collection, Generator, Iterable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Loader
from psycopg.rows import RowMaker
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from centralita.store.agents import AgentsMixin
from centralita.store.audit import AuditMixin
from centralita.store.base import Connection
from centralita.store.callbacks import CallbacksMixin
from centralita.store.calls import CallRecordsMixin
from centralita.store.cdr import CDR_COLUMNS, CDR_PARAM_NAMES
from centralita.store.contacts import ContactsMixin
from centralita.store.desk import DeskMixin
from centralita.store.errors import StoreError
from centralita.store.outbox import OutboxMixin
from centralita.store.quality import QualityMixin
from centralita.store.queue_events import QueueEventsMixin
from centralita.store.report_queries import ReportQueriesMixin
from centralita.store.schema import REPORT_TABLES_VERSION, migrate
from centralita.store.shared import SharedStateMixin
from centralita.store.url import PgLocation

log = logging.getLogger(__name__)

# The lookup connection's statement_timeout. SQLite's FAST_LOOKUP_S bounds time the event
# loop is blocked; this lookup is awaited, so the bound is only for a runaway plan. A
# lookup cancelled at the deadline is asked again of the pool, paying the deadline on top:
# at 2 ms a loaded machine sent 291 of 5,000 lookups that way (bench/store_bench.py, 10M).
PG_FAST_LOOKUP_TIMEOUT_MS = 50

# Held by the migrating instance, so several instances starting together migrate once.
MIGRATION_LOCK = 0x63656E74  # "cent"
# The first key of the leases an instance holds for as long as it lives (`try_lease`); the
# second is the schema's hash, so two sites in one database elect apart.
LEASE_CLASS = 0x6C656173  # "leas"
CONNECT_TIMEOUT_S = 10

# ----------------------------------------------------------------- SQL and rows

_TOKENS = re.compile(
    r"""('(?:[^']|'')*')"""  # a string literal: left alone (but its `%`s)
    r"""|("(?:[^"]|"")*")"""  # a quoted identifier: left alone
    r"""|(\?)"""  # a positional placeholder
    r"""|(?<!:):([A-Za-z_]\w*)"""  # a named placeholder (not a `::type` cast)
    r"""|(%)"""  # a literal percent sign, doubled for psycopg
)


@lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """The mixins' SQLite-style placeholders (`?`, `:name`) in psycopg's (`%s`,
    `%(name)s`)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(3):
            return "%s"
        if match.group(4):
            return f"%({match.group(4)})s"
        if match.group(5):
            return "%%"
        return match.group(0).replace("%", "%%")  # psycopg reads `%` inside literals too

    return _TOKENS.sub(replace, sql)


class PgRow(tuple[Any, ...]):
    """A row read by column name or position, like `sqlite3.Row`."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return super().__getitem__(self._names[key])
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


@lru_cache(maxsize=512)
def _row_type(names: tuple[str, ...]) -> type[PgRow]:
    return type("PgRow", (PgRow,), {"_names": {n: i for i, n in enumerate(names)}})


def pg_row_factory(cursor: Any) -> RowMaker[PgRow]:
    """psycopg row factory: each row a `PgRow` of one class per column list."""
    return _row_type(tuple(d.name for d in cursor.description or ()))


@lru_cache(maxsize=64)
def text_array(values: tuple[str, ...]) -> str:
    """`values` as a PostgreSQL text[] literal, made once per list: the returning-caller
    lookup sends the same agents and dispositions on every call."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


class _NumericLoader(Loader):
    """`numeric` (sum, avg) as int when whole, else float: what SQLite returns."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode("ascii"))
        return int(value) if value == value.to_integral_value() else float(value)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("numeric", _NumericLoader)


_CDR_ARRAY_TYPES = {"cdr_key": "bytea[]", "duration": "bigint[]", "billsec": "bigint[]"}
# A batch of call records as one INSERT over unnest(): one array per column.
_CDR_INSERT_ARRAYS = (
    f"INSERT INTO cdr ({CDR_COLUMNS}) SELECT * FROM unnest("  # noqa: S608 (constants)
    + ", ".join(f"%s::{_CDR_ARRAY_TYPES.get(name, 'text[]')}" for name in CDR_PARAM_NAMES)
    + ") ON CONFLICT (cdr_key) DO NOTHING"
)

# ----------------------------------------------------------------- the connection adapter


class PgCursor:
    """A finished statement: its rows (read at once: the store's queries are bounded) and
    its row count."""

    def __init__(self, rows: list[PgRow], rowcount: int) -> None:
        self._rows = rows
        self._next = 0  # the rows handed out so far, as a DB-API cursor moves on
        self.rowcount = rowcount

    async def fetchone(self) -> PgRow | None:
        batch = await self.fetchmany(1)
        return batch[0] if batch else None

    async def fetchall(self) -> list[PgRow]:
        return await self.fetchmany(len(self._rows))

    async def fetchmany(self, size: int) -> list[PgRow]:
        batch = self._rows[self._next : self._next + max(0, size)]
        self._next += len(batch)
        return batch


class _Executed:
    """`PgConnection.execute`'s result: awaited, or used with `async with` (as aiosqlite's)."""

    def __init__(self, run: Any) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, PgCursor]:
        return self._run().__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> PgCursor:
        cursor: PgCursor = await self._run()
        return cursor

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class PgConnection:
    """A pooled psycopg connection with the aiosqlite shape the mixins use
    (`centralita.store.base.Connection`)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.raw = conn

    async def _run(self, sql: str, parameters: Any) -> PgCursor:
        params = parameters if parameters else None
        query = pg_sql(sql) if params is not None else sql
        async with self.raw.cursor(row_factory=pg_row_factory) as cur:
            await cur.execute(query, params)
            rows = await cur.fetchall() if cur.description is not None else []
            return PgCursor(rows, cur.rowcount)

    async def _run_many(self, sql: str, parameters: Iterable[Any]) -> PgCursor:
        batch = list(parameters)
        if not batch:
            return PgCursor([], 0)
        async with self.raw.cursor(row_factory=pg_row_factory) as cur:
            await cur.executemany(pg_sql(sql), batch)
            return PgCursor([], cur.rowcount)

    def execute(self, sql: str, parameters: Any = None, /) -> _Executed:
        return _Executed(lambda: self._run(sql, parameters))

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> _Executed:
        return _Executed(lambda: self._run_many(sql, parameters))

    async def execute_fetchall(self, sql: str, parameters: Any = None, /) -> list[PgRow]:
        return (await self._run(sql, parameters))._rows


# ----------------------------------------------------------------- the store


class PgStore(
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
    """PostgreSQL store. Open with `await PgStore.open(location)` (or `async with`)."""

    dialect = "postgresql"

    def __init__(
        self,
        location: PgLocation,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        fast: psycopg.AsyncConnection[Any],
        region: str,
        match_digits: int,
        min_digits: int,
    ) -> None:
        super().__init__(region, match_digits, min_digits)
        self.location = location
        self._pool = pool
        self._fast_pg: psycopg.AsyncConnection[Any] | None = fast
        self._fast_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        location: PgLocation,
        *,
        region: str = "ES",
        match_digits: int = 10,
        min_digits: int = 6,
        pool_size: int = 10,
    ) -> Self:
        """Connect, migrate (once, whichever instance comes first) and open the pool.
        StoreError names the server when it cannot be reached or refuses the login."""
        first = await connect(location)
        try:
            async with first.transaction():
                await first.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                found = await migrate(PgConnection(first), location.display, "postgresql")
        finally:
            await first.close()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            location.conninfo,
            kwargs=location.connect_kwargs(autocommit=True),
            configure=_configure,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            name="centralita-store",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except PoolTimeout:
            await pool.close()
            raise StoreError(
                f"cannot open connections to PostgreSQL at {location.display} "
                f"within {CONNECT_TIMEOUT_S} s"
            ) from None
        try:
            # Past the deadline the server cancels the lookup (QueryCanceled) and the pool
            # answers it without one: statement_timeout counts whole milliseconds.
            # Prepared at first use (one round trip each after), and the cdr table's
            # catalogue read now, not by the first ringing call under the deadline.
            fast = await connect(location, prepare_threshold=0)
            await fast.execute("SELECT agent FROM cdr WHERE src_key = '' LIMIT 1")
            await fast.execute(f"SET statement_timeout = {PG_FAST_LOOKUP_TIMEOUT_MS}")
            await fast.execute("SET plan_cache_mode = force_generic_plan")
        except BaseException:
            await pool.close()
            raise
        store = cls(location, pool, fast, region, match_digits, min_digits)
        if 0 < found < REPORT_TABLES_VERSION:
            try:
                await store.backfill_reports()
            except BaseException:
                await store.close()
                raise
        return store

    async def close(self) -> None:
        """Close the pool and the lookup connection (idempotent)."""
        if self._fast_pg is not None:
            await self._fast_pg.close()
            self._fast_pg = None
        await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[PgConnection]:
        async with self._pool.connection() as conn, conn.transaction():
            yield PgConnection(conn)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[PgConnection]:
        async with self._pool.connection() as conn:
            yield PgConnection(conn)

    def _last_agent_query(
        self, src_key: str, since: str, dispositions: Sequence[str], agents: Collection[str]
    ) -> tuple[str, tuple[Any, ...]]:
        # The lists as two array parameters: one query text whatever their lengths, so it is
        # prepared once, and psycopg caches its parsing (it does not past 50 parameters).
        return (
            "SELECT agent FROM cdr WHERE src_key = ? AND start >= ? "
            "AND disposition = ANY(?::text[]) AND agent = ANY(?::text[]) "
            "ORDER BY start DESC LIMIT 1",
            (src_key, since, text_array(tuple(dispositions)), text_array(tuple(agents))),
        )

    async def _insert_cdrs(self, db: Connection, rows: list[dict[str, object]]) -> int:
        # One statement for the whole batch, each column sent as one array: a row-by-row
        # executemany costs a statement per record (bench/store_bench.py's bulk ingest).
        # ON CONFLICT DO NOTHING also skips a record repeated inside the batch.
        if not rows:
            return 0
        assert isinstance(db, PgConnection)
        columns = [[row[name] for row in rows] for name in CDR_PARAM_NAMES]
        async with db.raw.cursor() as cur:
            await cur.execute(_CDR_INSERT_ARRAYS, columns)
            return max(0, cur.rowcount)

    async def _first_row_soon(self, sql: str, params: tuple[Any, ...]) -> PgRow | None:
        # One index probe on a connection of its own (no wait for the pool behind a burst
        # of writes), prepared after a few calls; busy, slow or broken: the pool.
        fast = self._fast_pg
        if fast is not None and not self._fast_lock.locked() and not fast.closed:
            async with self._fast_lock:
                try:
                    cursor = await PgConnection(fast)._run(sql, params)
                except pg_errors.QueryCanceled:
                    pass  # past the deadline: ask the pool without one
                except psycopg.OperationalError:
                    log.warning("the returning-caller lookup connection failed; using the pool")
                    self._fast_pg = None
                else:
                    return await cursor.fetchone()
        async with self._read() as db:
            return await (await db._run(sql, params)).fetchone()

    async def schema_version(self) -> int:
        """The schema version of the open database."""
        async with self._read() as db, db.execute("SELECT version FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row["version"]) if row else 0

    async def try_lease(self, name: str) -> Lease | None:
        """The lease `name` if no other instance holds it: a session-level advisory lock on
        a connection of its own, so it ends with the holder (a crash, SIGKILL, a network
        cut closes the connection, and the server frees the lock). None when held."""
        lease = await self.lease_candidate()
        try:
            got = await lease.try_take(name)
        except BaseException:
            await lease.release()
            raise
        if not got:
            await lease.release()
            return None
        return lease

    async def lease_candidate(self) -> Lease:
        """A connection of its own that holds no lease yet: `Lease.try_take` asks on it, as
        often as wanted, without a new connection (and a new server process) per ask."""
        return Lease(await connect(self.location))


class Lease:
    """An advisory lock held (or asked for: `PgStore.lease_candidate`) on its own
    connection (`PgStore.try_lease`)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def try_take(self, name: str) -> bool:
        """Take the lease `name` on this connection if no other holds it (at once, no wait).
        psycopg.Error when the connection is gone."""
        cur = await self._conn.execute(
            "SELECT pg_try_advisory_lock(%s::integer, "
            "hashtext(current_schema() || ':' || %s::text)) AS got",
            (LEASE_CLASS, name),
        )
        row = await cur.fetchone()
        return bool(row and row[0])

    async def held(self) -> bool:
        """True while the connection, and so the lock, is alive."""
        if self._conn.closed:
            return False
        try:
            await self._conn.execute("SELECT 1")
        except psycopg.Error:
            await self.release()
            return False
        return True

    async def release(self) -> None:
        """Give the lease up (idempotent)."""
        if not self._conn.closed:
            await self._conn.close()


async def connect(location: PgLocation, **extra: Any) -> psycopg.AsyncConnection[Any]:
    """One connection to `location` (autocommit), or StoreError saying why not."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            location.conninfo, **location.connect_kwargs(autocommit=True, **extra)
        )
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreError(f"cannot connect to PostgreSQL at {location.display}: {reason}") from None
    await _configure(conn)
    return conn
