"""What the quality pages read from the store: one rating by id, for the complaints box's
message that plays beside it (centralita/web/quality.py)."""

from __future__ import annotations

from centralita.store.base import StoreBase
from centralita.store.records import RATING_COLUMNS, Rating, rating_from_row


class QualityMixin(StoreBase):
    """Lookups by id for the playback endpoints: the server finds the file from the object."""

    async def get_rating(self, rating_id: int) -> Rating | None:
        """The rating with this id, or None."""
        async with (
            self._read() as db,
            db.execute(
                f"SELECT {RATING_COLUMNS} FROM ratings WHERE id = ?",  # noqa: S608 (constant)
                (int(rating_id),),
            ) as cur,
        ):
            row = await cur.fetchone()
        return rating_from_row(row) if row is not None else None
