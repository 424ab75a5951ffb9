"""What every part of the SQLite store shares: the connection, its lock and transactions,
and the phone-number key settings."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from centralita import phone
from centralita.store.fastpath import FastReader


class StoreBase:
    """The connection and its transactions; the tables are mixed in by `Store`."""

    def __init__(
        self, db: aiosqlite.Connection, path: Path, region: str, match_digits: int, min_digits: int
    ) -> None:
        self._db = db
        self.path = path
        self.region = region
        self.match_digits = match_digits
        self.min_digits = min_digits
        # One aiosqlite connection is one SQLite connection: a transaction must not
        # interleave with another coroutine's statements.
        self._lock = asyncio.Lock()
        # Read-only connection for the returning-caller lookup, used in the loop's thread:
        # see `last_agent_for`.
        self._fast: FastReader | None = None

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

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass  # no transaction open: BEGIN failed, or COMMIT went through

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            yield self._db

    def key(self, number: str) -> str | None:
        """The matching key of `number` with this store's settings."""
        return phone.normalize(number, self.region, self.match_digits, self.min_digits)

    def _phone_settings(self) -> tuple[str, int, int]:
        return self.region, self.match_digits, self.min_digits
