"""Callback requests left by callers, worked by agents (assigned, called back, closed with a
note: issue 12), and survey ratings (the low ones are complaints)."""

from __future__ import annotations

from collections.abc import Collection

from centralita.store import report_tables
from centralita.store.base import StoreBase, insert_id
from centralita.store.errors import StoreInputError
from centralita.store.records import (
    ATTEMPT_COLUMNS,
    ATTEMPT_RESULTS,
    CALLBACK_COLUMNS,
    MAX_NOTES,
    RATING_COLUMNS,
    CallbackAttempt,
    CallbackRequest,
    Rating,
    attempt_from_row,
    callback_from_row,
    check_status,
    check_text,
    now_iso,
    rating_from_row,
)

# An extension or "cli": who assigned, called or closed.
MAX_ACTOR = 40
# Callback ids asked for at once (the /callbacks page's attempts, one query per chunk).
IDS_PER_QUERY = 500


class CallbacksMixin(StoreBase):
    """The `callbacks` and `ratings` tables."""

    # ----------------------------------------------------------------- callbacks

    async def add_callback(
        self,
        *,
        callerid: str,
        language: str,
        queue: str,
        number: str,
        alternative: str,
        uniqueid: str,
        status: str = "pending",
    ) -> CallbackRequest:
        """Record a callback request left by a caller."""
        values = {
            "callerid": check_text("callerid", callerid),
            "language": check_text("language", language),
            "queue": check_text("queue", queue),
            "number": check_text("number", number, empty=False),
            "alternative": check_text("alternative", alternative),
            "uniqueid": check_text("uniqueid", uniqueid),
        }
        check_status(status)
        now = now_iso()
        async with self._tx() as db:
            new_id = await insert_id(
                db,
                "INSERT INTO callbacks (created_at, updated_at, callerid, language, queue, "
                "number, alternative, uniqueid, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (now, now, *values.values(), status),
            )
        return CallbackRequest(id=new_id, created_at=now, updated_at=now, status=status, **values)

    async def list_callbacks(
        self, status: str | None = None, *, assigned_to: str | None = None
    ) -> list[CallbackRequest]:
        """Callback requests, oldest first; only those in `status`, and assigned to the
        agent `assigned_to` ("" for the unassigned ones), when given."""
        where, params = _callback_filter(status, assigned_to)
        sql = f"SELECT {CALLBACK_COLUMNS} FROM callbacks{where} ORDER BY id"  # noqa: S608
        async with self._read() as db, db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [callback_from_row(row) for row in rows]

    async def count_callbacks(
        self, status: str | None = None, *, assigned_to: str | None = None
    ) -> int:
        """How many requests `list_callbacks` would give with the same filters."""
        where, params = _callback_filter(status, assigned_to)
        sql = f"SELECT COUNT(*) FROM callbacks{where}"  # noqa: S608 (constant clauses)
        async with self._read() as db, db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def set_callback_alternative(
        self, callback_id: int, alternative: str
    ) -> CallbackRequest | None:
        """Give a stored request its alternative number (the caller confirmed it after the
        main one was stored); None when there is no such request."""
        check_text("alternative", alternative)
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE callbacks SET alternative = ?, updated_at = ? WHERE id = ?",
                (alternative, now_iso(), callback_id),
            )
            changed = cur.rowcount > 0
        return await self.get_callback(callback_id) if changed else None

    async def get_callback(self, callback_id: int) -> CallbackRequest | None:
        """One callback request by id."""
        async with (
            self._read() as db,
            db.execute(
                f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE id = ?",  # noqa: S608
                (callback_id,),
            ) as cur,
        ):
            row = await cur.fetchone()
        return callback_from_row(row) if row else None

    async def set_callback_status(self, callback_id: int, status: str) -> bool:
        """Set a callback's status (its note and closer unchanged); False when there is no
        such callback. Closing sets `closed_at`, reopening clears it."""
        check_status(status)
        now = now_iso()
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE callbacks SET status = ?, updated_at = ?, closed_at = ? WHERE id = ?",
                (status, now, None if status == "pending" else now, callback_id),
            )
            return cur.rowcount > 0

    async def assign_callback(self, callback_id: int, agent: str) -> CallbackRequest | None:
        """Assign a request to `agent` (an extension; "" takes it from whoever had it); None
        when there is no such callback."""
        agent = check_text("agent", agent, limit=MAX_ACTOR)
        now = now_iso()
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE callbacks SET assigned_to = ?, assigned_at = ?, updated_at = ? "
                "WHERE id = ?",
                (agent, now if agent else None, now, callback_id),
            )
            if cur.rowcount == 0:
                return None
        return await self.get_callback(callback_id)

    async def close_callback(
        self, callback_id: int, *, status: str, by: str, note: str = ""
    ) -> CallbackRequest | None:
        """Mark a request done or cancelled by `by` (an extension, or "cli") with `note`;
        None when there is no such callback."""
        if check_status(status) == "pending":
            raise StoreInputError("a callback is closed as done or cancelled, not pending")
        values = (
            status,
            check_text("by", by, limit=MAX_ACTOR, empty=False),
            check_text("note", note, limit=MAX_NOTES),
        )
        now = now_iso()
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE callbacks SET status = ?, closed_by = ?, note = ?, closed_at = ?, "
                "updated_at = ? WHERE id = ?",
                (*values, now, now, callback_id),
            )
            if cur.rowcount == 0:
                return None
        return await self.get_callback(callback_id)

    # ----------------------------------------------------------------- call-back attempts

    async def add_callback_attempt(
        self, callback_id: int, *, agent: str, number: str
    ) -> CallbackAttempt | None:
        """Record that `agent` is calling `number` back for the request (result `calling`
        until `finish_callback_attempt`); None when there is no such callback."""
        agent = check_text("agent", agent, limit=MAX_ACTOR, empty=False)
        number = check_text("number", number, empty=False)
        now = now_iso()
        async with self._tx() as db:
            async with db.execute("SELECT id FROM callbacks WHERE id = ?", (callback_id,)) as cur:
                if await cur.fetchone() is None:
                    return None
            async with db.execute(
                "INSERT INTO callback_attempts (callback_id, agent, number, started_at, "
                "call_id, result, reason) VALUES (?, ?, ?, ?, '', 'calling', '') RETURNING id",
                (callback_id, agent, number, now),
            ) as cur:
                row = await cur.fetchone()
            await db.execute("UPDATE callbacks SET updated_at = ? WHERE id = ?", (now, callback_id))
        assert row is not None
        return CallbackAttempt(
            id=int(row[0]),
            callback_id=callback_id,
            agent=agent,
            number=number,
            started_at=now,
            ended_at=None,
            call_id="",
            result="calling",
            reason="",
        )

    async def finish_callback_attempt(
        self, attempt_id: int, *, result: str, reason: str = "", call_id: str = ""
    ) -> bool:
        """Store how an attempt went (one of ATTEMPT_RESULTS but `calling`); False when
        there is no such attempt."""
        if result not in ATTEMPT_RESULTS or result == "calling":
            raise StoreInputError(
                f"unknown attempt result {result!r}; expected one of "
                f"{', '.join(ATTEMPT_RESULTS[1:])}"
            )
        values = (result, check_text("reason", reason), check_text("call_id", call_id, limit=200))
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE callback_attempts SET result = ?, reason = ?, call_id = ?, ended_at = ? "
                "WHERE id = ?",
                (*values, now_iso(), attempt_id),
            )
            return cur.rowcount > 0

    async def list_callback_attempts(self, callback_ids: Collection[int]) -> list[CallbackAttempt]:
        """The attempts at these requests, oldest first."""
        ids = sorted({int(i) for i in callback_ids})
        found: list[CallbackAttempt] = []
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start : start + IDS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            sql = (
                f"SELECT {ATTEMPT_COLUMNS} FROM callback_attempts "  # noqa: S608 (marks only)
                f"WHERE callback_id IN ({marks}) ORDER BY id"
            )
            async with self._read() as db, db.execute(sql, chunk) as cur:
                found.extend(attempt_from_row(row) for row in await cur.fetchall())
        found.sort(key=lambda attempt: attempt.id)
        return found

    # ----------------------------------------------------------------- ratings

    async def add_rating(
        self, *, callerid: str, agent: str, queue: str, rating: int, call_id: str
    ) -> Rating:
        """Record a survey rating (0-10)."""
        if not isinstance(rating, int) or isinstance(rating, bool) or not 0 <= rating <= 10:
            raise StoreInputError(f"rating must be an integer from 0 to 10, not {rating!r}")
        values = {
            "callerid": check_text("callerid", callerid),
            "agent": check_text("agent", agent),
            "queue": check_text("queue", queue),
        }
        check_text("call_id", call_id)
        now = now_iso()
        async with self._tx() as db:
            new_id = await insert_id(
                db,
                "INSERT INTO ratings (created_at, callerid, agent, queue, rating, call_id) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (now, *values.values(), rating, call_id),
            )
            # The reports' running count, in the same transaction (store/report_tables.py).
            change = report_tables.rating_contribution(
                now, values["queue"], values["agent"], rating
            )
            await report_tables.apply(db, change)
        return Rating(id=new_id, created_at=now, rating=rating, call_id=call_id, **values)

    async def list_ratings(self, *, below: int | None = None) -> list[Rating]:
        """Ratings, oldest first; only those under `below` (the complaints) when given."""
        sql = f"SELECT {RATING_COLUMNS} FROM ratings"  # noqa: S608 (constant columns)
        params: tuple[int, ...] = ()
        if below is not None:
            sql += " WHERE rating < ?"
            params = (int(below),)
        async with self._read() as db, db.execute(sql + " ORDER BY id", params) as cur:
            rows = await cur.fetchall()
        return [rating_from_row(row) for row in rows]


def _callback_filter(status: str | None, assigned_to: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (with its leading space, or "") and parameters of a callback query."""
    clauses: list[str] = []
    params: list[str] = []
    if status is not None:
        clauses.append("status = ?")
        params.append(check_status(status))
    if assigned_to is not None:
        clauses.append("assigned_to = ?")
        params.append(check_text("assigned_to", assigned_to, limit=MAX_ACTOR))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)
