"""Each agent's queue state, kept in Asterisk and mirrored here from AMI.

Asterisk's app_queue holds the truth: whether an agent is a member of each queue (static from
queues.conf, or dynamic after `QueueAdd`), paused and why, ringing, on a call, or in wrap-up
(the queue's `wrapuptime` after each call). Centralita never decides a state itself: the
console's buttons send `QueuePause` / `QueueAdd` / `QueueRemove`, and the page changes only
when the matching event comes back, so a pause made on the phone or by a supervisor shows the
same way.

What is read (apps/app_queue.c, `queue_member_blob_create` and `queue_member_to_ami`):

* `QueueMemberStatus`, `QueueMemberPause`, `QueueMemberAdded`, `QueueMemberRemoved`, each with
  `Queue, MemberName, Interface, StateInterface, Membership (static|dynamic|realtime),
  LastCall, InCall, Status (AST_DEVICE_* number), Paused, PausedReason, Wrapuptime`;
  Asterisk 12 and later name the pause event `QueueMemberPause` (1.8-11 sent
  `QueueMemberPaused`, also accepted here).
* After each AMI (re)connect the mirror is rebuilt from `QueueStatus`: its `QueueMember` items
  carry the same fields, but as `Name` and `Location` instead of `MemberName` and `Interface`
  (`manager_queues_status`).

Wrap-up: when an agent's call ends, app_queue sets the member's `lastcall` and, as the device
goes back to NOT_INUSE, sends `QueueMemberStatus` with the new `LastCall` (`update_status` ->
`update_queue`); the member is not offered calls until `LastCall + wrapuptime`
(`is_member_available`, `get_wrapuptime`: the member's own `Wrapuptime` when set, else the
queue's). So `wrapup_until` is computed from those two numbers, with the queue's value from
the config that rendered queues.conf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypedDict

from ami.protocol import AmiMessage
from centralita.pop import PopHub
from dialplan.model import Site

log = logging.getLogger("centralita.agentstate")

MemberStatus = Literal["idle", "ringing", "in_call", "unavailable", "wrapup", "out"]

# AST_DEVICE_* numbers (include/asterisk/devicestate.h) -> what the console shows.
# UNKNOWN counts as idle: app_queue offers calls to such a member (is_member_available).
DEVICE_STATUS: dict[int, MemberStatus] = {
    0: "idle",  # UNKNOWN
    1: "idle",  # NOT_INUSE
    2: "in_call",  # INUSE
    3: "in_call",  # BUSY
    4: "unavailable",  # INVALID
    5: "unavailable",  # UNAVAILABLE
    6: "ringing",  # RINGING
    7: "ringing",  # RINGINUSE
    8: "in_call",  # ONHOLD
}

MEMBER_EVENTS = frozenset(
    {
        "QueueMemberStatus",
        "QueueMemberPause",
        "QueueMemberPaused",  # Asterisk 1.8-11
        "QueueMemberAdded",
        "QueueMemberRemoved",
    }
)


class QueueStateItem(TypedDict):
    """One queue in an `agent.state` message (docs/console.md)."""

    queue: str
    member: bool
    dynamic: bool
    paused: bool
    reason: str
    status: MemberStatus


class AgentStateMessage(TypedDict):
    """The `agent.state` WebSocket message (docs/console.md)."""

    type: Literal["agent.state"]
    extension: str
    paused: bool
    reason: str
    since: float
    queues: list[QueueStateItem]
    wrapup_until: float | None


class LinkMessage(TypedDict):
    """The `link.asterisk` WebSocket message: Centralita's AMI link up or down."""

    type: Literal["link.asterisk"]
    connected: bool


@dataclass(slots=True)
class Member:
    """One queue membership of one agent, as app_queue last reported it."""

    dynamic: bool = False
    paused: bool = False
    reason: str = ""
    device_status: int = 1
    in_call: bool = False
    last_call: float = 0.0
    wrapup_s: int = 0  # the member's own Wrapuptime (0: the queue's)


def _int(text: str) -> int:
    text = text.strip()
    if text.startswith("-"):
        return -int(text[1:]) if text[1:].isdigit() else 0
    return int(text) if text.isascii() and text.isdigit() else 0


