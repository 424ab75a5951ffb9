"""The queue-event log: what app_queue says over AMI about each queued call and each agent's
pauses, kept in the store for reports (`centralita.reports`) and the wallboard's counts.

Read from the AMI stream through `app[AMI_TAPS]` (centralita/amitaps.py); the events, their
headers and where apps/app_queue.c sends them:

* `QueueCallerJoin` (`join_queue`): the caller's channel block + `Queue, Position, Count`.
  The call is stored as `waiting`, joined now.
* `AgentConnect` (`try_calling`): + `Queue, Interface, MemberName, HoldTime` (seconds the
  caller waited), `RingTime`. The call is `answered` by that member.
* `AgentComplete` (`send_agent_complete`): + `HoldTime, TalkTime` (seconds) and `Reason`.
  The call ended; its talk time is stored.
* `QueueCallerAbandon` (`record_abandoned`): + `Position, OriginalPosition, HoldTime`.
  app_queue sends it for every caller who leaves unanswered (hang-up, the queue's timeout,
  leavewhenempty, a withdraw), so every one of them counts as `abandoned`.
* `QueueCallerLeave` (`leave_queue`) says nothing about the outcome: app_queue sends it
  before `AgentConnect` as well (the trace in tests/fixtures/asterisk-traces shows it), so it
  is not used.
* `QueueMemberPause`, `QueueMemberStatus`, `QueueMemberAdded`, `QueueMemberRemoved`
  (`queue_member_blob_create`): `Queue, Interface, Paused, PausedReason`. An agent is paused
  while paused in any queue (a `QueuePause` without a queue pauses every membership, one
  event each); a pause interval opens then, with its reason, and closes when the last
  membership is unpaused, or opens anew when the reason changes.
* After every (re)connect the `QueueStatus` list (`QueueMember` items: `Name, Location,
  Paused, PausedReason, LastPause`) rebuilds the pause state: pauses left open by a lost
  link or a restart are closed, pauses that started meanwhile opened.

Times are the events' own `Timestamp` header when manager.conf sends one (`timestampevents`),
else the moment the event arrived, in UTC ISO-8601. AMI list items (no `Privilege` header)
are ignored here, as in `AgentStates.handle`.

The reader's hooks only queue work: `QueueEventWriter` writes it to the store on its own
task, in batches (one transaction for what gathered in `LINGER_S`), as `feed.CdrWriter`
does for call records (both `centralita.batchwriter.BatchWriter`s).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

from aiohttp import web

from ami.protocol import AmiMessage
from centralita.batchwriter import BatchWriter
from centralita.keys import AMI_TAPS, QUEUE_LOG, SETTINGS, STORE
from centralita.store import StoreBackend, StoreInputError
from centralita.store.queue_events import PauseChange, QueueCallUpdate, QueueEvent
from dialplan.model import Site

log = logging.getLogger("centralita.queuelog")

# The member events that carry `Paused`/`PausedReason` (apps/app_queue.c,
# queue_member_blob_create); Asterisk 1.8-11 named the pause event QueueMemberPaused.
MEMBER_EVENTS = frozenset(
    {
        "QueueMemberStatus",
        "QueueMemberPause",
        "QueueMemberPaused",
        "QueueMemberAdded",
        "QueueMemberRemoved",
    }
)
CALL_EVENTS = frozenset({"QueueCallerJoin", "AgentConnect", "AgentComplete", "QueueCallerAbandon"})
DEFAULT_SERVICE_LEVEL_S = 20  # a queue the config does not name (as dialplan.model.Queue)
# Callers remembered between their join and their end; beyond this (calls whose end was
# never seen) the oldest are forgotten, and a late end estimates its join from HoldTime.
MAX_WAITING = 100_000


def iso(epoch_s: float) -> str:
    """An epoch time as the store's UTC ISO-8601 text (to the second)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def _seconds(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


