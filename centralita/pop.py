"""The screen-pop bridge: AMI call changes -> contact lookup -> one agent's WebSocket(s).

`PopHub` keeps the open console sockets of each agent; `PopBridge.on_change(change)` turns an
`ami.tracker.CallChange` into the JSON message of the external contract
(docs/design.md#external-contract):

    {"type": "call.ringing"|"call.answered"|"call.ended", "call_id": <Linkedid>,
     "direction": "in"|"out", "number": ..., "agent": <extension>, "queue": ...|null,
     "contacts": [...], "crm_url": ...|null}

plus `customer_id` when the customer-ID flow set `CENTRALITA_CUSTOMER_ID`, and `name` (the
caller-ID name, a stranger's text: the console shows it with textContent only) and `uniqueid`,
the call timer's `started_at` / `answered_at` / `ended_at` (epoch seconds), the IVR
`language`, and the caller's `history` (earlier calls), `history_url` and pending `callback`
(`centralita.history`). `PopMessage` is the message's type; docs/console.md documents it.
A message goes ONLY to the sockets of `change.agent`: the hub is keyed by extension and there
is no broadcast path at all.

The bridge remembers each agent's open pops so a console that (re)connects mid-call shows the
call at once, and caches the contacts found at `ringing` for the later steps of the same pop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Protocol, TypedDict

from aiohttp import web

from centralita import phone
from centralita.history import History, HistoryItem, PendingCallback
from centralita.store import Contact, StoreBackend, StoreInputError
from dialplan.model import CrmSettings

log = logging.getLogger("centralita.pop")

KINDS = ("ringing", "answered", "ended")
POP_TYPES: dict[str, Literal["call.ringing", "call.answered", "call.ended"]] = {
    "ringing": "call.ringing",
    "answered": "call.answered",
    "ended": "call.ended",
}
# A stuck socket must not make the bridge wait: one send is bounded.
SEND_TIMEOUT_S = 2.0
# An agent may open the console in a few tabs, not hundreds.
MAX_SOCKETS_PER_AGENT = 8
# Calls remembered as popped to their agent (for the outcome check): a day of a busy center.
MAX_SEEN = 200_000


class Change(Protocol):
    """What the bridge reads from an `ami.tracker.CallChange` (or a CallMyWay event)."""

    @property
    def kind(self) -> str: ...
    @property
    def call_id(self) -> str: ...
    @property
    def uniqueid(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def customer_id(self) -> str | None: ...
    @property
    def language(self) -> str: ...


class ContactJson(TypedDict):
    """A contact as the console reads it."""

    id: int
    name: str
    company: str
    numbers: list[str]
    notes: str
    external_id: str
    url: str


class PopMessage(TypedDict):
    """A `call.ringing` / `call.answered` / `call.ended` message (docs/console.md)."""

    type: Literal["call.ringing", "call.answered", "call.ended"]
    call_id: str
    direction: str
    number: str
    agent: str
    queue: str | None
    contacts: list[ContactJson]
    crm_url: str | None
    name: str
    uniqueid: str
    private: bool
    customer_id: NotRequired[str]
    started_at: float
    answered_at: float | None
    ended_at: float | None
    language: str
    history: list[HistoryItem]
    history_url: str | None
    callback: PendingCallback | None


@dataclass(frozen=True, slots=True)
class SimpleChange:
    """A call change built outside the AMI tracker (the CallMyWay endpoint, tests)."""

    kind: str
    call_id: str
    direction: str
    number: str
    agent: str
    uniqueid: str = ""
    name: str = ""
    queue: str | None = None
    customer_id: str | None = None
    channel: str = ""
    language: str = ""


def history_url(number: str) -> str | None:
    """`/calls?customer=<number>`: every call of this caller (None for a private number)."""
    if phone.is_private(number):
        return None
    return "/calls?" + urllib.parse.urlencode({"customer": number})


def contact_json(contact: Contact) -> ContactJson:
    """A contact as the console reads it."""
    return {
        "id": contact.id,
        "name": contact.name,
        "company": contact.company,
        "numbers": list(contact.numbers),
        "notes": contact.notes,
        "external_id": contact.external_id,
        "url": contact.url,
    }


def crm_url(crm: CrmSettings, direction: str, number: str) -> str | None:
    """The external CRM link for a call: `incoming_url`/`outgoing_url` with `{number}`
    replaced by the URL-encoded number (the number comes from a stranger), or None."""
    template = crm.incoming_url if direction == "in" else crm.outgoing_url
    if not template or not number:
        return None
    return template.replace("{number}", urllib.parse.quote(number, safe=""))


class PopHub:
    """The open console sockets, by agent extension."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        # The session (id, version) that opened each socket.
        self._sids: dict[web.WebSocketResponse, tuple[str, int]] = {}
        self.sent = 0

    def add(self, agent: str, ws: web.WebSocketResponse, sid: str = "", version: int = 0) -> bool:
        """Register a socket for `agent` (opened by session `sid` at `version`); False when
        the agent has too many open."""
        sockets = self._sockets.setdefault(agent, set())
        if len(sockets) >= MAX_SOCKETS_PER_AGENT:
            return False
        sockets.add(ws)
        self._sids[ws] = (sid, version)
        return True

    def remove(self, agent: str, ws: web.WebSocketResponse) -> None:
        """Forget a socket (closed by the browser or by us)."""
        self._sids.pop(ws, None)
        sockets = self._sockets.get(agent)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._sockets[agent]

    def sessions(self) -> set[tuple[str, str, int]]:
        """(agent, session id, version) of every open socket."""
        return {
            (agent, *self._sids.get(ws, ("", 0)))
            for agent, group in self._sockets.items()
            for ws in group
        }

    async def close_session(self, sid: str, code: int, message: bytes = b"logged out") -> int:
        """Close the sockets opened by session `sid`; returns how many."""
        doomed = [
            (agent, ws)
            for agent, group in self._sockets.items()
            for ws in group
            if self._sids.get(ws, ("", 0))[0] == sid
        ]
        for agent, ws in doomed:
            self.remove(agent, ws)
            try:
                await asyncio.wait_for(ws.close(code=code, message=message), SEND_TIMEOUT_S)
            except (ConnectionError, TimeoutError, RuntimeError):
                pass
        return len(doomed)

    def count(self, agent: str | None = None) -> int:
        """Open sockets, of one agent or of all."""
        if agent is not None:
            return len(self._sockets.get(agent, ()))
        return sum(len(s) for s in self._sockets.values())

    def agents(self) -> list[str]:
        """Agents with at least one open socket."""
        return list(self._sockets)

    async def send(self, agent: str, message: Mapping[str, Any]) -> int:
        """Send `message` to every socket of `agent` (and nobody else); returns how many."""
        sockets = self._sockets.get(agent)
        if not sockets:
            return 0
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        sent = 0
        for ws in list(sockets):
            if ws.closed:
                self.remove(agent, ws)
                continue
            try:
                # A deadline on this task rather than wait_for, which (Python 3.11) runs the
                # send as a task of its own: one per message, on every state change and pop.
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await ws.send_str(text)
                sent += 1
            except (ConnectionError, TimeoutError, RuntimeError) as exc:
                log.info("console socket of agent %s dropped: %s", agent, exc)
                self.remove(agent, ws)
        self.sent += sent
        return sent

    async def close_all(self, code: int = 1001, message: bytes = b"server shutdown") -> None:
        """Close every socket (on shutdown: code 1001, going away)."""
        sockets = [ws for group in self._sockets.values() for ws in group]
        self._sockets.clear()
        self._sids.clear()
        for ws in sockets:
            try:
                await asyncio.wait_for(ws.close(code=code, message=message), SEND_TIMEOUT_S)
            except (ConnectionError, TimeoutError, RuntimeError):
                pass


