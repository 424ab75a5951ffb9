"""The state that several Centralita instances on one database share besides the records:
the console's cookie signing key, and the login rate limits (docs/cluster.md#shared-state).

* `shared_secret`: a secret made once, by whichever instance comes first (`INSERT ... ON
  CONFLICT DO NOTHING`, then read: every other instance reads the winner's). The value is
  never logged, and `db copy` leaves the table out (`copy.SKIPPED_TABLES`): the target makes
  its own key when an instance first opens it.
* `login_failures`: one row per login attempt not (yet) known to have succeeded, per limited
  key (`ip:...`, `ext:...`), so a flood spread over instances is limited as one. The check
  and the record are one conditional INSERT (nothing is written once a key is over its
  limit), then one read of the keys' recent rows: the retry-after of a refused attempt, and
  on PostgreSQL the check that attempts racing on other connections did not together pass
  the limit (each committed its row before reading, so the last of them to read sees them
  all). SQLite runs the store's statements one at a time, so its INSERT alone decides.
* `callbacks_changed_since`, `ratings_since`: what the elected CSV writer reads
  (centralita/csvfiles.py), through indexes on the times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from centralita.store.base import StoreBase
from centralita.store.records import (
    CALLBACK_COLUMNS,
    RATING_COLUMNS,
    CallbackRequest,
    Rating,
    callback_from_row,
    now_iso,
    rating_from_row,
)

# The name of the console's cookie signing key in `shared_secrets`.
SESSION_KEY = "session_signing_key"


@dataclass(frozen=True, slots=True)
class LoginLimit:
    """At most `limit` failures of `key` within `window_s` seconds."""

    key: str
    limit: int
    window_s: float


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """What `record_login_attempt` decided: the rows it recorded (to take back on success),
    or how long to wait (`retry_after_s` > 0, nothing recorded)."""

    ids: tuple[int, ...]
    retry_after_s: float

    @property
    def allowed(self) -> bool:
        return self.retry_after_s <= 0


@lru_cache(maxsize=16)
def _conditional_insert(keys: int) -> str:
    """One row per key, all or none: none when any key has `limit` failures in its window."""
    names = " UNION ALL ".join("SELECT ? AS key" for _ in range(keys))
    under = " AND ".join(
        "(SELECT count(*) FROM login_failures WHERE key = ? AND at > ?) < ?" for _ in range(keys)
    )
    return (
        f"INSERT INTO login_failures (key, at) SELECT k.key, ? FROM ({names}) AS k "  # noqa: S608
        f"WHERE {under} RETURNING id"
    )


@lru_cache(maxsize=16)
def _recent(keys: int) -> str:
    recent = " OR ".join("(key = ? AND at > ?)" for _ in range(keys))
    return f"SELECT id, key, at FROM login_failures WHERE {recent}"  # noqa: S608


def _retry_after(
    limits: Sequence[LoginLimit], rows: list[Any], now: float, mine: set[int]
) -> float:
    """Seconds until every key is under its limit again, not counting the rows in `mine`."""
    wait = 0.0
    for lim in limits:
        stamps = sorted(
            (float(r["at"]) for r in rows if r["key"] == lim.key and int(r["id"]) not in mine),
            reverse=True,
        )
        if len(stamps) >= lim.limit:
            wait = max(wait, stamps[lim.limit - 1] + lim.window_s - now)
    return wait


class SharedStateMixin(StoreBase):
    """The `shared_secrets` and `login_failures` tables."""

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """The secret kept under `name`; `candidate` becomes it when there is none yet.
        Several instances asking at once all get the same one (the first committed)."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO shared_secrets (name, value, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, candidate, now_iso()),
            )
            async with db.execute(
                "SELECT value FROM shared_secrets WHERE name = ?", (name,)
            ) as cur:
                row = await cur.fetchone()
        assert row is not None
        return bytes(row["value"])

    async def record_login_attempt(self, limits: Sequence[LoginLimit], now: float) -> LoginAttempt:
        """Record a login attempt against each of `limits` (a failure until taken back by
        `forget_login_attempts`), unless one is already at its limit: then nothing is
        recorded and the answer says how long to wait. `now` is epoch seconds."""
        params: list[Any] = [now, *(lim.key for lim in limits)]
        for lim in limits:
            params += [lim.key, now - lim.window_s, lim.limit]
        async with self._tx() as db, db.execute(_conditional_insert(len(limits)), params) as cur:
            ids = tuple(int(r["id"]) for r in await cur.fetchall())
        if ids and self.dialect == "sqlite":
            return LoginAttempt(ids, 0.0)  # one statement at a time: the INSERT decided
        recent: list[Any] = []
        for lim in limits:
            recent += [lim.key, now - lim.window_s]
        async with self._read() as db:
            rows = list(await db.execute_fetchall(_recent(len(limits)), recent))
        if ids:
            over = any(sum(1 for r in rows if r["key"] == lim.key) > lim.limit for lim in limits)
            if not over:
                return LoginAttempt(ids, 0.0)
            # Attempts on other instances passed the check with this one: this one yields.
            await self.forget_login_attempts(ids)
        wait = _retry_after(limits, rows, now, set(ids))
        return LoginAttempt((), max(wait, 1.0))

    async def forget_login_attempts(self, ids: Sequence[int], key: str | None = None) -> None:
        """Take back the attempts `ids` (they succeeded, or were never tried), and every
        failure of `key` when given (a successful login clears its extension's)."""
        marks = ", ".join("?" for _ in ids) or "NULL"
        sql = f"DELETE FROM login_failures WHERE id IN ({marks})"  # noqa: S608 (marks only)
        params: list[Any] = list(ids)
        if key is not None:
            sql += " OR key = ?"
            params.append(key)
        async with self._tx() as db:
            await db.execute(sql, params)

    async def prune_login_failures(self, before: float) -> int:
        """Delete the failures older than `before` (epoch seconds): out of every window."""
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM login_failures WHERE at <= ?", (before,))
            return cur.rowcount

    async def callbacks_changed_since(self, since: str) -> list[CallbackRequest]:
        """The callback requests changed at `since` (UTC ISO text) or later, in that order."""
        sql = (
            f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE updated_at >= ? "  # noqa: S608
            "ORDER BY updated_at, id"
        )
        async with self._read() as db, db.execute(sql, (since,)) as cur:
            return [callback_from_row(row) for row in await cur.fetchall()]

    async def ratings_since(self, since: str) -> list[Rating]:
        """The ratings made at `since` (UTC ISO text) or later, in that order."""
        sql = (
            f"SELECT {RATING_COLUMNS} FROM ratings WHERE created_at >= ? "  # noqa: S608
            "ORDER BY created_at, id"
        )
        async with self._read() as db, db.execute(sql, (since,)) as cur:
            return [rating_from_row(row) for row in await cur.fetchall()]
