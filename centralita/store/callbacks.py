"""Callback requests left by callers, and survey ratings (the low ones are complaints)."""

from __future__ import annotations

from centralita.store import report_tables
from centralita.store.base import StoreBase
from centralita.store.errors import StoreInputError
from centralita.store.records import (
    CALLBACK_COLUMNS,
    RATING_COLUMNS,
    CallbackRequest,
    Rating,
    callback_from_row,
    check_status,
    check_text,
    now_iso,
    rating_from_row,
)


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
        sql = f"SELECT {CALLBACK_COLUMNS} FROM callbacks"  # noqa: S608 (constant columns)
        params: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (check_status(status),)
        async with self._read() as db, db.execute(sql + " ORDER BY id", params) as cur:
            rows = await cur.fetchall()
        return [callback_from_row(row) for row in rows]

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
        """Set a callback's status; False when there is no such callback."""
        check_status(status)
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE callbacks SET status = ?, updated_at = ? WHERE id = ?",
                (status, now_iso(), callback_id),
            )
            return cur.rowcount > 0

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
            cur = await db.execute(
                "INSERT INTO ratings (created_at, callerid, agent, queue, rating, call_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now, *values.values(), rating, call_id),
            )
            new_id = cur.lastrowid
            # The reports' running count, in the same transaction (store/report_tables.py).
            change = report_tables.rating_contribution(
                now, values["queue"], values["agent"], rating
            )
            await report_tables.apply(db, change)
        assert new_id is not None
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
