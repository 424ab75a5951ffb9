"""Callback requests left by callers, and survey ratings (the low ones are complaints)."""

from __future__ import annotations

from centralita.store.base import StoreBase
from centralita.store.records import CallbackRequest, Rating, _now_iso, _status, _text


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
            "callerid": _text("callerid", callerid),
            "language": _text("language", language),
            "queue": _text("queue", queue),
            "number": _text("number", number, empty=False),
            "alternative": _text("alternative", alternative),
            "uniqueid": _text("uniqueid", uniqueid),
        }
        _status(status)
        now = _now_iso()
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO callbacks (created_at, updated_at, callerid, language, queue, "
                "number, alternative, uniqueid, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, now, *values.values(), status),
            )
            new_id = cur.lastrowid
        assert new_id is not None
        return CallbackRequest(id=new_id, created_at=now, updated_at=now, status=status, **values)

    async def list_callbacks(self, status: str | None = None) -> list[CallbackRequest]:
        """Callback requests, oldest first; only those in `status` when given."""
        sql = (
            "SELECT id, created_at, updated_at, callerid, language, queue, number, "
            "alternative, uniqueid, status FROM callbacks"
        )
        params: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (_status(status),)
        async with self._read() as db, db.execute(sql + " ORDER BY id", params) as cur:
            rows = await cur.fetchall()
        return [CallbackRequest(*row) for row in rows]

    async def get_callback(self, callback_id: int) -> CallbackRequest | None:
        """One callback request by id."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT id, created_at, updated_at, callerid, language, queue, number, "
                "alternative, uniqueid, status FROM callbacks WHERE id = ?",
                (callback_id,),
            ) as cur,
        ):
            row = await cur.fetchone()
        return CallbackRequest(*row) if row else None

    async def set_callback_status(self, callback_id: int, status: str) -> bool:
        """Set a callback's status; False when there is no such callback."""
        _status(status)
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE callbacks SET status = ?, updated_at = ? WHERE id = ?",
                (status, _now_iso(), callback_id),
            )
            return cur.rowcount > 0

    # ----------------------------------------------------------------- ratings

    async def add_rating(
        self, *, callerid: str, agent: str, queue: str, rating: int, call_id: str
    ) -> Rating:
        """Record a survey rating (0-10)."""
        if not isinstance(rating, int) or isinstance(rating, bool) or not 0 <= rating <= 10:
            raise ValueError(f"rating must be an integer from 0 to 10, not {rating!r}")
        values = {
            "callerid": _text("callerid", callerid),
            "agent": _text("agent", agent),
            "queue": _text("queue", queue),
        }
        _text("call_id", call_id)
        now = _now_iso()
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO ratings (created_at, callerid, agent, queue, rating, call_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now, *values.values(), rating, call_id),
            )
            new_id = cur.lastrowid
        assert new_id is not None
        return Rating(id=new_id, created_at=now, rating=rating, call_id=call_id, **values)

    async def list_ratings(self, *, below: int | None = None) -> list[Rating]:
        """Ratings, oldest first; only those under `below` (the complaints) when given."""
        sql = "SELECT id, created_at, callerid, agent, queue, rating, call_id FROM ratings"
        params: tuple[int, ...] = ()
        if below is not None:
            sql += " WHERE rating < ?"
            params = (int(below),)
        async with self._read() as db, db.execute(sql + " ORDER BY id", params) as cur:
            rows = await cur.fetchall()
        return [Rating(*row) for row in rows]
