"""What the agent desktop reads and keeps (issue 11): each agent's console preferences, and a
caller's earlier calls and pending callback request for the pop (`centralita.history` shapes
them and decides who may read the notes)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any, NamedTuple

from centralita.store.base import Row, StoreBase
from centralita.store.records import check_text, now_iso
from dialplan.names import OUTBOUND_CONTEXT

# Records read to make `limit` calls: a call leaves a record per leg tried.
ROWS_PER_CALL = 4
# Pending callback requests looked at per number, once filtered by the key's last digits.
MAX_PENDING_SCAN = 50
CALLBACK_TAIL_DIGITS = 6
# Longest the pop's history may run in the event loop's thread (see `fastpath`).
FAST_HISTORY_S = 0.005

# The caller's records (their key, or click-to-dial records that dialled the number),
# newest first, each with the outcome the record's agent saved, else the latest saved.
HISTORY_SQL = (
    "SELECT c.uniqueid, c.linkedid, c.start, c.agent, c.dcontext, c.billsec, "
    "o.outcome, o.notes "
    "FROM cdr c LEFT JOIN outcomes o ON o.id = COALESCE("
    " (SELECT o3.id FROM outcomes o3 WHERE o3.call_id IN (c.linkedid, c.uniqueid) "
    "  AND o3.agent = c.agent), "
    " (SELECT o4.id FROM outcomes o4 WHERE o4.call_id IN (c.linkedid, c.uniqueid) "
    "  ORDER BY o4.updated_at DESC, o4.id DESC LIMIT 1)) "
    "WHERE c.src_key = ? OR (c.dst = ? AND c.dcontext = ?) "
    "ORDER BY c.start DESC, c.id DESC LIMIT ?"
)
# Pending requests whose number or caller ID holds the key's last digits: a cheap filter,
# each candidate is then compared by its key.
CALLBACK_SQL = (
    "SELECT id, created_at, callerid, number, alternative FROM callbacks "
    "WHERE status = 'pending' AND (instr(number, ?) > 0 OR instr(callerid, ?) > 0) "
    "ORDER BY id DESC LIMIT ?"
)


class HistoryRow(NamedTuple):
    """One of a caller's call records, with the outcome shown for it (HISTORY_SQL)."""

    uniqueid: str
    linkedid: str
    start: str
    agent: str
    dcontext: str
    billsec: int
    outcome: str
    notes: str


class PendingCallbackRow(NamedTuple):
    """A pending callback request that may be the caller's (CALLBACK_SQL)."""

    id: int
    created_at: str
    callerid: str
    number: str
    alternative: str


def history_rows(rows: Iterable[Row]) -> list[HistoryRow]:
    return [
        HistoryRow(
            uniqueid=str(r["uniqueid"] or ""),
            linkedid=str(r["linkedid"] or ""),
            start=str(r["start"] or ""),
            agent=str(r["agent"] or ""),
            dcontext=str(r["dcontext"] or ""),
            billsec=int(r["billsec"] or 0),
            outcome=str(r["outcome"] or ""),
            notes=str(r["notes"] or ""),
        )
        for r in rows
    ]


def pending_callback_rows(rows: Iterable[Row]) -> list[PendingCallbackRow]:
    return [
        PendingCallbackRow(
            id=int(r["id"]),
            created_at=str(r["created_at"] or ""),
            callerid=str(r["callerid"] or ""),
            number=str(r["number"] or ""),
            alternative=str(r["alternative"] or ""),
        )
        for r in rows
    ]


class DeskMixin(StoreBase):
    """The `agent_preferences` table (migration 4), and the pop's history reads."""

    async def agent_preferences(self, extension: str) -> str | None:
        """The agent's stored preferences (JSON text), or None."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT preferences FROM agent_preferences WHERE extension = ?", (extension,)
            ) as cur,
        ):
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def set_agent_preferences(self, extension: str, preferences: str) -> None:
        """Store the agent's preferences (JSON text, checked by `centralita.agentprefs`)."""
        check_text("extension", extension, limit=80, empty=False)
        check_text("preferences", preferences, limit=4000, empty=False)
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO agent_preferences (extension, preferences, updated_at) "
                "VALUES (?, ?, ?) ON CONFLICT (extension) DO UPDATE SET "
                "preferences = excluded.preferences, updated_at = excluded.updated_at",
                (extension, preferences, now_iso()),
            )

    def _history_params(self, key: str, number: str, limit: int) -> tuple[Any, ...]:
        return (key, number, OUTBOUND_CONTEXT, limit * ROWS_PER_CALL)

    def _callback_params(self, key: str) -> tuple[Any, ...]:
        tail = key[-CALLBACK_TAIL_DIGITS:]
        return (tail, tail, MAX_PENDING_SCAN)

    def caller_history_now(
        self, key: str, number: str, limit: int
    ) -> tuple[list[HistoryRow], list[PendingCallbackRow]] | None:
        """`caller_history`, answered at once in the event loop's thread, or None when it
        cannot be (busy, past FAST_HISTORY_S, closed): then await `caller_history`."""
        fast = self._fast
        if fast is None:
            return None
        try:
            calls = fast.all_rows(
                HISTORY_SQL, self._history_params(key, number, limit), FAST_HISTORY_S
            )
            callbacks = fast.all_rows(CALLBACK_SQL, self._callback_params(key), FAST_HISTORY_S)
        except sqlite3.Error:
            return None
        return history_rows(calls), pending_callback_rows(callbacks)

    async def caller_history(
        self, key: str, number: str, limit: int
    ) -> tuple[list[HistoryRow], list[PendingCallbackRow]]:
        """The caller's records (uniqueid, linkedid, start, agent, dcontext, billsec,
        outcome, notes), newest first, at most `limit` * ROWS_PER_CALL; and the pending
        callback requests (id, created_at, callerid, number, alternative) that may be theirs.
        `key` is the number's key; `number` as dialled, for click-to-dial records."""
        async with self._read() as db:
            calls = await db.execute_fetchall(HISTORY_SQL, self._history_params(key, number, limit))
            callbacks = await db.execute_fetchall(CALLBACK_SQL, self._callback_params(key))
        return history_rows(calls), pending_callback_rows(callbacks)
