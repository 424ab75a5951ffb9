"""What every part of the store shares, whatever database keeps it: the connection as the
table mixins see it, transactions, and the phone-number key settings.

The mixins (callbacks, calls, contacts, ...) are written once against `Connection`, the
subset of aiosqlite's connection they use: `execute` (awaited or `async with`),
`executemany`, `execute_fetchall`, cursors with `fetchone`/`fetchall`/`fetchmany`/
`rowcount`, rows read by column name. SQLite hands them its aiosqlite connection
(`centralita.store.sqlite`); PostgreSQL an adapter with the same shape over a pooled
psycopg connection (`centralita.store.postgres`), which rewrites the `?` placeholders. So
every query exists once, in the portable SQL the mixins are held to
(docs/cluster.md#the-store).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from centralita import phone

if TYPE_CHECKING:
    from centralita.store.fastpath import FastReader


class Row(Protocol):
    """A result row, read by column name (or position): `sqlite3.Row` or the PostgreSQL
    backend's `PgRow`."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    """What a statement's result offers."""

    @property
    def rowcount(self) -> int: ...
    async def fetchone(self) -> Row | None: ...
    async def fetchall(self) -> Iterable[Row]: ...
    async def fetchmany(self, size: int, /) -> Iterable[Row]: ...


class Executed(Protocol):
    """`Connection.execute`'s result: awaited, or entered with `async with`."""

    def __await__(self) -> Generator[Any, None, Cursor]: ...
    async def __aenter__(self) -> Cursor: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class FetchedAll(Protocol):
    def __await__(self) -> Generator[Any, None, Iterable[Row]]: ...


class Connection(Protocol):
    """The connection the mixins' SQL runs on (see the module's docstring)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Executed: ...
    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Executed: ...
    def execute_fetchall(self, sql: str, parameters: Any = ..., /) -> FetchedAll: ...


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a `Script`: run with `parameters` (or, `many`, once per parameter
    set in `parameters`, as `executemany`)."""

    sql: str
    parameters: Any = ()
    many: bool = False


T = TypeVar("T")

# A write told as a generator: it yields each `Statement` and is sent back the statement's
# rows (all of them; none for `many`), then returns its result. It does no I/O itself, so
# each backend runs it its quickest way (`StoreBase._run_script`): SQLite in one trip to its
# worker thread, instead of a trip per statement.
Script = Generator[Statement, Sequence[Row], T]


class StoreBase:
    """The phone-number key settings and the transaction hooks; the tables are mixed in by
    each backend's store class, which provides `_tx` and `_read`."""

    # The dialect's name: "sqlite" or "postgresql".
    dialect = ""

    def __init__(self, region: str, match_digits: int, min_digits: int) -> None:
        self.region = region
        self.match_digits = match_digits
        self.min_digits = min_digits
        # SQLite only: the read-only connection in the loop's thread (see `fastpath`); the
        # `..._now` methods answer None without it, and their callers await the store.
        self._fast: FastReader | None = None

    def _tx(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction, committed when the block ends (rolled back on an error)."""
        raise NotImplementedError

    def _read(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads (no transaction is promised)."""
        raise NotImplementedError

    async def _run_script(self, script: Script[T]) -> T:
        """Run `script` in one write transaction (committed when it returns, rolled back
        when it raises), a statement at a time on the `_tx` connection."""
        async with self._tx() as db:
            try:
                statement = next(script)
                while True:
                    if statement.many:
                        await db.executemany(statement.sql, statement.parameters)
                        rows: Sequence[Row] = ()
                    else:
                        rows = list(await db.execute_fetchall(statement.sql, statement.parameters))
                    statement = script.send(rows)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def _first_row_soon(self, sql: str, params: tuple[Any, ...]) -> Row | None:
        """The first row of a lookup a ringing call waits on (`last_agent_for`): each
        backend answers it by its quickest path, bounded as `fastpath.FAST_LOOKUP_S`."""
        async with self._read() as db, db.execute(sql, params) as cur:
            return await cur.fetchone()

    def key(self, number: str) -> str | None:
        """The matching key of `number` with this store's settings."""
        return phone.normalize(number, self.region, self.match_digits, self.min_digits)

    def _phone_settings(self) -> tuple[str, int, int]:
        return self.region, self.match_digits, self.min_digits


async def insert_id(db: Connection, sql: str, params: Any) -> int:
    """Run an `INSERT ... RETURNING id` and give the new id (portable: no `lastrowid`)."""
    async with db.execute(sql, params) as cur:
        rows = list(await cur.fetchall())  # every row read, so the statement is finished
    return int(rows[0]["id"])