class PopBridge:
    """Turns call changes into pop messages for the agent concerned."""

    def __init__(
        self,
        store: StoreBackend,
        hub: PopHub,
        crm: CrmSettings,
        *,
        on_sent: Callable[[str, float], None] | None = None,
        history: History | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.history = history
        self.clock = clock
        self.hub = hub
        self.crm = crm
        self.on_sent = on_sent
        # (agent, call_id) -> the latest message of an open pop (ringing or answered).
        self._open: dict[tuple[str, str], PopMessage] = {}
        # (agent, call id or uniqueid) of every call popped to an agent, newest last: an
        # outcome may be saved only for one of these (or a call whose record names the
        # agent), since the call record is written only when the call ends.
        self._seen: dict[tuple[str, str], None] = {}

    def open_pops(self, agent: str) -> list[PopMessage]:
        """The open pops of one agent (what a console shows when it connects)."""
        return [m for (a, _), m in self._open.items() if a == agent]

    def popped(self, agent: str, call_id: str) -> bool:
        """True when `call_id` (a Linkedid or a Uniqueid) was popped to `agent`."""
        return (agent, call_id) in self._seen

    def _remember(self, change: Change) -> None:
        for key in {change.call_id, change.uniqueid} - {""}:
            self._seen.pop((change.agent, key), None)
            self._seen[(change.agent, key)] = None
        while len(self._seen) > MAX_SEEN:
            del self._seen[next(iter(self._seen))]

    def busy(self, agent: str) -> bool:
        """True while the agent has an open pop."""
        return any(a == agent for a, _ in self._open)

    async def message_for(self, change: Change) -> PopMessage:
        """The contract's JSON message for one change (contacts and history looked up at
        `ringing`, kept for the later steps of the same pop)."""
        key = (change.agent, change.call_id)
        previous = self._open.get(key)
        now = self.clock()
        same = (
            previous is not None
            and previous["number"] == change.number
            and previous["direction"] == change.direction
        )
        if previous is not None and same:
            contacts = previous["contacts"]
            history, callback = previous["history"], previous["callback"]
            # What the number alone decides, kept too.
            crm, private, history_link = (
                previous["crm_url"],
                previous["private"],
                previous["history_url"],
            )
        else:
            contacts = await self._contacts(change.number)
            history, callback = await self._history(change)
            crm = crm_url(self.crm, change.direction, change.number)
            private = phone.is_private(change.number)
            history_link = history_url(change.number)
        started_at = previous["started_at"] if previous is not None else now
        answered_at = previous["answered_at"] if previous is not None else None
        if answered_at is None and change.kind == "answered":
            answered_at = now
        message: PopMessage = {
            "type": POP_TYPES[change.kind],
            "call_id": change.call_id,
            "direction": change.direction,
            "number": change.number,
            "agent": change.agent,
            "queue": change.queue,
            "contacts": contacts,
            "crm_url": crm,
            "name": change.name,
            "uniqueid": change.uniqueid,
            "private": private,
            "started_at": started_at,
            "answered_at": answered_at,
            "ended_at": now if change.kind == "ended" else None,
            "language": change.language or (previous["language"] if previous else ""),
            "history": history,
            "history_url": history_link,
            "callback": callback,
        }
        if change.customer_id:
            message["customer_id"] = change.customer_id
        return message

    async def _history(self, change: Change) -> tuple[list[HistoryItem], PendingCallback | None]:
        if self.history is None:
            return [], None
        try:
            return await self.history.lookup(
                change.number, change.agent, exclude_call=change.call_id
            )
        except (ValueError, sqlite3.Error):
            log.exception("history of %r for the pop not read", change.number)
            return [], None

    async def _contacts(self, number: str) -> list[ContactJson]:
        if phone.is_private(number):
            return []
        # Answered in the loop's thread when it can be: a lookup queued behind a slow
        # call-record commit would hold the ringing pop as long (centralita/store/fastpath.py).
        found = self.store.contacts_for_number_now(number)
        if found is None:
            try:
                found = await self.store.contacts_for_number(number)
            except StoreInputError:
                return []
        return [contact_json(c) for c in found]

    async def on_change(self, change: Change, arrived: float | None = None) -> int:
        """Publish one change to its agent; returns the sockets reached.

        `arrived` is the `time.perf_counter()` at which the event was read (for the
        pop-latency metric and the benchmark)."""
        if change.kind not in KINDS:
            raise ValueError(f"unknown call change {change.kind!r}")
        message = await self.message_for(change)
        self._remember(change)
        key = (change.agent, change.call_id)
        if change.kind == "ended":
            self._open.pop(key, None)
        else:
            self._open[key] = message
            while len(self._open) > 100_000:  # a bound, should ended events be lost
                del self._open[next(iter(self._open))]
        sent = await self.hub.send(change.agent, message)
        if self.on_sent is not None:
            started = arrived if arrived is not None else time.perf_counter()
            self.on_sent(message["type"], time.perf_counter() - started)
        return sent

    def forget(self, agent: str, call_id: str) -> bool:
        """Drop an open pop by hand (the agent dismissed a pop whose end was lost)."""
        return self._open.pop((agent, call_id), None) is not None
