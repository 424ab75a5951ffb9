"""The audit log of /admin: who changed the configuration, when, and what changed."""

from __future__ import annotations

from dataclasses import dataclass

from centralita.store.base import StoreBase, insert_id
from centralita.store.records import check_text, now_iso

# A config diff may be long (a queue edit renders a few lines; a hand-edited file more).
MAX_CHANGES = 200_000


@dataclass(frozen=True)
class AuditEntry:
    """One admin action: `actor` (an extension) did `action` to `subject` at `created_at`
    (UTC ISO-8601); `changes` is the config file's diff, secrets masked."""

    id: int
    created_at: str
    actor: str
    action: str
    subject: str
    changes: str


class AuditMixin(StoreBase):
    """The `audit_log` table (written by /admin, read at /admin/audit)."""

    async def add_audit(self, *, actor: str, action: str, subject: str, changes: str) -> AuditEntry:
        """Record one admin action (committed before this returns)."""
        values = (
            check_text("actor", actor, limit=40, empty=False),
            check_text("action", action, limit=80, empty=False),
            check_text("subject", subject, limit=200),
            check_text("changes", changes, limit=MAX_CHANGES),
        )
        now = now_iso()
        async with self._tx() as db:
            new_id = await insert_id(
                db,
                "INSERT INTO audit_log (created_at, actor, action, subject, changes) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (now, *values),
            )
        return AuditEntry(new_id, now, *values)

    async def list_audit(self, *, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """The newest entries first."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT id, created_at, actor, action, subject, changes FROM audit_log "
                "ORDER BY id DESC LIMIT ? OFFSET ?",
                (max(0, min(limit, 1000)), max(0, offset)),
            ) as cur,
        ):
            rows = await cur.fetchall()
        return [
            AuditEntry(
                id=int(row["id"]),
                created_at=row["created_at"],
                actor=row["actor"],
                action=row["action"],
                subject=row["subject"],
                changes=row["changes"],
            )
            for row in rows
        ]
