"""The webhook outbox: events queued in the same file as everything else, so a delivery is
never lost to a restart, and claimed by one sender at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from centralita.store.base import StoreBase
from centralita.store.errors import StoreInputError
from centralita.store.records import (
    OUTBOX_COLUMNS,
    OutboxEvent,
    check_text,
    now_iso,
    outbox_event_from_row,
    utc_text,
)


class OutboxMixin(StoreBase):
    """The `outbox` table."""

    # ----------------------------------------------------------------- webhook outbox

    async def enqueue_event(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        now: datetime | None = None,
        key: str | None = None,
    ) -> int:
        """Queue a webhook delivery (due at once); returns its id.

        With a `key` (the call event it reports), an event already queued for `url` under
        that key is not queued again and 0 is returned: several instances follow the same
        Asterisk and each sees the event, but one row goes out (docs/cluster.md).
        """
        check_text("url", url, empty=False)
        if not url.startswith(("http://", "https://")):
            raise StoreInputError(f"webhook url {url!r} must start with http:// or https://")
        if key is not None:
            check_text("event key", key, empty=False)
        try:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreInputError(f"webhook payload is not JSON: {exc}") from None
        moment = now or datetime.now(UTC)
        async with (
            self._tx() as db,
            db.execute(
                "INSERT INTO outbox (url, payload, created_at, next_attempt_at, event_key) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (url, event_key) DO NOTHING RETURNING id",
                (url, body, now_iso(), utc_text(moment), key),
            ) as cur,
        ):
            rows = list(await cur.fetchall())  # every row read, so the statement is finished
        return int(rows[0]["id"]) if rows else 0

    async def due_events(self, now: datetime, limit: int = 100) -> list[OutboxEvent]:
        """Unsent events whose next attempt is due at `now`, oldest first."""
        async with (
            self._read() as db,
            db.execute(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox "  # noqa: S608 (constant columns)
                "WHERE sent_at IS NULL AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, id LIMIT ?",
                (utc_text(now), max(1, int(limit))),
            ) as cur,
        ):
            rows = await cur.fetchall()
        return [outbox_event_from_row(r) for r in rows]

    async def claim_due(
        self, now: datetime, *, lease_s: float, limit: int = 100
    ) -> list[OutboxEvent]:
        """Take the due, unclaimed events (oldest first) for `lease_s` seconds.

        Claimed in one transaction before anything is sent, so a second sender (another
        process) does not post them too. A sender killed mid-send leaves its claim to
        expire, and the event is sent again then: delivered once, or retried, never lost
        (issue 10, finding 10).
        """
        moment = utc_text(now)
        # SQLite: BEGIN IMMEDIATE already makes one claimer at a time. PostgreSQL: the rows
        # are locked as they are read, and rows another instance is claiming are skipped
        # rather than waited for (each event goes to one sender).
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        async with self._tx() as db:
            async with db.execute(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox "  # noqa: S608 (constant columns)
                "WHERE sent_at IS NULL AND next_attempt_at <= ? "
                "AND (claimed_until IS NULL OR claimed_until <= ?) "
                f"ORDER BY next_attempt_at, id LIMIT ?{lock}",
                (moment, moment, max(1, int(limit))),
            ) as cur:
                rows = list(await cur.fetchall())
            until = utc_text(now + timedelta(seconds=lease_s))
            await db.executemany(
                "UPDATE outbox SET claimed_until = ? WHERE id = ?", [(until, r["id"]) for r in rows]
            )
        return [outbox_event_from_row(r) for r in rows]

    async def mark_sent(self, event_id: int) -> bool:
        """Mark an event delivered; False when unknown or already sent."""
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, claimed_until = NULL "
                "WHERE id = ? AND sent_at IS NULL",
                (utc_text(datetime.now(UTC)), event_id),
            )
            return cur.rowcount > 0

    async def mark_failed(self, event_id: int, next_attempt_at: datetime, error: str) -> bool:
        """Record a failed delivery and when to retry; False when unknown or already sent."""
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
                "claimed_until = NULL WHERE id = ? AND sent_at IS NULL",
                (utc_text(next_attempt_at), str(error)[:1000], event_id),
            )
            return cur.rowcount > 0

    async def outbox_backlog(self) -> int:
        """How many events are waiting to be delivered."""
        async with (
            self._read() as db,
            db.execute("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL") as cur,
        ):
            row = await cur.fetchone()
        return int(row["n"]) if row else 0