class AgentStates:
    """The mirror of every configured agent's queue memberships (see the module docstring).

    `handle(msg)` applies one AMI event and `rebuild(items)` a `QueueStatus` list, both in the
    AMI reader's order; the agents they concern are queued and their `agent.state` is sent
    by `run()` on its own task, so the reader never waits for a socket. Several events for
    the same agent in one burst (a pause in every queue) make one message.
    """

    def __init__(
        self,
        site: Site,
        hub: PopHub,
        *,
        login_queues: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = hub
        self.clock = clock
        self.connected = False
        self._agents: set[str] = set()
        self._interfaces: dict[str, str] = {}
        self._devices: dict[str, str] = {}
        self._wrapup: dict[str, int] = {}
        self._allowed: dict[str, tuple[str, ...]] = {}
        self._members: dict[str, dict[str, Member]] = {}
        self._since: dict[str, float] = {}
        self._started = clock()  # `since` of an agent whose state has not changed yet
        self._shown: dict[str, tuple[bool, str]] = {}
        self._pending: dict[str, None] = {}
        self._wake = asyncio.Event()
        self._link_pending: bool | None = None
        self.sent = 0
        self.configure(site, login_queues=login_queues)

    def configure(self, site: Site, *, login_queues: Iterable[str] = ()) -> None:
        """Take the agents, devices, wrap-up times and allowed queues from `site`.

        Kept: the memberships, `since` and last shown pause of every agent still configured
        (Asterisk still holds them; the next QueueStatus or event corrects any that moved).
        Dropped: everything about an agent no longer configured, including a pending push.
        A new agent starts with no memberships, shown since the reload. Every configured agent
        is then queued for `run()` to send its state again, since its allowed queues may have
        changed.
        """
        self._agents = {a.extension for a in site.agents}
        # Interfaces as app_queue names them (case-insensitive: interface_exists uses
        # strcasecmp), from the same `device()` that renders queues.conf and QueueAdd.
        self._interfaces = {site.device(a.extension).lower(): a.extension for a in site.agents}
        self._devices = {a.extension: site.device(a.extension) for a in site.agents}
        self._wrapup = {q.name: q.wrapup_s for q in site.queues}
        # The queues each agent may be in: its own (static members in queues.conf), then
        # `[console] login_queues`; a queue Asterisk puts the agent in besides shows too.
        extra = tuple(login_queues)
        self._allowed = {
            a.extension: (*a.queues, *(q for q in extra if q not in a.queues)) for a in site.agents
        }
        if self._members:  # a reload: an agent it adds has been "logged out" since now
            now = self.clock()
            for agent in self._agents - self._members.keys():
                self._since[agent] = now
        self._members = {a: self._members.get(a, {}) for a in self._agents}
        self._since = {a: t for a, t in self._since.items() if a in self._agents}
        self._shown = {a: s for a, s in self._shown.items() if a in self._agents}
        self._pending = {a: None for a in self._pending if a in self._agents}
        for agent in sorted(self._agents):
            self._queue(agent)

    # -- reading AMI ------------------------------------------------------------------------

    def agent_of(self, interface: str) -> str | None:
        """The extension whose device is `interface` (`PJSIP/1001`), or None."""
        return self._interfaces.get(interface.strip().lower())

    def allowed(self, extension: str) -> tuple[str, ...]:
        """The queues `extension` may log in to or out of (config)."""
        return self._allowed.get(extension, ())

    def device(self, extension: str) -> str:
        """The agent's queue interface, as sent in QueuePause/QueueAdd/QueueRemove."""
        return self._devices[extension]

    def handle(self, msg: AmiMessage) -> str | None:
        """Apply one event; returns the agent it changed (queued for a push), or None."""
        name = msg.name
        if name not in MEMBER_EVENTS or "Privilege" not in msg:
            return None  # not ours, or a list item (applied by rebuild)
        agent = self.agent_of(msg.value("Interface"))
        queue = msg.value("Queue")
        if agent is None or not queue:
            return None
        members = self._members[agent]
        if name == "QueueMemberRemoved":
            members.pop(queue, None)
        else:
            members[queue] = self._member(msg, members.get(queue))
        self._touch(agent)
        return agent

    def rebuild(self, items: Iterable[AmiMessage]) -> set[str]:
        """Replace the mirror with a `QueueStatus` list; returns the agents whose state moved."""
        before = {a: self.state(a) for a in self._agents}
        fresh: dict[str, dict[str, Member]] = {a: {} for a in self._agents}
        for item in items:
            if item.name != "QueueMember":
                continue
            agent = self.agent_of(item.value("Location"))
            queue = item.value("Queue")
            if agent is not None and queue:
                fresh[agent][queue] = self._member(item, None)
        self._members = fresh
        changed = set()
        for agent in self._agents:
            now = self.state(agent)
            if _comparable(now) != _comparable(before[agent]):
                self._touch(agent)
                changed.add(agent)
        return changed

    def _member(self, msg: AmiMessage, old: Member | None) -> Member:
        member = old or Member()
        membership = msg.get("Membership")
        if membership is not None:
            member.dynamic = membership.strip().lower() == "dynamic"
        paused = msg.get("Paused")
        if paused is not None:
            member.paused = _int(paused) != 0
        reason = msg.get("PausedReason")
        if reason is not None or paused is not None:
            # Asterisk clears the reason on unpause, after sending it once with the unpause
            # (set_queue_member_pause): a reason shown only while paused.
            member.reason = (reason or "") if member.paused else ""
        status = msg.get("Status")
        if status is not None:
            member.device_status = _int(status)
        in_call = msg.get("InCall")
        if in_call is not None:
            member.in_call = _int(in_call) != 0
        last_call = msg.get("LastCall")
        if last_call is not None:
            member.last_call = float(_int(last_call))
        wrapup = msg.get("Wrapuptime")
        if wrapup is not None:
            member.wrapup_s = max(0, _int(wrapup))
        return member

    # -- the state as the console reads it ---------------------------------------------------

    def _wrapup_until(self, queue: str, member: Member) -> float | None:
        wrapup = member.wrapup_s or self._wrapup.get(queue, 0)
        if not wrapup or not member.last_call:
            return None
        until = member.last_call + wrapup
        return until if until > self.clock() else None

    def _status(self, queue: str, member: Member) -> MemberStatus:
        if member.in_call:
            return "in_call"
        status = DEVICE_STATUS.get(member.device_status, "idle")
        if status == "idle" and self._wrapup_until(queue, member) is not None:
            return "wrapup"
        return status

    def state(self, extension: str) -> AgentStateMessage:
        """The `agent.state` message for one agent (every queue it may be in, or is in)."""
        members = self._members.get(extension, {})
        names = list(self._allowed.get(extension, ()))
        names += sorted(q for q in members if q not in names)
        queues: list[QueueStateItem] = []
        for queue in names:
            member = members.get(queue)
            if member is None:
                queues.append(
                    {
                        "queue": queue,
                        "member": False,
                        "dynamic": False,
                        "paused": False,
                        "reason": "",
                        "status": "out",
                    }
                )
            else:
                queues.append(
                    {
                        "queue": queue,
                        "member": True,
                        "dynamic": member.dynamic,
                        "paused": member.paused,
                        "reason": member.reason if member.paused else "",
                        "status": self._status(queue, member),
                    }
                )
        paused, reason = self._paused(members)
        untils = [u for q, m in members.items() if (u := self._wrapup_until(q, m)) is not None]
        return {
            "type": "agent.state",
            "extension": extension,
            "paused": paused,
            "reason": reason,
            "since": self._since.get(extension, self._started),
            "queues": queues,
            "wrapup_until": max(untils) if untils else None,
        }

    @staticmethod
    def _paused(members: dict[str, Member]) -> tuple[bool, str]:
        """Paused when paused in every queue the agent is in; the reason of the first."""
        if not members or not all(m.paused for m in members.values()):
            return False, ""
        return True, next(iter(members.values())).reason

    def _touch(self, agent: str) -> None:
        shown = self._paused(self._members.get(agent, {}))
        if self._shown.get(agent) != shown or agent not in self._since:
            self._shown[agent] = shown
            self._since[agent] = self.clock()
        self._queue(agent)

    def _queue(self, agent: str) -> None:
        """Have `run()` send the agent's `agent.state` (once, however many times queued)."""
        self._pending[agent] = None
        self._wake.set()

    def link_message(self) -> LinkMessage:
        """The `link.asterisk` message for the current AMI link."""
        return {"type": "link.asterisk", "connected": self.connected}

    def set_link(self, connected: bool) -> None:
        """The AMI link went up (after the rebuild) or down: every console is told."""
        self.connected = connected
        self._link_pending = connected
        self._wake.set()

    # -- pushing -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Send queued `agent.state` and `link.asterisk` messages until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._link_pending is not None:
                self._link_pending = None
                message = self.link_message()
                for agent in self.hub.agents():
                    with contextlib.suppress(Exception):
                        await self.hub.send(agent, dict(message))
            while self._pending:
                agent = next(iter(self._pending))
                del self._pending[agent]
                if not self.hub.count(agent):
                    continue  # no console open: nothing to build (one that opens is sent the state)
                try:
                    self.sent += await self.hub.send(agent, dict(self.state(agent)))
                except Exception:  # one bad socket must not stop the pushes
                    log.exception("agent.state for %s not sent", agent)


def _comparable(state: AgentStateMessage) -> tuple[object, ...]:
    return (state["paused"], state["reason"], repr(state["queues"]), state["wrapup_until"])