class QueueLog:
    """Turns AMI queue events into store events (`QueueCallUpdate`, `PauseChange`) handed
    to `emit` (the writer's `put`). Synchronous and quick, as AMI hooks must be."""

    def __init__(
        self,
        site: Site,
        emit: Callable[[QueueEvent], object],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.emit = emit
        self.clock = clock
        self._agents: dict[str, str] = {}
        self._service_levels: dict[str, int] = {}
        self._joined: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
        # Each agent's paused memberships (queue -> reason), and its open pause's reason.
        self._paused: dict[str, dict[str, str]] = {}
        self._open: dict[str, str] = {}
        self.configure(site)

    def configure(self, site: Site) -> None:
        """Take the agents' interfaces and the queues' service levels from `site`.

        Kept: the callers waiting, the paused memberships and the open pauses, so a call or
        pause under way ends in the log as it began. Nothing is dropped here: a removed
        agent's later events are logged under its interface (`agent_of`), and a pause it
        left open (under its extension) is closed by the next `rebuild`, as is one a new
        agent had under its interface; a removed queue's calls count against the default
        service level.
        """
        # Interfaces as app_queue names them (case-insensitive, as interface_exists).
        self._agents = {site.device(a.extension).lower(): a.extension for a in site.agents}
        self._service_levels = {q.name: q.service_level_s for q in site.queues}

    def agent_of(self, interface: str) -> str:
        """The extension of a member interface (`PJSIP/1001`); the interface itself for a
        member that is not a configured agent."""
        interface = interface.strip()
        return self._agents.get(interface.lower(), interface)

    def _now(self, msg: AmiMessage | None = None) -> float:
        if msg is not None:
            stamp = msg.value("Timestamp")
            with contextlib.suppress(ValueError):
                if stamp:
                    return float(stamp)
        return self.clock()

    # -- calls ---------------------------------------------------------------------------

    def handle(self, msg: AmiMessage) -> None:
        """Apply one AMI event (the `on_event` hook)."""
        name = msg.name
        if name in CALL_EVENTS:
            if "Privilege" in msg:  # not a list item (QueueStatus), applied by rebuild
                self._call_event(name, msg)
        elif name in MEMBER_EVENTS and "Privilege" in msg:
            self._member_event(name, msg)

    def _call_event(self, name: str, msg: AmiMessage) -> None:
        uniqueid = msg.value("Uniqueid").strip()
        queue = msg.value("Queue").strip()
        if not uniqueid or not queue:
            return
        key = (uniqueid, queue)
        now = self._now(msg)
        sl = self._service_levels.get(queue, DEFAULT_SERVICE_LEVEL_S)
        hold = _seconds(msg.value("HoldTime"))
        if name == "QueueCallerJoin":
            joined = self._joined.setdefault(key, now)
            self._joined.move_to_end(key)
            while len(self._joined) > MAX_WAITING:
                self._joined.popitem(last=False)
            self.emit(QueueCallUpdate(uniqueid, queue, "waiting", iso(joined), sl))
            return
        talk = _seconds(msg.value("TalkTime")) if name == "AgentComplete" else None
        # Without the join (it came before a restart), app_queue's own durations place it.
        joined = self._joined.get(key, now - (hold or 0) - (talk or 0))
        if name == "QueueCallerAbandon":
            self._joined.pop(key, None)
            self.emit(
                QueueCallUpdate(
                    uniqueid, queue, "abandoned", iso(joined), sl, ended_at=iso(now), wait_s=hold
                )
            )
            return
        agent = self.agent_of(msg.value("Interface") or msg.value("MemberName"))
        if name == "AgentConnect":
            self.emit(
                QueueCallUpdate(
                    uniqueid,
                    queue,
                    "answered",
                    iso(joined),
                    sl,
                    answered_at=iso(now),
                    wait_s=hold,
                    agent=agent,
                )
            )
            return
        self._joined.pop(key, None)  # AgentComplete
        self.emit(
            QueueCallUpdate(
                uniqueid,
                queue,
                "answered",
                iso(joined),
                sl,
                answered_at=iso(now - (talk or 0)),
                ended_at=iso(now),
                wait_s=hold,
                talk_s=talk,
                agent=agent,
            )
        )

    # -- pauses --------------------------------------------------------------------------

    def _member_event(self, name: str, msg: AmiMessage) -> None:
        interface = msg.value("Interface")
        queue = msg.value("Queue").strip()
        if not interface.strip() or not queue:
            return
        agent = self.agent_of(interface)
        memberships = self._paused.setdefault(agent, {})
        if name != "QueueMemberRemoved" and msg.value("Paused").strip() == "1":
            memberships[queue] = msg.value("PausedReason")
        else:
            memberships.pop(queue, None)
        self._settle(agent, self._now(msg))

    def _settle(self, agent: str, now: float, started: float | None = None) -> None:
        """Open, change or close `agent`'s pause interval to match its memberships."""
        memberships = self._paused.get(agent, {})
        open_reason = self._open.get(agent)
        if memberships:
            # The reason of the latest paused membership (a QueuePause names one reason).
            reason = next(reversed(memberships.values()))
            if open_reason != reason:
                self._open[agent] = reason
                self.emit(PauseChange(agent, True, iso(started or now), reason))
        elif open_reason is not None:
            del self._open[agent]
            self.emit(PauseChange(agent, False, iso(now)))

    def rebuild(self, items: Iterable[AmiMessage]) -> None:
        """Rebuild the pause state from a `QueueStatus` list (the `resync` hook)."""
        now = self.clock()
        fresh: dict[str, dict[str, str]] = {}
        started: dict[str, float] = {}
        for item in items:
            if item.name != "QueueMember":
                continue
            agent = self.agent_of(item.value("Location") or item.value("Interface"))
            queue = item.value("Queue").strip()
            if not agent or not queue:
                continue
            memberships = fresh.setdefault(agent, {})
            if item.value("Paused").strip() == "1":
                memberships[queue] = item.value("PausedReason")
                last_pause = _seconds(item.value("LastPause")) or 0
                if 0 < last_pause <= now:
                    started[agent] = max(started.get(agent, 0.0), float(last_pause))
        # Close what a previous link or run left open (also in the store, for agents this
        # process never saw paused), then open what is paused now.
        for agent in set(self._agents.values()) | set(self._open) | set(fresh):
            if not fresh.get(agent):
                self._paused.pop(agent, None)
                self._open.pop(agent, None)
                self.emit(PauseChange(agent, False, iso(now)))
        for agent, memberships in fresh.items():
            if memberships:
                self._paused[agent] = memberships
                self._settle(agent, now, started.get(agent))


# How long the writer lets queue events gather before a write (centralita/batchwriter.py):
# at 200 calls/s, some 3,000 events a second come in batches of ~75 instead of one by one.
# The reports and the wallboard's counts after a reconnect read the store; 25 ms is nothing
# to them.
LINGER_S = 0.025


class QueueEventWriter(BatchWriter[QueueEvent]):
    """Writes queue events to the store on its own task, in order, a batch per transaction
    (`BatchWriter`: the AMI reader never waits for a commit)."""

    def __init__(
        self,
        store: StoreBackend,
        *,
        maxsize: int = 100_000,
        batch: int = 500,
        linger_s: float = LINGER_S,
    ) -> None:
        super().__init__(
            self._write_events,
            name="queue event",
            log=log,
            maxsize=maxsize,
            batch=batch,
            linger_s=linger_s,
        )
        self.store = store

    async def _write_events(self, events: list[QueueEvent]) -> int:
        try:
            return await self.store.write_queue_events(events)
        except StoreInputError:
            pass
        # One bad event refused the batch: write them one by one, skipping it.
        written = 0
        for event in events:
            try:
                written += await self.store.write_queue_events([event])
            except StoreInputError as exc:
                log.warning("queue event not stored (%s): %r", exc, event)
        return written

    def start(self, task_name: str = "centralita-queue-events") -> None:
        """Start writing in the background."""
        super().start(task_name)


async def queuelog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keep the queue events for the app's lifetime; registered on the AMI taps before
    `feed.ami_ctx` starts the listener."""
    writer = QueueEventWriter(app[STORE])
    queue_log = QueueLog(app[SETTINGS].current.site, writer.put)
    app[SETTINGS].on_reload("the queue log", lambda settings: queue_log.configure(settings.site))
    app[QUEUE_LOG] = writer
    app[AMI_TAPS].add(
        on_event=queue_log.handle,
        events=CALL_EVENTS | MEMBER_EVENTS,
        resync=(("QueueStatus", queue_log.rebuild),),
    )
    writer.start()
    try:
        yield
    finally:
        await writer.stop()
