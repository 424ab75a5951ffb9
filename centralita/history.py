"""A caller's earlier calls and pending callback request, for the pop and `GET /api/history`.

The calls are the call records (`cdr`) whose caller key is the number's key (inbound), or
click-to-dial records that dialled the number (outbound), newest first, one per call (a
call can leave several records: a queue call has one per leg tried), each with the outcome
the record's agent saved (else the latest saved) and its notes. Notes are private to
whoever took the call: a viewer who is not a supervisor gets `notes: null` for calls another
agent took (docs/console.md, "Security").

The pop asks on the event loop's thread (`Store.caller_history_now`, on the store's
read-only connection bounded by a deadline, as for contacts): a trip to aiosqlite's thread
queued behind a call-record commit would delay the ring. When that cannot answer (busy, past
the deadline) it asks the store's thread (`Store.caller_history`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypedDict

from ami.cdr import parse_cdr_time
from centralita import phone
from centralita.store import StoreBackend
from centralita.store.desk import HistoryRow, PendingCallbackRow
from centralita.times import shown
from dialplan.names import OUTBOUND_CONTEXT

HISTORY_LIMIT = 10
MAX_HISTORY_LIMIT = 100


class HistoryItem(TypedDict):
    """One earlier call in `history` (docs/console.md)."""

    call_id: str
    uniqueid: str
    start: str
    agent: str
    agent_name: str
    direction: str
    duration: int
    outcome: str
    notes: str | None


class PendingCallback(TypedDict):
    """The caller's pending callback request (docs/console.md)."""

    id: int
    requested_at: str
    number: str
    alt_number: str


Rows = tuple[list[Sequence[Any]], list[Sequence[Any]]]


class History:
    """Looks up history for numbers with the store's key settings (see the module doc)."""

    def __init__(
        self, store: StoreBackend, agent_names: Mapping[str, str], supervisors: Collection[str]
    ) -> None:
        self.store = store
        self.agent_names: dict[str, str] = {}
        self.supervisors: frozenset[str] = frozenset()
        self.configure(agent_names, supervisors)

    def configure(self, agent_names: Mapping[str, str], readers: Collection[str]) -> None:
        """Take the agents' names and who reads every call's notes (`readers`) anew.

        Nothing else is kept here: every lookup reads the store, so the next one shows the
        new names and hides or shows notes by the new readers. A removed agent's calls are
        still listed, under its extension with no name.
        """
        self.agent_names = dict(agent_names)
        self.supervisors = frozenset(readers)

    async def lookup(
        self,
        number: str,
        viewer: str,
        *,
        limit: int = HISTORY_LIMIT,
        exclude_call: str = "",
    ) -> tuple[list[HistoryItem], PendingCallback | None]:
        """The earlier calls (newest first, at most `limit`) and the pending callback of
        `number`, as `viewer` may see them; nothing for a private or unusable number."""
        key = self.store.key(number) if not phone.is_private(number) else None
        if key is None:
            return [], None
        limit = max(1, min(limit, MAX_HISTORY_LIMIT))
        rows = self.store.caller_history_now(key, number, limit)
        if rows is None:
            rows = await self.store.caller_history(key, number, limit)
        calls, callbacks = rows
        return (
            self._items(calls, viewer, limit, exclude_call),
            self._callback(callbacks, key),
        )

    def _items(
        self, rows: Sequence[HistoryRow], viewer: str, limit: int, exclude_call: str
    ) -> list[HistoryItem]:
        supervisor = viewer in self.supervisors
        items: list[HistoryItem] = []
        index: dict[str, int] = {}
        for row in rows:
            call_id = row.linkedid or row.uniqueid
            if exclude_call and call_id == exclude_call:
                continue
            seen = index.get(call_id)
            if seen is not None:
                # Another leg of a call already listed: it names the agent who took it.
                if not items[seen]["agent"] and row.agent:
                    items[seen] = self._item(row, call_id, supervisor, viewer)
                continue
            if len(items) < limit:
                index[call_id] = len(items)
                items.append(self._item(row, call_id, supervisor, viewer))
        return items

    def _item(self, row: HistoryRow, call_id: str, supervisor: bool, viewer: str) -> HistoryItem:
        started = parse_cdr_time(row.start)
        may_read = supervisor or (bool(row.agent) and row.agent == viewer)
        return {
            "call_id": call_id,
            "uniqueid": row.uniqueid,
            "start": started.astimezone().isoformat(timespec="seconds") if started else "",
            "agent": row.agent,
            "agent_name": self.agent_names.get(row.agent, ""),
            "direction": "out" if row.dcontext == OUTBOUND_CONTEXT else "in",
            "duration": row.billsec,
            "outcome": row.outcome,
            "notes": row.notes if may_read else None,
        }

    def _callback(self, rows: Sequence[PendingCallbackRow], key: str) -> PendingCallback | None:
        for row in rows:
            if key in (self.store.key(row.callerid), self.store.key(row.number)):
                return {
                    "id": row.id,
                    "requested_at": shown(row.created_at).replace(" ", "T", 1),
                    "number": row.number,
                    "alt_number": row.alternative,
                }
        return None
