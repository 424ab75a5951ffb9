"""The call tracker, sans-IO: AMI events in, call changes for agents out.

`CallTracker.handle(msg)` takes every `AmiMessage` the listener reads and returns the
`CallChange`s it caused: `ringing`, `answered`, `ended`, one agent's extension at a time. A
pop is identified by the call (its Linkedid, docs/asterisk-protocol.md#uniqueid-and-linkedid) and
the agent, so the several events that describe one ring (AgentCalled, DialBegin, the halves of a
Local channel) make one `ringing`; every pop goes ringing → (answered) → ended, and a duplicate or
late event never repeats a step. `resync(core_show_channels)` rebuilds the state after a reconnect.

Identities joined here are those named in asterisk-traces/README.md: the customer channel's
Uniqueid, the call's Linkedid, the agent's channel (`DestChannel: SIP/1001-00000000`) and the
caller number. No asyncio, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from ami.calls import (
    ANSWERED,
    BUSY_DEVICE_STATES,
    DIAL_FAILED,
    ENDED,
    RINGING,
    STATE_UP,
    AgentDevices,
    CallChange,
    CallFacts,
    Chan,
    Expect,
    Lru,
    Pop,
    PopTable,
    c_unescape,
)
from ami.protocol import AmiMessage
from dialplan import names
from dialplan.names import CUSTOMER_ID_VAR, DIAL_VAR, OUTBOUND_CONTEXT, VARIABLE_PREFIX

Handler = Callable[[AmiMessage], list[CallChange]]


class CallTracker:
    """Follows calls on AMI and reports what each agent's screen should show.

    agents: the extensions to track. driver_prefixes: the channel technologies of agent
    devices (`PJSIP/1001-...`, `SIP/1001-...`). outbound_context: where click-to-dial sends
    the call (used to read the dialled number after a reconnect).
    """

    def __init__(
        self,
        agents: Collection[str],
        driver_prefixes: Collection[str] = ("PJSIP", "SIP"),
        *,
        outbound_context: str = OUTBOUND_CONTEXT,
        memory: int = 50_000,
    ) -> None:
        self._agent_devices = AgentDevices(agents, driver_prefixes)
        self._outbound_context = outbound_context
        self._channels: dict[str, Chan] = {}
        self._members: dict[str, set[str]] = {}  # linkedid -> live channel uniqueids
        self._bridges: dict[str, set[str]] = {}
        self._pops = PopTable()
        self._leg_pop: dict[str, tuple[str, str]] = {}  # agent leg uniqueid -> pop key
        self._calls: dict[str, CallFacts] = {}
        self._vars: dict[str, dict[str, str]] = {}  # linkedid -> CENTRALITA_* variables
        self._devices: dict[str, str] = {}
        self._expected: dict[str, Expect] = {}  # originate ActionID -> agent, number
        self._gone = Lru(memory)  # hung-up channels: never recreated by a late event
        self._done = Lru(memory)  # agent legs whose pop ended: never pop again
        self._handlers: dict[str, Handler] = {
            "Newchannel": self._on_channel,
            "NewCallerid": self._on_channel,
            "NewConnectedLine": self._on_channel,
            "Hangup": self._on_hangup,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "BridgeDestroy": self._on_bridge_destroy,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "VarSet": self._on_varset,
            "QueueCallerJoin": self._on_queue_join,
            "AgentCalled": self._on_agent_called,
            "AgentConnect": self._on_agent_connect,
            "AgentComplete": self._on_agent_leg_over,
            "AgentRingNoAnswer": self._on_agent_leg_over,
            "DeviceStateChange": self._on_device_state,
            "OriginateResponse": self._on_originate_response,
        }

    # -- public API -------------------------------------------------------------------------

    @property
    def agents(self) -> frozenset[str]:
        return self._agent_devices.agents

    def set_agents(self, agents: Collection[str]) -> None:
        """Track `agents` from now on; the driver prefixes and every call tracked are kept."""
        self._agent_devices.set_agents(agents)

    def handle(self, msg: AmiMessage) -> list[CallChange]:
        """Apply one message; return the call changes it caused (often none)."""
        handler = self._handlers.get(msg.name)
        if handler is None or msg.kind != "event":
            return []
        # List items answer our own actions (CoreShowChannels, DeviceStateList): they carry an
        # ActionID and no Privilege (docs/asterisk-protocol.md#ami-lists); only resync() reads
        # channel lists.
        if msg.name == "DeviceStateChange" or "Privilege" in msg or "ActionID" not in msg:
            return handler(msg)
        return []

    def snapshot(self) -> list[CallChange]:
        """Every open pop as its latest change (`ringing` or `answered`)."""
        return [p.change(ANSWERED if p.answered else RINGING) for p in self._pops.values()]

    def reset(self) -> None:
        """Forget everything (without reporting anything)."""
        self._channels.clear()
        self._members.clear()
        self._bridges.clear()
        self._pops.clear()
        self._leg_pop.clear()
        self._calls.clear()
        self._vars.clear()
        self._devices.clear()
        self._expected.clear()
        self._gone.clear()
        self._done.clear()

    def agent_busy(self, extension: str) -> bool:
        """True while the agent has a pop, a live channel, a pending originate or a busy device."""
        if any(p.agent == extension for p in self._pops.values()):
            return True
        if any(e.agent == extension for e in self._expected.values()):
            return True
        if any(c.agent == extension for c in self._channels.values()):
            return True
        return any(
            state in BUSY_DEVICE_STATES and self._agent_devices.agent_of_device(device) == extension
            for device, state in self._devices.items()
        )

    def agent_call_channel(self, extension: str) -> str | None:
        """The agent's channel that is up and bridged (talking), e.g. `PJSIP/1002-0000000a`."""
        talking = (c for c in self._channels.values() if c.agent == extension and c.bridge)
        return next((c.name for c in talking if c.state == STATE_UP), None)

    def device_state(self, device: str) -> str | None:
        """The device's last known state (`NOT_INUSE`, `UNAVAILABLE`, ...), None if unknown."""
        return self._devices.get(device)

    def expect_originate(self, action_id: str, agent: str, number: str) -> None:
        """Announce a click-to-dial: the agent's ringing channel will be a call to `number`."""
        self._expected[action_id] = Expect(agent, number)
        while len(self._expected) > 1000:
            del self._expected[next(iter(self._expected))]

    def forget_originate(self, action_id: str) -> None:
        """Drop an announced originate (its OriginateResponse came, or never will)."""
        self._expected.pop(action_id, None)

    def set_device_states(self, items: Iterable[AmiMessage]) -> None:
        """Replace the device-state table with a `DeviceStateList` answer
        (docs/asterisk-protocol.md#device-state-lists-and-getvar)."""
        self._devices = {
            m.value("Device"): m.value("State").upper()
            for m in items
            if m.name == "DeviceStateChange" and m.value("Device")
        }

    def resync(self, items: Iterable[AmiMessage]) -> list[CallChange]:
        """Rebuild from a `CoreShowChannels` answer after a reconnect.

        Pops whose agent leg is still up stay open (answered if it is now Up and bridged);
        pops whose channels vanished during the outage get `ended`; agent channels up in a
        call that started during the outage get a pop (`ringing`, and `answered` if Up).
        """
        before = self._channels
        self._channels = {}
        self._members = {}
        self._bridges = {}
        for item in items:
            if item.name != "CoreShowChannel":
                continue
            chan = self._chan(item, "")
            if chan is None:
                continue
            bridge = item.value("BridgeId")
            if bridge:
                chan.bridge = bridge
                self._bridges.setdefault(bridge, set()).add(chan.uniqueid)
            if item.value("Application") == "Queue":
                chan.queue = item.value("ApplicationData").split(",")[0] or None
        for uid in before:
            if uid not in self._channels:
                self._gone.add(uid)  # hung up during the outage: a late event must not revive it
        changes: list[CallChange] = []
        old = self._pops
        self._pops = PopTable()
        self._leg_pop = {}
        for key, pop in old.items():
            live = {u for u in pop.legs if u in self._channels}
            if not live:
                for leg in pop.legs:
                    self._done.add(leg)
                changes.append(pop.change(ENDED))
                continue
            pop.legs = live
            self._pops[key] = pop
            for leg in live:
                self._leg_pop[leg] = key
            if not pop.answered and any(self._up_and_bridged(u) for u in live):
                pop.answered = True
                changes.append(pop.change(ANSWERED))
        for chan in list(self._channels.values()):
            if chan.agent and chan.uniqueid not in self._leg_pop:
                changes += self._pop_from_snapshot(chan)
        live_links = set(self._members)
        for linkedid in [k for k in self._calls if k not in live_links]:
            del self._calls[linkedid]
        for linkedid in [k for k in self._vars if k not in live_links]:
            del self._vars[linkedid]
        return changes

    # -- channel bookkeeping ----------------------------------------------------------------

    def agent_of_channel(self, name: str) -> str | None:
        """The agent extension of a device channel (`PJSIP/1001-00000001` -> "1001")."""
        return self._agent_devices.agent_of_channel(name)

    def _chan(self, msg: AmiMessage, prefix: str) -> Chan | None:
        """The channel a (prefixed) channel block describes, updated from it."""
        get = msg.get
        uid = get(prefix + "Uniqueid")
        if not uid or uid == "none":
            return None
        chan = self._channels.get(uid)
        if chan is None:
            if uid in self._gone:
                return None
            name = get(prefix + "Channel") or ""
            chan = Chan(uid, name, self.agent_of_channel(name))
            self._channels[uid] = chan
        linkedid = get(prefix + "Linkedid")
        if linkedid and linkedid != chan.linkedid:
            if chan.linkedid:
                self._unlink(chan.linkedid, uid)
            chan.linkedid = linkedid
            self._members.setdefault(linkedid, set()).add(uid)
        chan.update_from(msg, prefix)
        # manager.conf `channelvars` adds `ChanVariable: NAME=value` to every block
        # (docs/asterisk-protocol.md#ami-events).
        if prefix + "ChanVariable" in msg and chan.linkedid:
            for item in msg.get_all(prefix + "ChanVariable"):
                var, eq, val = item.partition("=")
                if eq and var.startswith(VARIABLE_PREFIX) and val:
                    self._vars.setdefault(chan.linkedid, {})[var] = c_unescape(val)
        return chan

    def _unlink(self, linkedid: str, uid: str) -> None:
        members = self._members.get(linkedid)
        if members is not None:
            members.discard(uid)
            if not members:
                del self._members[linkedid]
                if not self._pops.has_call(linkedid):
                    self._calls.pop(linkedid, None)
                    self._vars.pop(linkedid, None)

    def _up_and_bridged(self, uid: str) -> bool:
        chan = self._channels.get(uid)
        return chan is not None and chan.state == STATE_UP and chan.bridge is not None

    # -- pops -------------------------------------------------------------------------------

    def _ring(
        self,
        leg: Chan,
        agent: str,
        *,
        customer: Chan | None,
        direction: str,
        number: str,
        name: str,
        queue: str | None,
    ) -> list[CallChange]:
        """Open the pop for (call, agent) if it is not open yet; `leg` is the agent's channel."""
        if leg.uniqueid in self._done:
            return []
        call_id = leg.linkedid or (customer.linkedid if customer else "") or leg.uniqueid
        key = (call_id, agent)
        current = self._leg_pop.get(leg.uniqueid)
        if current is not None and current != key:
            return []  # this leg already pops for the call it was first seen in
        pop = self._pops.get(key)
        if pop is not None:
            pop.legs.add(leg.uniqueid)
            self._leg_pop[leg.uniqueid] = key
            if leg.agent is not None and self.agent_of_channel(pop.channel) is None:
                pop.channel = leg.name  # the phone's channel beats a Local half in later changes
            return []
        call = self._calls.get(call_id)
        if call is None:
            uniqueid = customer.uniqueid if customer is not None else leg.uniqueid
            language = customer.language if customer is not None else ""
            call = CallFacts(uniqueid, direction, number, name, queue, language)
            self._calls[call_id] = call
        elif call.queue is None and queue:
            call.queue = queue
        pop = Pop(
            call_id=call_id,
            agent=agent,
            uniqueid=call.uniqueid,
            direction=call.direction,
            number=call.number,
            name=call.name,
            queue=queue or call.queue,
            customer_id=self._vars.get(call_id, {}).get(CUSTOMER_ID_VAR),
            channel=leg.name,
            legs={leg.uniqueid},
            language=call.language,
        )
        self._pops[key] = pop
        self._leg_pop[leg.uniqueid] = key
        return [pop.change(RINGING)]

    def _answer_leg(self, uid: str) -> list[CallChange]:
        key = self._leg_pop.get(uid)
        pop = self._pops.get(key) if key else None
        if pop is None or pop.answered:
            return []
        pop.answered = True
        return [pop.change(ANSWERED)]

    def _end_leg(self, uid: str, *, keep: str | None = None) -> list[CallChange]:
        """End the pop holding agent leg `uid`; its legs (but `keep`) never pop again."""
        key = self._leg_pop.get(uid)
        if key is None:
            if uid != keep:
                self._done.add(uid)
            return []
        pop = self._pops.pop(key)
        for leg in pop.legs:
            self._leg_pop.pop(leg, None)
            if leg != keep:
                self._done.add(leg)
        if key[0] not in self._members:
            self._calls.pop(key[0], None)
            self._vars.pop(key[0], None)
        return [pop.change(ENDED)]

    def _drop_leg(self, uid: str) -> list[CallChange]:
        """Agent leg `uid` hung up: its pop ends when no other leg of it is left.

        A queue member reached through a Local channel has several legs (the Local halves and
        the device channel); Local optimisation hangs the halves up while the call goes on.
        """
        key = self._leg_pop.pop(uid, None)
        if key is None:
            return []
        pop = self._pops[key]
        pop.legs.discard(uid)
        if pop.legs:
            return []
        pop.legs.add(uid)
        self._leg_pop[uid] = key
        return self._end_leg(uid)

    def _move(self, leg: Chan, call_id: str) -> list[CallChange]:
        """A transfer put agent leg `leg` into call `call_id`: end its old pop, open the new."""
        agent = leg.agent
        call = self._calls.get(call_id)
        if agent is None or call is None or leg.uniqueid in self._done:
            return []
        key = (call_id, agent)
        changes: list[CallChange] = []
        current = self._leg_pop.get(leg.uniqueid)
        if current is not None and current != key:
            changes += self._end_leg(leg.uniqueid, keep=leg.uniqueid)
        pop = self._pops.get(key)
        if pop is None:
            # Placed by the call's id, not the leg's Linkedid: the bridge may not have made the
            # leg adopt the call's (older) Linkedid yet (main/bridge_basic.c:682,
            # docs/asterisk-protocol.md#uniqueid-and-linkedid).
            pop = self._new_pop_from_call(leg, agent, call_id, call)
            changes.append(pop.change(RINGING))
        else:
            pop.legs.add(leg.uniqueid)
            self._leg_pop[leg.uniqueid] = key
        if not pop.answered:
            pop.answered = True
            changes.append(pop.change(ANSWERED))
        return changes

    def _new_pop_from_call(self, leg: Chan, agent: str, call_id: str, call: CallFacts) -> Pop:
        pop = Pop(
            call_id=call_id,
            agent=agent,
            uniqueid=call.uniqueid,
            direction=call.direction,
            number=call.number,
            name=call.name,
            queue=call.queue,
            customer_id=self._vars.get(call_id, {}).get(CUSTOMER_ID_VAR),
            channel=leg.name,
            legs={leg.uniqueid},
            language=call.language,
        )
        self._pops[(call_id, agent)] = pop
        self._leg_pop[leg.uniqueid] = (call_id, agent)
        return pop

    def _dialled_number(self, leg: Chan) -> str:
        """The customer number of a click-to-dial whose agent leg is `leg`."""
        number = self._vars.get(leg.linkedid, {}).get(DIAL_VAR)
        if number:
            return number
        for expect in self._expected.values():
            if expect.agent == leg.agent:
                return expect.number
        if leg.context == self._outbound_context and leg.exten:
            return leg.exten
        return leg.conn_num or leg.cid_num

    def _pop_from_snapshot(self, leg: Chan) -> list[CallChange]:
        agent = leg.agent
        if agent is None or leg.uniqueid in self._done:
            return []
        call_id = leg.linkedid or leg.uniqueid
        others = [self._channels[u] for u in self._members.get(call_id, ()) if u != leg.uniqueid]
        first = self._channels.get(call_id)
        queue = next((c.queue for c in others if c.queue), None)
        changes: list[CallChange]
        if first is leg:  # the agent's channel started the call: click-to-dial or dialled out
            known = DIAL_VAR in self._vars.get(call_id, {}) or any(
                e.agent == agent for e in self._expected.values()
            )
            if not others and not known:
                return []  # alone in the dialplan (voicemail, feature codes): nothing to pop
            changes = self._ring(
                leg,
                agent,
                customer=None,
                direction="out",
                number=self._dialled_number(leg),
                name="",
                queue=queue,
            )
        else:
            # The customer: a channel waiting in a queue, else the call's first channel, else
            # any other; the agent leg's connected line as the last resort.
            candidates = [c for c in others if c.queue]
            if first is not None:
                candidates.append(first)
            candidates += others
            customer = next((c for c in candidates if c.cid_num), None)
            changes = self._ring(
                leg,
                agent,
                customer=customer,
                direction="in",
                number=customer.cid_num if customer else leg.conn_num,
                name=customer.cid_name if customer else leg.conn_name,
                queue=queue,
            )
        if changes and leg.state == STATE_UP:
            changes += self._answer_leg(leg.uniqueid)
        return changes

    # -- event handlers ---------------------------------------------------------------------

    def _on_channel(self, msg: AmiMessage) -> list[CallChange]:
        self._chan(msg, "")
        return []

    def _on_hangup(self, msg: AmiMessage) -> list[CallChange]:
        uid = msg.value("Uniqueid")
        if not uid:
            return []
        changes = self._drop_leg(uid)
        self._done.add(uid)
        self._gone.add(uid)
        chan = self._channels.pop(uid, None)
        if chan is not None:
            if chan.bridge is not None:
                self._leave_bridge(chan.bridge, uid)
            if chan.linkedid:
                self._unlink(chan.linkedid, uid)
        return changes

    def _on_queue_join(self, msg: AmiMessage) -> list[CallChange]:
        chan = self._chan(msg, "")
        if chan is not None:
            chan.queue = msg.value("Queue") or None
        return []

    def _queue_leg(self, msg: AmiMessage) -> tuple[Chan | None, Chan | None, str | None]:
        caller = self._chan(msg, "")
        leg = self._chan(msg, "Dest")
        agent = None
        if leg is not None:
            agent = leg.agent or self._agent_devices.agent_of_interface(msg.value("Interface"))
        return caller, leg, agent

    def _on_agent_called(self, msg: AmiMessage) -> list[CallChange]:
        caller, leg, agent = self._queue_leg(msg)
        if leg is None or agent is None:
            return []
        return self._ring(
            leg,
            agent,
            customer=caller,
            direction="in",
            number=caller.cid_num if caller else leg.conn_num,
            name=caller.cid_name if caller else leg.conn_name,
            queue=msg.value("Queue") or None,
        )

    def _on_agent_connect(self, msg: AmiMessage) -> list[CallChange]:
        changes = self._on_agent_called(msg)
        uid = msg.value("DestUniqueid")
        return changes + self._answer_leg(uid) if uid else changes

    def _on_agent_leg_over(self, msg: AmiMessage) -> list[CallChange]:
        # AgentRingNoAnswer: this agent did not answer (the queue may ring another, or this one
        # again on a new channel); AgentComplete: the agent's part of the call is over
        # (docs/asterisk-protocol.md#queues).
        uid = msg.value("DestUniqueid")
        return self._end_leg(uid) if uid else []

    def _dial_pop(self, msg: AmiMessage) -> tuple[list[CallChange], Chan | None]:
        """Open the pop a DialBegin/DialEnd describes; return it and the agent leg."""
        caller = self._chan(msg, "")
        dest = self._chan(msg, "Dest")
        if dest is None:
            return [], None
        if dest.agent is not None:
            if caller is None:
                # No caller block: an Originate or call file dials the agent's device first
                # (docs/asterisk-protocol.md#ami-call-events; ami-click2dial.txt) - click-to-dial;
                # a listen-in (vars set first, pbx.c pbx_outgoing_attempt) has no customer: no pop.
                if names.SPY_TARGET_VAR in self._vars.get(dest.linkedid, {}):
                    return [], None
                number = self._dialled_number(dest)
                return self._ring(
                    dest,
                    dest.agent,
                    customer=None,
                    direction="out",
                    number=number,
                    name="",
                    queue=None,
                ), dest
            return self._ring(
                dest,
                dest.agent,
                customer=caller,
                direction="in",
                number=caller.cid_num,
                name=caller.cid_name,
                queue=caller.queue,
            ), dest
        if caller is not None and caller.agent is not None:
            # The agent dials out from the phone (or a click-to-dial's second half, already open).
            # The dialled number is the extension the agent's channel is running (its Exten).
            return self._ring(
                caller,
                caller.agent,
                customer=None,
                direction="out",
                number=caller.exten,
                name="",
                queue=None,
            ), caller
        return [], None

    def _on_dial_begin(self, msg: AmiMessage) -> list[CallChange]:
        return self._dial_pop(msg)[0]

    def _on_dial_end(self, msg: AmiMessage) -> list[CallChange]:
        status = msg.value("DialStatus")
        dest_uid = msg.value("DestUniqueid")
        if status == "ANSWER":
            changes, leg = self._dial_pop(msg)
            if leg is not None:
                changes += self._answer_leg(leg.uniqueid)
            return changes
        if status in DIAL_FAILED and dest_uid:
            self._chan(msg, "Dest")
            return self._end_leg(dest_uid)
        return []

    def _on_bridge_enter(self, msg: AmiMessage) -> list[CallChange]:
        chan = self._chan(msg, "")
        bridge = msg.value("BridgeUniqueid")
        if chan is None or not bridge:
            return []
        if chan.bridge is not None and chan.bridge != bridge:
            self._leave_bridge(chan.bridge, chan.uniqueid)
        chan.bridge = bridge
        members = self._bridges.setdefault(bridge, set())
        members.add(chan.uniqueid)
        swap = msg.value("SwapUniqueid")
        if swap and swap != chan.uniqueid:
            members.discard(swap)
        return self._settle_bridge(bridge)

    def _settle_bridge(self, bridge: str) -> list[CallChange]:
        """Agents bridged with a known customer pop for that customer's call (transfers)."""
        members = [
            self._channels[u] for u in sorted(self._bridges.get(bridge, ())) if u in self._channels
        ]
        customer = next((c for c in members if c.agent is None and c.linkedid in self._calls), None)
        if customer is None:
            return []
        call_id = customer.linkedid
        changes: list[CallChange] = []
        for chan in members:
            if chan.agent is None or chan.uniqueid in self._done:
                continue
            if self._leg_pop.get(chan.uniqueid) == (call_id, chan.agent):
                changes += self._answer_leg(chan.uniqueid)
            else:
                changes += self._move(chan, call_id)
        return changes

    def _on_bridge_leave(self, msg: AmiMessage) -> list[CallChange]:
        uid = msg.value("Uniqueid")
        chan = self._channels.get(uid)
        bridge = msg.value("BridgeUniqueid")
        self._leave_bridge(bridge, uid)
        if chan is not None and chan.bridge == bridge:
            chan.bridge = None
        return []

    def _leave_bridge(self, bridge: str, uid: str) -> None:
        members = self._bridges.get(bridge)
        if members is not None:
            members.discard(uid)
            if not members:
                del self._bridges[bridge]

    def _on_bridge_destroy(self, msg: AmiMessage) -> list[CallChange]:
        self._bridges.pop(msg.value("BridgeUniqueid"), None)
        return []

    def _on_blind_transfer(self, msg: AmiMessage) -> list[CallChange]:
        # The transferer hands the customer to the dialplan; the new agent's DialBegin opens
        # its pop with the call's customer (main/stasis_bridges.c blind transfer blob).
        if msg.value("Result") not in ("", "Success"):
            return []
        uid = msg.value("TransfererUniqueid")
        return self._end_leg(uid) if uid else []

    def _on_attended_transfer(self, msg: AmiMessage) -> list[CallChange]:
        if msg.value("Result") not in ("", "Success"):
            return []
        changes: list[CallChange] = []
        for prefix in ("OrigTransferer", "SecondTransferer"):
            uid = msg.value(prefix + "Uniqueid")
            if uid:
                changes += self._end_leg(uid)
        target = self._chan(msg, "TransferTarget")
        transferee = self._chan(msg, "Transferee")
        if target is not None and target.agent is not None and transferee is not None:
            call_id = transferee.linkedid
            if call_id in self._calls:
                changes += self._move(target, call_id)
        return changes

    def _on_varset(self, msg: AmiMessage) -> list[CallChange]:
        variable = msg.value("Variable")
        if not variable.startswith(VARIABLE_PREFIX):
            return []
        chan = self._chan(msg, "")
        if chan is not None and chan.linkedid:
            value = c_unescape(msg.value("Value"))
            self._vars.setdefault(chan.linkedid, {})[variable] = value
            if variable == CUSTOMER_ID_VAR:
                # Set while an agent already rings: the next changes of those pops carry it.
                for (call_id, _), pop in self._pops.items():
                    if call_id == chan.linkedid:
                        pop.customer_id = value or None
        return []

    def _on_device_state(self, msg: AmiMessage) -> list[CallChange]:
        device = msg.value("Device")
        if device:
            self._devices[device] = msg.value("State").upper()
        return []

    def _on_originate_response(self, msg: AmiMessage) -> list[CallChange]:
        action_id = msg.action_id
        if action_id:
            self._expected.pop(action_id, None)
        return []
