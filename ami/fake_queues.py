"""The queues of the fake AMI (`ami.testing.FakeAmiServer.queues`): app_queue's members.

Answers `QueueStatus`, `QueuePause`, `QueueAdd` and `QueueRemove` as Asterisk 20's
apps/app_queue.c does, with the same responses and the same events:

* `QueuePause` (`manager_pause_queue_member`): `Interface` and `Paused` required ("Need
  'Interface' and 'Paused' parameters."), `Queue` optional (none: every queue the interface is
  in, `set_member_paused`), `Reason` optional; "Interface paused successfully" / "Interface
  unpaused successfully", or "Interface not found". One `QueueMemberPause` per queue, even when
  the member was already in that state (`set_queue_member_pause` only logs it); the reason is
  kept only while paused, but is sent once with an unpause that names one.
* `QueueAdd` (`manager_add_queue_member`, `add_to_queue`): a dynamic member; "Added interface
  to queue", "Unable to add interface: Already there" (for a static member too),
  "Unable to add interface to queue: No such queue"; `QueueMemberAdded`.
* `QueueRemove` (`manager_remove_queue_member`, `remove_from_queue`): "Removed interface from
  queue", "Unable to remove interface: Not there", "Member not dynamic" for a static member
  (queues.conf `member =>`), "Unable to remove interface from queue: No such queue";
  `QueueMemberRemoved`.
* `QueueStatus` (`manager_queues_status`): per queue `QueueParams`, then its `QueueMember`
  items (`Name`/`Location`, not `MemberName`/`Interface`), then its `QueueEntry` items (the
  callers waiting, `Wait` in seconds), ActionID last.
* `QueueSummary` (`manager_queue_summary`): per queue `LoggedIn` (members not unavailable),
  `Available` (of those, free and not paused), `Callers`, `HoldTime`, `TalkTime`,
  `LongestHoldTime`.

Events carry `queue_member_blob_create`'s fields in its order; `set_status()` plays a device
state change (`update_status`: a `QueueMemberStatus`, with `LastCall` set when a call ended).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ami.protocol import AmiMessage

Headers = list[tuple[str, str]]

# ast_true (main/utils.c)
TRUE_WORDS = ("yes", "true", "y", "t", "1", "on")
# DeviceStateChange tokens -> AST_DEVICE_* numbers (include/asterisk/devicestate.h).
DEVICE_STATES = {
    s: i
    for i, s in enumerate(
        "UNKNOWN NOT_INUSE INUSE BUSY INVALID UNAVAILABLE RINGING RINGINUSE ONHOLD".split()
    )
}


@dataclass
class FakeMember:
    interface: str
    name: str
    state_interface: str
    dynamic: bool
    paused: bool = False
    reason: str = ""
    status: int = 1  # AST_DEVICE_NOT_INUSE
    in_call: bool = False
    calls: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = field(default_factory=lambda: int(time.time()))
    penalty: int = 0
    wrapuptime: int = 0


@dataclass
class FakeEntry:
    """A caller waiting in a queue (app_queue's `queue_ent`)."""

    channel: str
    uniqueid: str
    number: str = ""
    name: str = ""
    start: float = field(default_factory=time.time)


@dataclass
class FakeQueue:
    name: str
    strategy: str = "ringall"
    members: dict[str, FakeMember] = field(default_factory=dict)  # by interface, lower case
    entries: list[FakeEntry] = field(default_factory=list)  # callers waiting, first first
    completed: int = 0
    abandoned: int = 0
    servicelevel_perf: float = 0.0

    def find(self, interface: str) -> FakeMember | None:
        # interface_exists() compares with strcasecmp.
        return self.members.get(interface.strip().lower())


class FakeQueues:
    """The queues and members the fake Asterisk knows (empty until `add_queue`)."""

    def __init__(self) -> None:
        self.queues: dict[str, FakeQueue] = {}

    def add_queue(
        self, name: str, members: Iterable[tuple[str, str]] = (), strategy: str = "ringall"
    ) -> FakeQueue:
        """A queue with static members (interface, member name), as queues.conf makes."""
        queue = FakeQueue(name, strategy)
        for interface, member_name in members:
            queue.members[interface.lower()] = FakeMember(
                interface, member_name or interface, interface, dynamic=False
            )
        self.queues[name.lower()] = queue
        return queue

    def queue(self, name: str) -> FakeQueue | None:
        return self.queues.get(name.strip().lower())

    def member(self, queue: str, interface: str) -> FakeMember | None:
        """The member `interface` of `queue`, or None."""
        found = self.queue(queue)
        return found.find(interface) if found is not None else None

    # -- events -----------------------------------------------------------------------------

    @staticmethod
    def member_event(name: str, queue: FakeQueue, m: FakeMember, reason: str = "") -> AmiMessage:
        """An async member event (queue_member_blob_create's fields, in its order)."""
        return AmiMessage.build(
            [
                ("Event", name),
                ("Privilege", "agent,all"),
                ("Queue", queue.name),
                ("MemberName", m.name),
                ("Interface", m.interface),
                ("StateInterface", m.state_interface),
                ("Membership", "dynamic" if m.dynamic else "static"),
                ("Penalty", str(m.penalty)),
                ("CallsTaken", str(m.calls)),
                ("LastCall", str(m.last_call)),
                ("LastPause", str(m.last_pause)),
                ("LoginTime", str(m.login_time)),
                ("InCall", "1" if m.in_call else "0"),
                ("Status", str(m.status)),
                ("Paused", "1" if m.paused else "0"),
                ("PausedReason", reason or m.reason),
                ("Ringinuse", "0"),
                ("Wrapuptime", str(m.wrapuptime)),
            ]
        )

    def set_status(
        self, interface: str, status: int, *, in_call: bool = False, call_ended: bool = False
    ) -> list[AmiMessage]:
        """A device state change of `interface` (AST_DEVICE_* number) in every queue it is in:
        one `QueueMemberStatus` each; `call_ended` sets `LastCall` (update_queue, with
        shared_lastcall as queues.conf has it)."""
        events = []
        now = int(time.time())
        for queue in self.queues.values():
            m = queue.find(interface)
            if m is None:
                continue
            if call_ended:
                m.last_call = now
                m.calls += 1
            m.status = status
            m.in_call = in_call
            events.append(self.member_event("QueueMemberStatus", queue, m))
        return events

    # -- actions ----------------------------------------------------------------------------

    def act(
        self, msg: AmiMessage, devices: Mapping[str, str] | None = None
    ) -> tuple[Headers, list[AmiMessage]]:
        """Answer QueuePause, QueueAdd or QueueRemove: (response headers, events to send).

        `devices`: the device states seen (`DeviceStateChange`), for a new member's status
        as create_queue_member reads it (NOT_INUSE when unknown)."""
        action = msg.name.lower()
        if action == "queuepause":
            return self._pause(msg)
        if action == "queueadd":
            state = (devices or {}).get(msg.value("StateInterface") or msg.value("Interface"))
            return self._add(msg, DEVICE_STATES.get(state or "", 1))
        return self._remove(msg)

    @staticmethod
    def _error(text: str) -> tuple[Headers, list[AmiMessage]]:
        return [("Response", "Error"), ("Message", text)], []

    def _pause(self, msg: AmiMessage) -> tuple[Headers, list[AmiMessage]]:
        interface = msg.value("Interface")
        paused_s = msg.value("Paused")
        if not interface or not paused_s:
            return self._error("Need 'Interface' and 'Paused' parameters.")
        paused = paused_s.strip().lower() in TRUE_WORDS
        only = msg.value("Queue").strip().lower()
        reason = msg.value("Reason")
        events = []
        for key, queue in self.queues.items():
            if only and key != only:
                continue
            m = queue.find(interface)
            if m is None:
                continue
            m.paused = paused
            if paused:
                m.last_pause = int(time.time())
            m.reason = reason if paused else ""
            events.append(self.member_event("QueueMemberPause", queue, m, reason))
        if not events:
            return self._error("Interface not found")
        text = "Interface paused successfully" if paused else "Interface unpaused successfully"
        return [("Response", "Success"), ("Message", text)], events

    def _add(self, msg: AmiMessage, device_state: int) -> tuple[Headers, list[AmiMessage]]:
        name = msg.value("Queue")
        interface = msg.value("Interface")
        if not name:
            return self._error("'Queue' not specified.")
        if not interface:
            return self._error("'Interface' not specified.")
        queue = self.queue(name)
        if queue is None:
            return self._error("Unable to add interface to queue: No such queue")
        if queue.find(interface) is not None:
            return self._error("Unable to add interface: Already there")
        m = FakeMember(
            interface,
            msg.value("MemberName") or interface,
            msg.value("StateInterface") or interface,
            dynamic=True,
            paused=msg.value("Paused").strip().lower() in TRUE_WORDS,
            reason=msg.value("Reason"),
            status=device_state,
        )
        queue.members[interface.lower()] = m
        return [("Response", "Success"), ("Message", "Added interface to queue")], [
            self.member_event("QueueMemberAdded", queue, m)
        ]

    def _remove(self, msg: AmiMessage) -> tuple[Headers, list[AmiMessage]]:
        name = msg.value("Queue")
        interface = msg.value("Interface")
        if not name or not interface:
            return self._error("Need 'Queue' and 'Interface' parameters.")
        queue = self.queue(name)
        if queue is None:
            return self._error("Unable to remove interface from queue: No such queue")
        m = queue.find(interface)
        if m is None:
            return self._error("Unable to remove interface: Not there")
        if not m.dynamic:
            return self._error("Member not dynamic")
        del queue.members[interface.lower()]
        return [("Response", "Success"), ("Message", "Removed interface from queue")], [
            self.member_event("QueueMemberRemoved", queue, m)
        ]

    def status_items(self, msg: AmiMessage) -> list[AmiMessage]:
        """The `QueueStatus` list items (QueueParams, then QueueMember per member), with the
        action's `Queue` and `Member` filters."""
        action_id = msg.value("ActionID")
        queue_filter = msg.value("Queue")
        member_filter = msg.value("Member")
        tail = [("ActionID", action_id)] if action_id else []
        items = []
        for key, queue in self.queues.items():
            if queue_filter and key != queue_filter.strip().lower():
                continue
            items.append(
                AmiMessage.build(
                    [
                        ("Event", "QueueParams"),
                        ("Queue", queue.name),
                        ("Max", "0"),
                        ("Strategy", queue.strategy),
                        ("Calls", "0"),
                        ("Holdtime", "0"),
                        ("TalkTime", "0"),
                        ("Completed", str(queue.completed)),
                        ("Abandoned", str(queue.abandoned)),
                        ("ServiceLevel", "0"),
                        ("ServicelevelPerf", f"{queue.servicelevel_perf:2.1f}"),
                        ("ServicelevelPerf2", "0.0"),
                        ("Weight", "0"),
                        *tail,
                    ]
                )
            )
            for m in queue.members.values():
                if member_filter and member_filter not in (m.interface, m.name):
                    continue
                items.append(
                    AmiMessage.build(
                        [
                            ("Event", "QueueMember"),
                            ("Queue", queue.name),
                            ("Name", m.name),
                            ("Location", m.interface),
                            ("StateInterface", m.state_interface),
                            ("Membership", "dynamic" if m.dynamic else "static"),
                            ("Penalty", str(m.penalty)),
                            ("CallsTaken", str(m.calls)),
                            ("LastCall", str(m.last_call)),
                            ("LastPause", str(m.last_pause)),
                            ("LoginTime", str(m.login_time)),
                            ("InCall", "1" if m.in_call else "0"),
                            ("Status", str(m.status)),
                            ("Paused", "1" if m.paused else "0"),
                            ("PausedReason", m.reason),
                            ("Wrapuptime", str(m.wrapuptime)),
                            *tail,
                        ]
                    )
                )
            now = time.time()
            for position, entry in enumerate(queue.entries, 1):
                items.append(
                    AmiMessage.build(
                        [
                            ("Event", "QueueEntry"),
                            ("Queue", queue.name),
                            ("Position", str(position)),
                            ("Channel", entry.channel),
                            ("Uniqueid", entry.uniqueid),
                            ("CallerIDNum", entry.number or "unknown"),
                            ("CallerIDName", entry.name or "unknown"),
                            ("ConnectedLineNum", "unknown"),
                            ("ConnectedLineName", "unknown"),
                            ("Wait", str(int(now - entry.start))),
                            ("Priority", "0"),
                            *tail,
                        ]
                    )
                )
        return items

    def summary_items(self, msg: AmiMessage) -> list[AmiMessage]:
        """The `QueueSummary` list items, with the action's `Queue` filter."""
        action_id = msg.value("ActionID")
        queue_filter = msg.value("Queue").strip().lower()
        tail = [("ActionID", action_id)] if action_id else []
        now = time.time()
        items = []
        for key, queue in self.queues.items():
            if queue_filter and key != queue_filter:
                continue
            # AST_DEVICE_INVALID (4) and UNAVAILABLE (5) are not logged in; NOT_INUSE (1)
            # and UNKNOWN (0) are available unless paused (member_status_available).
            logged_in = [m for m in queue.members.values() if m.status not in (4, 5)]
            available = [m for m in logged_in if m.status in (0, 1) and not m.paused]
            longest = max((int(now - e.start) for e in queue.entries), default=0)
            items.append(
                AmiMessage.build(
                    [
                        ("Event", "QueueSummary"),
                        ("Queue", queue.name),
                        ("LoggedIn", str(len(logged_in))),
                        ("Available", str(len(available))),
                        ("Callers", str(len(queue.entries))),
                        ("HoldTime", "0"),
                        ("TalkTime", "0"),
                        ("LongestHoldTime", str(longest)),
                        *tail,
                    ]
                )
            )
        return items
