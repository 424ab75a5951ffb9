"""The live wallboard's model: every queue and agent as supervisors see them, fed by AMI.

Asterisk's app_queue holds the truth; this model mirrors it from the events it sends
(apps/app_queue.c), on top of the agent-state mirror (`centralita.agentstate.AgentStates`,
which reads the member events first, in the same AMI reader):

* `QueueCallerJoin` / `QueueCallerLeave` (`Queue, Position, Count` after the caller's channel
  block; `queue_channel_to_ami`): a caller starts and stops waiting, keyed by `Uniqueid`.
  The event carries no time: the wait starts when the event is read.
* `QueueCallerAbandon` (`Queue, Position, OriginalPosition, HoldTime`, sent by
  `record_abandoned`, also on a queue timeout): one abandoned call today.
* `AgentCalled` / `AgentRingNoAnswer` / `AgentConnect` / `AgentComplete`, each with
  `Queue, Interface, MemberName` after the caller's and the member channel's blocks
  (`queue_multi_channel_to_ami`): the agent rings, is not answered, is on the call
  (`HoldTime` in seconds: answered within the queue's `servicelevel` or not, as
  `update_queue`'s `callcompletedinsl`), then is done (`TalkTime`, `Reason`).
  A call is counted answered at `AgentConnect`; Asterisk's own `Completed` counts it when it
  ends (`update_queue`), which is why the seed below takes the larger of the two.
* The members (logged in, paused and why, device status, wrap-up) come from `AgentStates`.

After every AMI (re)connect the model is rebuilt, in the reader's resync
(`AmiTaps.resyncs`), from `QueueStatus` (`manager_queues_status`: `QueueParams` per queue,
then its `QueueMember` and `QueueEntry` items; an entry's `Wait` is in seconds) and then from
`QueueSummary` (`manager_queue_summary`: `Callers` and `LongestHoldTime`, computed from the
same queue entries), which settles how many callers wait and since when.

"Today" is the server's local day. After a start and after every AMI reconnect the day's
counts are read again from the queue-event log (`centralita.queuelog`, the store's
`queue_totals_since`), and each count is the larger of that and this model's own: a restart
keeps the day, and a call counted live is not lost to a slow batched write. `QueueParams`'
`Completed` / `Abandoned` are not used for them: Asterisk counts since its own start or
reload, not since midnight.

`refresh()` turns what changed into the WebSocket messages of docs/supervisors.md
(`wallboard.queue`, `wallboard.agent`), each only when what it shows changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Literal, TypedDict

from ami.protocol import AmiMessage
from centralita.agentstate import MEMBER_EVENTS, AgentStateMessage, AgentStates
from centralita.store.queue_events import QueueTotals
from dialplan.model import Site

AgentState = Literal["free", "ringing", "on_call", "wrapup", "paused", "logged_out", "unavailable"]

CALL_EVENTS = frozenset(
    {
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentRingNoAnswer",
        "AgentConnect",
        "AgentComplete",
    }
)


class QueueJson(TypedDict):
    """One queue on the wallboard (docs/supervisors.md)."""

    name: str
    waiting: int
    longest_wait_since: float | None
    logged_in: int
    free: int
    ringing: int
    on_call: int
    wrapup: int
    paused: int
    paused_reasons: dict[str, int]
    answered_today: int
    abandoned_today: int
    service_level_pct: float | None
    service_level_s: int


class AgentQueueJson(TypedDict):
    """One queue of an agent on the wallboard."""

    queue: str
    logged_in: bool
    paused: bool
    reason: str
    static: bool


class AgentJson(TypedDict):
    """One agent on the wallboard (docs/supervisors.md)."""

    extension: str
    name: str
    state: AgentState
    reason: str
    since: float
    queues: list[AgentQueueJson]


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else 0


class _Day:
    """One queue's counts for one day."""

    __slots__ = ("abandoned", "answered", "in_sl")

    def __init__(self) -> None:
        self.answered = 0
        self.abandoned = 0
        self.in_sl = 0


# What one agent adds to one queue's counts: its column and, when paused, the reason.
_Share = tuple[str, str]


def _share(shown: AgentJson, queue: str) -> _Share | None:
    """What an agent logged in to `queue` adds to its counts (None: nothing, not even to
    `logged_in`: its phone is unavailable or it is logged out of every queue)."""
    mine = next((q for q in shown["queues"] if q["queue"] == queue), None)
    state = shown["state"]
    if mine is None or state in ("unavailable", "logged_out"):
        return None
    if state in ("on_call", "ringing", "wrapup"):
        return state, ""
    if mine["paused"]:
        return "paused", mine["reason"]
    return "free", ""


class _Tally:
    """One queue's agents by column, and its paused ones by reason."""

    __slots__ = ("counts", "logged_in", "reasons")

    def __init__(self) -> None:
        self.logged_in = 0
        self.counts = dict.fromkeys(("free", "ringing", "on_call", "wrapup", "paused"), 0)
        self.reasons: dict[str, int] = {}

    def add(self, share: _Share, sign: int) -> None:
        column, reason = share
        self.logged_in += sign
        self.counts[column] += sign
        if column == "paused":
            left = self.reasons.get(reason, 0) + sign
            if left:
                self.reasons[reason] = left
            else:
                del self.reasons[reason]


class Wallboard:
    """Every configured queue and agent, as the wallboard shows them (module docstring).

    `on_event`, `rebuild_status` and `rebuild_summary` are the AMI hooks (synchronous and
    quick: they only note what changed); `refresh()` computes the changed queues and agents
    and returns their messages, serialized once for every supervisor's socket.
    """

    def __init__(
        self,
        site: Site,
        states: AgentStates,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.states = states
        self.clock = clock
        self.connected = False
        # Derived from the site (`configure`).
        self._queues: list[str] = []
        self._service_level: dict[str, int] = {}
        self._wrapup: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._agents: list[str] = []
        started = clock()
        self._day = self._today(started)
        self._counts: dict[str, _Day] = {}
        # Callers waiting: queue -> Uniqueid -> since when (epoch seconds).
        self._callers: dict[str, dict[str, float]] = {}
        # Agents' calls seen in the queue events: ringing (Uniqueid), on a call (Uniqueid ->
        # queue), and the end of the wrap-up after an AgentComplete.
        self._ringing: dict[str, set[str]] = {}
        self._rung: dict[str, dict[str, None]] = {}  # the same by Uniqueid: which agents ring
        self._talking: dict[str, dict[str, str]] = {}
        self._after_call: dict[str, float] = {}
        self._in_wrapup: set[str] = set()  # shown in wrap-up: its end is watched
        # What was last shown, and since when the agent's state is what it is.
        self._agent_json: dict[str, AgentJson] = {}
        self._queue_json: dict[str, QueueJson] = {}
        self._since: dict[str, tuple[AgentState, str, float]] = {}
        self._started = started
        # What each agent adds to the counts of each queue it is logged in to (`_share`),
        # and those counts: kept as agents change rather than recounted from the members on
        # every refresh of a queue (a busy queue refreshes with every caller).
        self._shares: dict[str, dict[str, _Share]] = {}
        self._tally: dict[str, _Tally] = {}
        # When a reload added each agent (its row's `since` until its state changes; the
        # others' is the start).
        self._added_at: dict[str, float] = {}
        self._dirty_agents: dict[str, None] = {}
        self._dirty_queues: dict[str, None] = {}
        self.wants_totals = True  # the day's counts are to be read from the store
        self.changed: Callable[[], object] = lambda: None
        self.configure(site)
        # Nothing was shown yet: a page that opens gets its snapshot from /wallboard/ws.
        self._snapshot_due = False

    def configure(self, site: Site) -> None:
        """Take the queues, service levels, wrap-ups and queue-call takers from `site`.

        Kept, for every queue and agent still configured: the day's counts, the callers
        waiting, who rings and talks, the wrap-ups, what was shown and since when, and each
        agent's share of the queue counts. Dropped: all of that for a queue or agent no
        longer configured (a removed agent leaves the counts of the queues it was in). A new
        queue starts empty, its day's counts read again from the store (`wants_totals`).
        Call after `AgentStates.configure`: every row is recomputed from it, and the next
        `refresh()` sends one `wallboard.snapshot`, which pages take as the whole board.
        """
        before = set(self._agents)  # empty on the first configure, from __init__
        self._queues = [q.name for q in site.queues]
        self._service_level = {q.name: q.service_level_s for q in site.queues}
        self._wrapup = {q.name: q.wrapup_s for q in site.queues}
        # The members who take queue calls (their role's `queue_calls`), in config order.
        takers = [a for a in site.agents if (r := site.role(a.role)) is None or r.queue_calls]
        self._names = {a.extension: a.name for a in takers}
        self._agents = [a.extension for a in takers]
        queues, agents = set(self._queues), set(self._agents)
        self._counts = {q: self._counts.get(q) or _Day() for q in self._queues}
        self._callers = {q: self._callers.get(q, {}) for q in self._queues}
        self._tally = {q: self._tally.get(q) or _Tally() for q in self._queues}
        self._queue_json = {q: j for q, j in self._queue_json.items() if q in queues}
        for agent in set(self._shares) - agents:
            for queue, share in self._shares.pop(agent).items():
                if queue in self._tally:
                    self._tally[queue].add(share, -1)
        self._ringing = {a: r for a, r in self._ringing.items() if a in agents}
        rung = {u: {a: None for a in ring if a in agents} for u, ring in self._rung.items()}
        self._rung = {u: ring for u, ring in rung.items() if ring}
        self._talking = {a: t for a, t in self._talking.items() if a in agents}
        self._after_call = {a: t for a, t in self._after_call.items() if a in agents}
        self._in_wrapup &= agents
        self._agent_json = {a: j for a, j in self._agent_json.items() if a in agents}
        self._since = {a: s for a, s in self._since.items() if a in agents}
        self._added_at = {a: t for a, t in self._added_at.items() if a in agents}
        if before:  # a reload: an agent it adds is shown since now, not since the start
            self._added_at.update(dict.fromkeys(agents - before, self.clock()))
        for agent, shown in self._agent_json.items():
            # A queue gone takes the agent's share with it; one added gets it now, even when
            # the agent's row does not change.
            self._shares[agent] = {
                q: share for q, share in self._shares.get(agent, {}).items() if q in queues
            }
            self._index(agent, shown, shown)
        self._dirty_agents = {a: None for a in self._dirty_agents if a in agents}
        self._dirty_queues = {q: None for q in self._dirty_queues if q in queues}
        self.wants_totals = True
        self._snapshot_due = True
        self._touch_all()

    # -- reading AMI ------------------------------------------------------------------------

    def on_event(self, msg: AmiMessage) -> None:
        """One AMI event (after `AgentStates.handle` saw it): note what it changes."""
        name = msg.name
        if name in MEMBER_EVENTS:
            if "Privilege" in msg:  # an event, not a QueueStatus item
                agent = self.states.agent_of(msg.value("Interface"))
                if agent is not None and agent in self._names:
                    self._touch_agent(agent)
            return
        if name not in CALL_EVENTS:
            return
        queue = msg.value("Queue")
        if queue not in self._callers:
            return  # a queue this config does not have
        self._roll_day()
        uniqueid = msg.value("Uniqueid")
        if name == "QueueCallerJoin":
            self._callers[queue][uniqueid] = self.clock()
        elif name == "QueueCallerLeave":
            self._callers[queue].pop(uniqueid, None)
            # ringall: the others stop ringing (DialEnd CANCEL)
            for agent in self._rung.pop(uniqueid, {}):
                self._ringing[agent].discard(uniqueid)
                self._touch_agent(agent)
        elif name == "QueueCallerAbandon":
            self._counts[queue].abandoned += 1
        else:
            agent = self.states.agent_of(msg.value("Interface"))
            if agent is None or agent not in self._names:
                return
            self._agent_call(name, msg, agent, queue, uniqueid)
            self._touch_agent(agent)
        self._touch_queue(queue)

    def _agent_call(
        self, name: str, msg: AmiMessage, agent: str, queue: str, uniqueid: str
    ) -> None:
        if name == "AgentCalled":
            self._ringing.setdefault(agent, set()).add(uniqueid)
            self._rung.setdefault(uniqueid, {})[agent] = None
        elif name == "AgentRingNoAnswer":
            self._stop_ringing(agent, uniqueid)
        elif name == "AgentConnect":
            self._stop_ringing(agent, uniqueid)
            self._talking.setdefault(agent, {})[uniqueid] = queue
            self._after_call.pop(agent, None)
            counts = self._counts[queue]
            counts.answered += 1
            if _int(msg.value("HoldTime")) <= self._service_level[queue]:
                counts.in_sl += 1
        elif name == "AgentComplete":
            self._talking.get(agent, {}).pop(uniqueid, None)
            wrapup = self._wrapup.get(queue, 0)
            if wrapup:
                self._after_call[agent] = self.clock() + wrapup

    def _stop_ringing(self, agent: str, uniqueid: str) -> None:
        self._ringing.get(agent, set()).discard(uniqueid)
        agents = self._rung.get(uniqueid)
        if agents is not None:
            agents.pop(agent, None)
            if not agents:
                del self._rung[uniqueid]

    def rebuild_status(self, items: Iterable[AmiMessage]) -> None:
        """A fresh `QueueStatus` list (after `AgentStates.rebuild`): callers waiting from its
        `QueueEntry` items, every call state forgotten (the members' `InCall`/`Status` now
        say who is on a call); the day's counts are to be read again from the store."""
        now = self.clock()
        self._roll_day()
        self._callers = {q: {} for q in self._queues}
        self._ringing.clear()
        self._rung.clear()
        self._talking.clear()
        self._after_call.clear()
        for item in items:
            queue = item.value("Queue")
            if queue not in self._callers:
                continue
            if item.name == "QueueEntry":
                since = now - _int(item.value("Wait"))
                key = item.value("Uniqueid") or f"entry-{item.value('Position')}"
                self._callers[queue][key] = since
        self.wants_totals = True
        self._touch_all()

    def day_start(self) -> str:
        """The start of today (local midnight) as the store's UTC ISO-8601 text."""
        midnight = datetime.combine(self._day, datetime.min.time())
        return midnight.astimezone(UTC).isoformat(timespec="seconds")

    def seed_totals(self, since: str, totals: Iterable[QueueTotals]) -> None:
        """The day's counts as the queue-event log has them (`since`: the `day_start()`
        they were read for; ignored when the day rolled meanwhile)."""
        if since != self.day_start():
            return
        for total in totals:
            counts = self._counts.get(total.queue)
            if counts is None:
                continue
            if total.answered > counts.answered:
                counts.answered, counts.in_sl = total.answered, total.answered_within_sl
            counts.abandoned = max(counts.abandoned, total.abandoned)
            self._touch_queue(total.queue)

    def rebuild_summary(self, items: Iterable[AmiMessage]) -> None:
        """A fresh `QueueSummary` list: its `Callers` and `LongestHoldTime` settle the count
        and the longest wait of each queue's callers (entries the status list did not
        name are added as waiting since the longest hold; extra ones, newest first, go)."""
        now = self.clock()
        for item in items:
            queue = item.value("Queue")
            if item.name != "QueueSummary" or queue not in self._callers:
                continue
            callers = self._callers[queue]
            count = _int(item.value("Callers"))
            longest = now - _int(item.value("LongestHoldTime"))
            ordered = sorted(callers.items(), key=lambda kv: kv[1])[:count]
            if count and ordered:
                ordered[0] = (ordered[0][0], min(ordered[0][1], longest))
            while len(ordered) < count:
                ordered.append((f"summary-{len(ordered)}", longest))
            self._callers[queue] = dict(ordered)
            self._touch_queue(queue)

    def set_link(self, connected: bool) -> None:
        """The AMI link is up (after the rebuild) or down: the next `refresh()` sends every
        page a fresh snapshot, whose `asterisk` says which."""
        self.connected = connected
        self._snapshot_due = True
        self._touch_all()

    # -- what changed -----------------------------------------------------------------------

    def _touch_agent(self, agent: str) -> None:
        self._dirty_agents[agent] = None
        self.changed()

    def _touch_queue(self, queue: str) -> None:
        self._dirty_queues[queue] = None
        self.changed()

    def _touch_all(self) -> None:
        self._dirty_agents.update(dict.fromkeys(self._agents))
        self._dirty_queues.update(dict.fromkeys(self._queues))
        self.changed()

    @staticmethod
    def _today(now: float) -> date:
        return datetime.fromtimestamp(now).date()

    def _roll_day(self) -> None:
        today = self._today(self.clock())
        if today != self._day:
            self._day = today
            self._counts = {q: _Day() for q in self._queues}
            self._dirty_queues.update(dict.fromkeys(self._queues))

    def _wrapup_end(self, agent: str) -> float | None:
        ends = [self._after_call.get(agent), self.states.state(agent)["wrapup_until"]]
        known = [end for end in ends if end is not None]
        return max(known) if known else None

    def next_deadline(self) -> float | None:
        """When an agent's wrap-up ends with no event to say so (None: nobody in wrap-up)."""
        ends = [end for a in self._in_wrapup if (end := self._wrapup_end(a)) is not None]
        return min(ends) if ends else None

    def expire(self) -> None:
        """Re-read the agents whose wrap-up has ended by now; roll the day at midnight."""
        now = self.clock()
        for agent in list(self._in_wrapup):
            end = self._wrapup_end(agent)
            if end is None or end <= now:
                self._after_call.pop(agent, None)
                self._touch_agent(agent)
        self._roll_day()

    # -- the messages -----------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """The `wallboard.agent` and `wallboard.queue` messages (JSON text) of every agent
        and queue whose shown state changed since the last call; after the AMI link went
        up or down or a `configure`, one `wallboard.snapshot` instead."""
        out: list[str] = []
        while self._dirty_agents:
            agent = next(iter(self._dirty_agents))
            del self._dirty_agents[agent]
            fresh = self._agent(agent)
            old = self._agent_json.get(agent)
            if fresh == old:
                continue
            self._agent_json[agent] = fresh
            if fresh["state"] == "wrapup":
                self._in_wrapup.add(agent)
            else:
                self._in_wrapup.discard(agent)
            self._index(agent, old, fresh)
            out.append(json.dumps({"type": "wallboard.agent", "agent": fresh}))
        while self._dirty_queues:
            queue = next(iter(self._dirty_queues))
            del self._dirty_queues[queue]
            fresh_queue = self._queue(queue)
            if fresh_queue == self._queue_json.get(queue):
                continue
            self._queue_json[queue] = fresh_queue
            out.append(json.dumps({"type": "wallboard.queue", "queue": fresh_queue}))
        if self._snapshot_due:
            self._snapshot_due = False
            return [json.dumps(self.snapshot())]
        return out

    def snapshot(self) -> dict[str, object]:
        """The `wallboard.snapshot` message: everything, as of now (call `refresh()` first)."""
        return {
            "type": "wallboard.snapshot",
            "now": self.clock(),
            "asterisk": self.connected,
            "queues": [self._queue_json[q] for q in self._queues if q in self._queue_json],
            "agents": [self._agent_json[a] for a in self._agents if a in self._agent_json],
        }

    def _index(self, agent: str, old: AgentJson | None, fresh: AgentJson) -> None:
        """Keep what the agent adds to the counts of each queue it is logged in to, and mark
        the queues whose counts move."""
        before = {q["queue"] for q in old["queues"] if q["logged_in"]} if old else set()
        after = {q["queue"] for q in fresh["queues"] if q["logged_in"]}
        shares_before = self._shares.get(agent, {})
        shares = {
            queue: share
            for queue in after
            if queue in self._tally and (share := _share(fresh, queue)) is not None
        }
        for queue, share in shares_before.items():
            if shares.get(queue) != share:
                self._tally[queue].add(share, -1)
        for queue, share in shares.items():
            if shares_before.get(queue) != share:
                self._tally[queue].add(share, 1)
        self._shares[agent] = shares
        for queue in before | after:
            if queue in self._tally:
                self._dirty_queues[queue] = None

    def _agent(self, agent: str) -> AgentJson:
        state = self.states.state(agent)
        shown, reason = self._state_of(agent, state)
        since = self._since.get(agent)
        if since is None or since[:2] != (shown, reason):
            at = self.clock() if since is not None else self._added_at.get(agent, self._started)
            since = (shown, reason, at)
            self._since[agent] = since
        return {
            "extension": agent,
            "name": self._names.get(agent, agent),
            "state": shown,
            "reason": reason,
            "since": since[2],
            "queues": [
                {
                    "queue": q["queue"],
                    "logged_in": q["member"],
                    "paused": q["paused"],
                    "reason": q["reason"],
                    "static": q["member"] and not q["dynamic"],
                }
                for q in state["queues"]
            ],
        }

    def _state_of(self, agent: str, state: AgentStateMessage) -> tuple[AgentState, str]:
        members = [q for q in state["queues"] if q["status"] != "out"]
        if not members:
            return "logged_out", ""
        statuses = {q["status"] for q in members}
        if self._talking.get(agent) or "in_call" in statuses:
            return "on_call", ""
        if self._ringing.get(agent) or "ringing" in statuses:
            return "ringing", ""
        if state["paused"]:
            return "paused", state["reason"]
        if statuses == {"unavailable"}:
            return "unavailable", ""
        if "wrapup" in statuses or self._after_call.get(agent, 0.0) > self.clock():
            return "wrapup", ""
        return "free", ""

    def _queue(self, queue: str) -> QueueJson:
        callers = self._callers[queue]
        counts = self._counts[queue]
        tally = self._tally[queue]
        return {
            "name": queue,
            "waiting": len(callers),
            "longest_wait_since": min(callers.values()) if callers else None,
            "logged_in": tally.logged_in,
            "free": tally.counts["free"],
            "ringing": tally.counts["ringing"],
            "on_call": tally.counts["on_call"],
            "wrapup": tally.counts["wrapup"],
            "paused": tally.counts["paused"],
            "paused_reasons": dict(sorted(tally.reasons.items())),
            "answered_today": counts.answered,
            "abandoned_today": counts.abandoned,
            "service_level_pct": (
                round(100.0 * counts.in_sl / counts.answered, 1) if counts.answered else None
            ),
            "service_level_s": self._service_level[queue],
        }
