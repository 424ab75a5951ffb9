"""The call tracker: every recorded AMI trace replayed, plus synthetic variants built from them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ami.calls import CallChange, Pop, PopTable
from ami.cdr import parse_cdr
from ami.protocol import AmiMessage, parse_trace
from ami.testing import ChannelTable, load_trace, rewrite
from ami.tracker import CallTracker

TRACES = Path(__file__).resolve().parent / "fixtures" / "asterisk-traces"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ami"
AGENTS = ["1001", "1002"]


def replay(tracker: CallTracker, messages: Iterable[AmiMessage]) -> list[CallChange]:
    changes: list[CallChange] = []
    for msg in messages:
        changes += tracker.handle(msg)
    return changes


def trace(name: str) -> list[AmiMessage]:
    return parse_trace((TRACES / name).read_bytes())


def fixture(name: str) -> list[AmiMessage]:
    return parse_trace((FIXTURES / name).read_bytes())


def change(kind: str, **fields: str | None) -> CallChange:
    base: dict[str, str | None] = {
        "direction": "in",
        "name": "",
        "queue": None,
        "customer_id": None,
    }
    base.update(fields)
    return CallChange(kind=kind, **base)  # type: ignore[arg-type]


def pop(**fields: str | None) -> list[CallChange]:
    return [change(k, **fields) for k in ("ringing", "answered", "ended")]


# What an agent's screen must show for each recording, read from the traces by hand.
QUEUE_SIP = {
    "call_id": "1795301086.0",  # Linkedid shared by the Local halves and SIP/1001-00000000
    "uniqueid": "1795301086.1",  # the caller's channel in the queue (its Cdr has this UniqueID)
    "number": "+34915550123",
    "name": "Bob Customer",
    "agent": "1001",
    "queue": "support-sip",
    "channel": "SIP/1001-00000000",
}
QUEUE_TIMEOUT = {
    "call_id": "1795301710.16",
    "uniqueid": "1795301710.17",
    "number": "5559998888",
    "name": "Erin NoAnswer",
    "agent": "1001",
    "queue": "support-sip",
    "channel": "SIP/1001-00000004",
}
CLICK2DIAL = {
    "call_id": "1795301185.12",
    "uniqueid": "1795301185.12",  # the originated agent channel is the call's first channel
    "direction": "out",
    "number": "5550001",
    "agent": "1001",
    "channel": "SIP/1001-00000002",
}

EXPECTED = {
    "ami-agi-call.txt": [],  # an IVR call: no agent involved, no pop
    "ami-click2dial.txt": pop(**CLICK2DIAL),
    "ami-queue-sip-call.txt": pop(**QUEUE_SIP),
    # AgentRingNoAnswer ends the pop; the queue times out; never answered
    "ami-queue-timeout.txt": [change("ringing", **QUEUE_TIMEOUT), change("ended", **QUEUE_TIMEOUT)],
}


def test_every_ami_trace_has_an_expectation() -> None:
    assert sorted(p.name for p in TRACES.glob("ami-*.txt")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trace_gives_exact_changes(name: str) -> None:
    tracker = CallTracker(AGENTS, ("PJSIP", "SIP"))
    assert replay(tracker, trace(name)) == EXPECTED[name]
    assert tracker.snapshot() == []
    assert not tracker.agent_busy("1001")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_event_twice_changes_nothing(name: str) -> None:
    doubled = [m for msg in trace(name) for m in (msg, msg)]
    assert replay(CallTracker(AGENTS), doubled) == EXPECTED[name]


def test_other_driver_or_unknown_extension_pops_nothing() -> None:
    assert replay(CallTracker(AGENTS, ("PJSIP",)), trace("ami-queue-sip-call.txt")) == []
    assert replay(CallTracker(["2001"]), trace("ami-queue-sip-call.txt")) == []


def test_agent_busy_and_snapshot_follow_the_call() -> None:
    tracker = CallTracker(AGENTS)
    seen: list[tuple[str, bool, list[str]]] = []
    for msg in trace("ami-queue-sip-call.txt"):
        for c in tracker.handle(msg):
            seen.append((c.kind, tracker.agent_busy("1001"), [s.kind for s in tracker.snapshot()]))
    assert seen == [
        ("ringing", True, ["ringing"]),
        ("answered", True, ["answered"]),
        ("ended", True, []),  # the agent's channel is still up until its Hangup
    ]
    assert not tracker.agent_busy("1001")
    assert not tracker.agent_busy("1002")


def test_device_state_makes_an_agent_busy() -> None:
    tracker = CallTracker(AGENTS, ("PJSIP",))
    event = AmiMessage.build(
        [
            ("Event", "DeviceStateChange"),
            ("Privilege", "call,all"),
            ("Device", "PJSIP/1002"),
            ("State", "INUSE"),
        ]
    )
    tracker.handle(event)
    assert tracker.agent_busy("1002")
    tracker.set_device_states([])
    assert not tracker.agent_busy("1002")


# -- out of order, duplicates ------------------------------------------------------------


def _move(messages: list[AmiMessage], pick: str, before: str) -> list[AmiMessage]:
    """Move the first event named `pick` in front of the first named `before`."""
    out = list(messages)
    i = next(i for i, m in enumerate(out) if m.name == pick)
    item = out.pop(i)
    j = next(j for j, m in enumerate(out) if m.name == before)
    out.insert(j, item)
    return out


def test_dialbegin_before_agentcalled_still_one_ringing_with_the_queue() -> None:
    messages = _move(trace("ami-queue-sip-call.txt"), "DialBegin", "AgentCalled")
    messages = _move(messages, "DialBegin", "AgentCalled")  # the queue's own DialBegin
    assert [m.name for m in messages].index("AgentCalled") > 30
    assert replay(CallTracker(AGENTS), messages) == pop(**QUEUE_SIP)


def test_agentconnect_before_everything_else_opens_and_answers() -> None:
    messages = trace("ami-queue-sip-call.txt")
    connect = next(m for m in messages if m.name == "AgentConnect")
    reordered = [connect] + [m for m in messages if m is not connect]
    assert replay(CallTracker(AGENTS), reordered) == pop(**QUEUE_SIP)


def test_agent_hangup_before_agentcomplete_ends_once() -> None:
    messages = trace("ami-queue-sip-call.txt")
    hangup = next(m for m in messages if m.name == "Hangup" and m.get("Uniqueid") == "1795301086.2")
    messages = [m for m in messages if m is not hangup]
    i = next(i for i, m in enumerate(messages) if m.name == "AgentComplete")
    messages.insert(i, hangup)
    assert replay(CallTracker(AGENTS), messages) == pop(**QUEUE_SIP)


def test_late_duplicate_of_agentcalled_after_the_end_does_not_pop_again() -> None:
    messages = trace("ami-queue-timeout.txt")
    called = next(m for m in messages if m.name == "AgentCalled")
    assert (
        replay(CallTracker(AGENTS), [*messages, called, called])
        == EXPECTED["ami-queue-timeout.txt"]
    )


def test_duplicate_cdr_is_the_same_record_and_changes_nothing() -> None:
    messages = trace("ami-queue-sip-call.txt")
    cdr = next(m for m in messages if m.name == "Cdr")
    i = messages.index(cdr)
    with_dup = [*messages[: i + 1], cdr, *messages[i + 1 :]]
    assert replay(CallTracker(AGENTS), with_dup) == pop(**QUEUE_SIP)
    records = [parse_cdr(m) for m in with_dup if m.name == "Cdr"]
    assert len(records) == 3
    assert records[0] == records[1]
    assert records[0] is not None and records[1] is not None and records[2] is not None
    assert records[0].key == records[1].key != records[2].key


def _valid_sequences(changes: list[CallChange]) -> dict[tuple[str, str], list[str]]:
    per_pop: dict[tuple[str, str], list[str]] = {}
    for c in changes:
        per_pop.setdefault((c.call_id, c.agent), []).append(c.kind)
    return per_pop


ALL_STREAMS = [
    *(f"trace:{n}" for n in sorted(EXPECTED)),
    *(f"fixture:{p.name}" for p in sorted(FIXTURES.glob("*.txt"))),
]


def _stream(ref: str) -> list[AmiMessage]:
    kind, _, name = ref.partition(":")
    return trace(name) if kind == "trace" else fixture(name)


_NEXT = {
    "closed": {"ringing"},  # a queue may ring the same agent again on a new channel
    "ringing": {"answered", "ended"},
    "answered": {"ended"},
}


@settings(max_examples=150, deadline=None)
@given(data=st.data(), ref=st.sampled_from(ALL_STREAMS))
def test_any_order_or_duplication_keeps_pops_well_formed(data: st.DataObject, ref: str) -> None:
    """Whatever the order: each pop goes ringing -> (answered) -> ended, never repeats a
    step, and none survives the hangup of every channel.

    DeviceStateChange is left out: each one replaces the device's state, so shuffled, the
    last one read may rightly say INUSE (the recorded streams have them)."""
    messages = [m for m in _stream(ref) if m.name != "DeviceStateChange"]
    shuffled = data.draw(st.permutations(messages))
    dups = data.draw(st.lists(st.sampled_from(messages), max_size=20))
    stream = list(shuffled)
    for dup in dups:
        stream.insert(data.draw(st.integers(0, len(stream))), dup)
    tracker = CallTracker(AGENTS)
    changes = replay(tracker, stream)
    for key, kinds in _valid_sequences(changes).items():
        state = "closed"
        for kind in kinds:
            assert kind in _NEXT[state], (key, kinds)
            state = "closed" if kind == "ended" else kind
        assert state == "closed", (key, kinds)
    assert tracker.snapshot() == []
    assert not tracker.agent_busy("1001") and not tracker.agent_busy("1002")


# -- hostile caller names ------------------------------------------------------------------


def test_caller_name_with_invalid_utf8_is_decoded_leniently() -> None:
    raw = (
        (TRACES / "ami-queue-sip-call.txt")
        .read_bytes()
        .replace(b"CallerIDName: Bob Customer", b"CallerIDName: Bob \xff\xfe\xe2\x82 Customer")
    )
    changes = replay(CallTracker(AGENTS), parse_trace(raw))
    assert [c.kind for c in changes] == ["ringing", "answered", "ended"]
    assert {c.name for c in changes} == {"Bob \ufffd\ufffd\ufffd Customer"}
    assert changes[0].name.encode("utf-8")  # encodable: safe for JSON and WebSockets


def test_c_escaped_caller_name_is_unescaped() -> None:
    messages = rewrite(trace("ami-queue-sip-call.txt"), {"Bob Customer": 'O\\\'Brien \\"Bob\\"'})
    changes = replay(CallTracker(AGENTS), messages)
    assert changes[0].name == 'O\'Brien "Bob"'


def test_private_caller_has_empty_number() -> None:
    messages = rewrite(trace("ami-queue-sip-call.txt"), {"+34915550123": "<unknown>"})
    changes = replay(CallTracker(AGENTS), messages)
    assert [(c.kind, c.number, c.name) for c in changes] == [
        ("ringing", "", "Bob Customer"),
        ("answered", "", "Bob Customer"),
        ("ended", "", "Bob Customer"),
    ]


# -- customer id and click-to-dial numbers ---------------------------------------------


def _varset(uniqueid: str, linkedid: str, variable: str, value: str) -> AmiMessage:
    return AmiMessage.build(
        [
            ("Event", "VarSet"),
            ("Privilege", "dialplan,all"),
            ("Channel", "Local/300@queue-sip-00000000;2"),
            ("Uniqueid", uniqueid),
            ("Linkedid", linkedid),
            ("Variable", variable),
            ("Value", value),
        ]
    )


def test_customer_id_from_varset_on_any_channel_of_the_call() -> None:
    messages = trace("ami-queue-sip-call.txt")
    i = next(i for i, m in enumerate(messages) if m.name == "QueueCallerJoin")
    var = _varset("1795301086.1", "1795301086.0", "CENTRALITA_CUSTOMER_ID", "C-0042")
    changes = replay(CallTracker(AGENTS), [*messages[:i], var, *messages[i:]])
    assert changes == pop(**QUEUE_SIP, customer_id="C-0042")


def test_customer_id_set_while_ringing_reaches_the_next_changes() -> None:
    messages = trace("ami-queue-sip-call.txt")
    i = next(i for i, m in enumerate(messages) if m.get("DestChannel") == "SIP/1001-00000000")
    assert messages[i].name == "AgentCalled"
    i += 1  # the agent's phone rings from here on
    var = _varset("1795301086.1", "1795301086.0", "CENTRALITA_CUSTOMER_ID", "C-9")
    changes = replay(CallTracker(AGENTS), [*messages[:i], var, *messages[i:]])
    assert [c.customer_id for c in changes] == [None, "C-9", "C-9"]


def test_customer_id_from_manager_conf_channelvars() -> None:
    # channelvars=CENTRALITA_CUSTOMER_ID adds `ChanVariable:` to every channel block
    # (docs/asterisk-protocol.md#ami-events).
    messages = []
    for msg in trace("ami-queue-sip-call.txt"):
        if msg.name == "AgentCalled":
            headers = list(msg.headers)
            i = next(i for i, (n, _) in enumerate(headers) if n == "Linkedid")
            headers.insert(i + 1, ("ChanVariable", "CENTRALITA_CUSTOMER_ID=C-77"))
            msg = AmiMessage("event", tuple(headers))
        messages.append(msg)
    assert replay(CallTracker(AGENTS), messages) == pop(**QUEUE_SIP, customer_id="C-77")


def test_click_to_dial_number_from_centralita_dial_when_callerid_is_the_company() -> None:
    # Our Originate shows the company number (0777) to both phones and sets CENTRALITA_DIAL.
    messages = rewrite(trace("ami-click2dial.txt"), {"5550001": "0777"})
    i = next(i for i, m in enumerate(messages) if m.name == "DialBegin")
    var = _varset("1795301185.12", "1795301185.12", "CENTRALITA_DIAL", "+34600111222")
    changes = replay(CallTracker(AGENTS), [*messages[:i], var, *messages[i:]])
    assert changes == pop(**{**CLICK2DIAL, "number": "+34600111222"})


def test_click_to_dial_number_from_the_announced_originate() -> None:
    messages = rewrite(trace("ami-click2dial.txt"), {"5550001": "0777"})
    tracker = CallTracker(AGENTS)
    tracker.expect_originate("c2d-1", "1001", "+34600111222")
    assert tracker.agent_busy("1001")
    changes = replay(tracker, messages)
    assert changes == pop(**{**CLICK2DIAL, "number": "+34600111222"})
    tracker.forget_originate("c2d-1")
    assert not tracker.agent_busy("1001")


def test_agent_dialling_out_from_the_phone() -> None:
    agent = [
        ("Channel", "PJSIP/1002-00000040"),
        ("ChannelState", "4"),
        ("CallerIDNum", "1002"),
        ("CallerIDName", "Agent Two"),
        ("Context", "agents"),
        ("Exten", "0034911222333"),
        ("Uniqueid", "1800000300.40"),
        ("Linkedid", "1800000300.40"),
    ]
    trunk = [
        ("DestChannel", "PJSIP/trunk-00000041"),
        ("DestChannelState", "0"),
        ("DestUniqueid", "1800000300.41"),
        ("DestLinkedid", "1800000300.40"),
    ]
    head = [("Privilege", "call,all")]
    events = [
        AmiMessage.build([("Event", "DialBegin"), *head, *agent, *trunk]),
        AmiMessage.build([("Event", "DialEnd"), *head, *agent, *trunk, ("DialStatus", "ANSWER")]),
        AmiMessage.build([("Event", "Hangup"), *head, *trunk[:1], ("Uniqueid", "1800000300.41")]),
        AmiMessage.build([("Event", "Hangup"), *head, *agent]),
    ]
    out = {
        "call_id": "1800000300.40",
        "uniqueid": "1800000300.40",
        "direction": "out",
        "number": "0034911222333",
        "agent": "1002",
        "channel": "PJSIP/1002-00000040",
    }
    assert replay(CallTracker(AGENTS, ("PJSIP",)), events) == pop(**out)


# -- transfers and Local channels (synthetic streams in tests/fixtures/ami) ----------------

CAROL = {"call_id": "1800000000.10", "uniqueid": "1800000000.10", "number": "5551112222"}
CAROL |= {"name": "Carol Caller", "queue": "support-en", "customer_id": "C-4711"}
DAN = {"call_id": "1800000100.20", "uniqueid": "1800000100.20", "number": "5551113333"}
DAN |= {"name": "Dan Direct"}
CONSULT = {"call_id": "1800000100.22", "uniqueid": "1800000100.22", "number": "1001"}
CONSULT |= {"name": "Agent One", "agent": "1002", "channel": "PJSIP/1002-00000023"}


def test_blind_transfer_moves_the_pop() -> None:
    changes = replay(CallTracker(AGENTS, ("PJSIP",)), fixture("synthetic-blind-transfer.txt"))
    assert changes == [
        *pop(**CAROL, agent="1001", channel="PJSIP/1001-00000011"),
        *pop(**CAROL, agent="1002", channel="PJSIP/1002-00000012"),
    ]


def test_attended_transfer_moves_the_pop() -> None:
    a, b = "PJSIP/1001-00000021", "PJSIP/1002-00000023"
    changes = replay(CallTracker(AGENTS, ("PJSIP",)), fixture("synthetic-attended-transfer.txt"))
    assert changes == [
        change("ringing", **DAN, agent="1001", channel=a),
        change("answered", **DAN, agent="1001", channel=a),
        change("ringing", **CONSULT),  # the consultation call: agent 1001 rings 1002
        change("answered", **CONSULT),
        change("ended", **DAN, agent="1001", channel=a),  # AttendedTransfer: 1001 is out
        change("ended", **CONSULT),
        change("ringing", **DAN, agent="1002", channel=b),  # ... and 1002 has the customer
        change("answered", **DAN, agent="1002", channel=b),
        change("ended", **DAN, agent="1002", channel=b),
    ]


# Recorded on Asterisk 20.20.1 by the integration suite (tests/integration/test_transfers.py):
# the events the tracker reads (its handler table) and Cdr, from a queue call whose agent pressed
# features.conf's `##` or `*2` (then the new agent's extension) on the phone.
RECORDED = {"number": "+34600000001", "name": "Transfer Caller", "queue": "support-en"}
RECORDED_BLIND = RECORDED | {"call_id": "1795993897.0", "uniqueid": "1795993897.1"}
RECORDED_ATTENDED = RECORDED | {"call_id": "1795993904.4", "uniqueid": "1795993904.5"}
RECORDED_ATTENDED |= {"number": "+34600000002"}
REAL_AGENTS = ["1001", "1002", "1003", "1004"]


def test_a_recorded_blind_transfer_moves_the_pop() -> None:
    stream = fixture("recorded-blind-transfer-20.20.1-pjsip.txt")
    changes = replay(CallTracker(REAL_AGENTS, ("PJSIP",)), stream)
    assert changes == [
        *pop(**RECORDED_BLIND, agent="1001", channel="PJSIP/1001-00000000"),
        *pop(**RECORDED_BLIND, agent="1002", channel="PJSIP/1002-00000001"),
    ]


def test_a_recorded_attended_transfer_moves_the_pop() -> None:
    # Unlike synthetic-attended-transfer.txt, Asterisk gives the consultation call (the Local
    # channel bridge_basic.c requests for the transferer) the customer's Linkedid
    # (TransferTargetLinkedid), so the new agent's pop is the customer's from the consultation
    # on, and the transfer only ends the old agent's.
    a, b = "SIP/1003-00000002", "SIP/1001-00000003"
    stream = fixture("recorded-attended-transfer-20.20.1-sip.txt")
    transfer = next(m for m in stream if m.name == "AttendedTransfer")
    assert transfer.value("TransferTargetLinkedid") == RECORDED_ATTENDED["call_id"]
    changes = replay(CallTracker(REAL_AGENTS, ("SIP",)), stream)
    assert changes == [
        change("ringing", **RECORDED_ATTENDED, agent="1003", channel=a),
        change("answered", **RECORDED_ATTENDED, agent="1003", channel=a),
        change("ringing", **RECORDED_ATTENDED, agent="1001", channel=b),  # the consultation
        change("answered", **RECORDED_ATTENDED, agent="1001", channel=b),
        change("ended", **RECORDED_ATTENDED, agent="1003", channel=a),  # AttendedTransfer
        change("ended", **RECORDED_ATTENDED, agent="1001", channel=b),  # the caller hangs up
    ]


def test_attended_transfer_seen_only_through_bridges_moves_the_pop_too() -> None:
    a, b = "PJSIP/1001-00000021", "PJSIP/1002-00000023"
    stream = fixture("synthetic-attended-transfer-bridges-only.txt")
    assert not [m for m in stream if m.name == "AttendedTransfer"]
    changes = replay(CallTracker(AGENTS, ("PJSIP",)), stream)
    assert changes == [
        change("ringing", **DAN, agent="1001", channel=a),
        change("answered", **DAN, agent="1001", channel=a),
        change("ringing", **CONSULT),
        change("answered", **CONSULT),
        change("ended", **CONSULT),  # the customer entered 1002's bridge
        change("ringing", **DAN, agent="1002", channel=b),
        change("answered", **DAN, agent="1002", channel=b),
        change("ended", **DAN, agent="1001", channel=a),  # 1001's last channel hung up
        change("ended", **DAN, agent="1002", channel=b),
    ]


def test_local_channel_member_pops_once_and_survives_local_optimisation() -> None:
    hassan = {
        "call_id": "1800000200.30",
        "uniqueid": "1800000200.30",
        "number": "+212522000111",
        "name": "Hassan",
        "queue": "support-ar",
        "agent": "1001",
    }
    tracker = CallTracker(AGENTS, ("PJSIP",))
    changes: list[CallChange] = []
    causes: list[str] = []
    for msg in fixture("synthetic-queue-local-member.txt"):
        new = tracker.handle(msg)
        changes += new
        causes += [f"{msg.name} {msg.get('Channel') or msg.get('DestChannel')}"] * len(new)
    assert changes == [
        change("ringing", **hassan, channel="Local/1001@agents-00000031;1"),
        change("answered", **hassan, channel="PJSIP/1001-00000033"),
        change("ended", **hassan, channel="PJSIP/1001-00000033"),
    ]
    # Local optimisation hangs both halves up mid-call: only the phone's Hangup ends the pop.
    assert causes == [
        "AgentCalled PJSIP/trunk-00000030",
        "DialEnd Local/1001@agents-00000031;2",
        "Hangup PJSIP/1001-00000033",
    ]


# -- reconnect: resync from CoreShowChannels -----------------------------------------------


def _split_at(messages: list[AmiMessage], name: str) -> tuple[list[AmiMessage], list[AmiMessage]]:
    i = next(i for i, m in enumerate(messages) if m.name == name) + 1
    return messages[:i], messages[i:]


def _channels_after(messages: list[AmiMessage]) -> list[AmiMessage]:
    table = ChannelTable()
    for msg in messages:
        table.apply(msg)
    return table.core_show_channels("resync-1")


def test_reconnect_mid_call_keeps_the_pop_then_ends_it() -> None:
    messages = trace("ami-queue-sip-call.txt")
    before, after = _split_at(messages, "BridgeEnter")
    tracker = CallTracker(AGENTS)
    changes = replay(tracker, before)
    live = _channels_after(before)
    assert len(live) == 3  # both Local halves and SIP/1001-00000000
    assert tracker.resync(live) == []  # the call is still up: nothing to say
    changes += replay(tracker, after)
    assert changes == pop(**QUEUE_SIP)


def test_reconnect_after_the_call_vanished_ends_the_pop() -> None:
    messages = trace("ami-queue-sip-call.txt")
    before, _ = _split_at(messages, "AgentConnect")
    tracker = CallTracker(AGENTS)
    changes = replay(tracker, before)
    changes += tracker.resync(_channels_after(messages))  # the whole call ended meanwhile
    assert tracker.snapshot() == []
    assert not tracker.agent_busy("1001")
    assert changes == pop(**QUEUE_SIP)


def test_reconnect_while_ringing_answers_if_the_agent_answered_meanwhile() -> None:
    messages = trace("ami-queue-sip-call.txt")
    before, rest = _split_at(messages, "AgentCalled")
    lost, after = _split_at(rest, "BridgeEnter")
    lost, after = lost + after[:1], after[1:]  # lost up to both BridgeEnters
    tracker = CallTracker(AGENTS)
    changes = replay(tracker, before)
    assert [c.kind for c in changes] == ["ringing"]
    # The events of `lost` went with the connection; now the agent is Up and bridged.
    changes += tracker.resync(_channels_after(before + lost))
    assert [c.kind for c in changes] == ["ringing", "answered"]
    changes += replay(tracker, after)
    assert changes == pop(**QUEUE_SIP)


def test_call_that_started_during_the_outage_pops_after_reconnect() -> None:
    messages = trace("ami-queue-sip-call.txt")
    before, _ = _split_at(messages, "VarSet")  # well before the call reached the agent
    _, after_bridge = _split_at(messages, "BridgeEnter")
    tracker = CallTracker(AGENTS)
    assert replay(tracker, before) == []
    upto = messages[: len(messages) - len(after_bridge) + 1]  # both channels in the bridge
    changes = tracker.resync(_channels_after(upto))
    changes += replay(tracker, messages[len(upto) :])
    assert changes == pop(**QUEUE_SIP)


def test_click_to_dial_in_progress_is_found_after_reconnect() -> None:
    messages = trace("ami-click2dial.txt")
    before, after = _split_at(messages, "OriginateResponse")
    tracker = CallTracker(AGENTS)
    tracker.expect_originate("c2d-x", "1001", "5550001")
    changes = tracker.resync(_channels_after(before))
    tracker.forget_originate("c2d-x")
    changes += replay(tracker, after)
    assert changes == pop(**CLICK2DIAL)


def test_lone_agent_channel_in_the_dialplan_is_not_a_pop() -> None:
    lone = AmiMessage.build(
        [
            ("Event", "CoreShowChannel"),
            ("ActionID", "r"),
            ("Channel", "PJSIP/1001-00000050"),
            ("ChannelState", "6"),
            ("Uniqueid", "1800000400.50"),
            ("Linkedid", "1800000400.50"),
            ("Context", "agents"),
            ("Exten", "*97"),
            ("Application", "VoiceMailMain"),
        ]
    )
    tracker = CallTracker(AGENTS, ("PJSIP",))
    assert tracker.resync([lone]) == []
    assert tracker.agent_busy("1001")  # but the agent is busy: no click-to-dial now


def test_list_items_are_not_events_for_handle() -> None:
    tracker = CallTracker(AGENTS)
    items = _channels_after(trace("ami-queue-sip-call.txt")[:60])
    assert all(tracker.handle(m) == [] for m in items)
    assert tracker.snapshot() == []


def test_reset_forgets_everything() -> None:
    tracker = CallTracker(AGENTS)
    before, _ = _split_at(trace("ami-queue-sip-call.txt"), "AgentConnect")
    replay(tracker, before)
    assert tracker.snapshot()
    tracker.reset()
    assert tracker.snapshot() == []
    assert not tracker.agent_busy("1001")


# -- Cdr records -------------------------------------------------------------------------


def test_parse_cdr_fields_from_the_queue_trace() -> None:
    cdrs = [parse_cdr(m) for m in trace("ami-queue-sip-call.txt")]
    records = [c for c in cdrs if c is not None]
    assert len(records) == 2
    first = records[0]
    assert first.uniqueid == "1795301086.1"
    assert first.src == "+34915550123"
    assert first.dst == "300"
    assert first.dcontext == "queue-sip"
    assert first.clid == '"Bob Customer" <+34915550123>'
    assert first.channel == "Local/300@queue-sip-00000000;2"
    assert first.dstchannel == "SIP/1001-00000000"
    assert (first.lastapp, first.lastdata) == ("Queue", "support-sip,,,,10")
    assert first.start == datetime(2026, 11, 21, 22, 44, 46)
    assert first.answer == datetime(2026, 11, 21, 22, 44, 46)
    assert first.end == datetime(2026, 11, 21, 22, 44, 52)
    assert (first.duration, first.billsec) == (6, 6)
    assert (first.disposition, first.amaflags) == ("ANSWERED", "DOCUMENTATION")
    assert first.userfield == ""
    assert first.extra == ()
    assert first.linkedid == ""  # not sent unless cdr_manager.conf [mappings] adds it


def test_cdr_unique_id_is_not_unique_but_key_is() -> None:
    records = [c for c in map(parse_cdr, trace("ami-queue-timeout.txt")) if c is not None]
    by_uid = [r for r in records if r.uniqueid == "1795301710.17"]
    assert [r.disposition for r in by_uid] == ["NO ANSWER", "ANSWERED"]
    assert len({r.key for r in records}) == len(records) == 3


def test_unanswered_cdr_has_empty_answer_time_and_extra_fields() -> None:
    msg = AmiMessage.build(
        [
            ("Event", "Cdr"),
            ("Privilege", "cdr,all"),
            ("UniqueID", "1.2"),
            ("StartTime", "2026-11-21 22:44:46"),
            ("AnswerTime", ""),
            ("EndTime", "2026-11-21 22:44:58"),
            ("Duration", "12"),
            ("BillableSeconds", "0"),
            ("Disposition", "NO ANSWER"),
            ("LinkedID", "1.1"),
        ]
    )
    record = parse_cdr(msg)
    assert record is not None
    assert (record.answer, record.duration, record.billsec) == (None, 12, 0)
    assert record.linkedid == "1.1"
    assert parse_cdr(trace("ami-queue-sip-call.txt")[5]) is None


def test_load_trace_gives_only_events() -> None:
    events = load_trace(TRACES / "ami-click2dial.txt")
    assert events[0].name == "FullyBooted"
    assert all(m.kind == "event" for m in events)


def test_the_pop_table_counts_the_open_pops_of_each_call() -> None:
    table = PopTable()
    pops = {
        (call, agent): Pop(call, agent, call, "in", "+34915550123", "", None, None, "PJSIP/1")
        for call, agent in [("1.1", "1001"), ("1.1", "1002"), ("2.1", "1001")]
    }
    for key, pop in pops.items():
        table[key] = pop
    table[("1.1", "1001")] = pops[("1.1", "1001")]  # the same pop again counts once
    assert table.has_call("1.1") and table.has_call("2.1") and not table.has_call("3.1")
    assert table.pop(("1.1", "1001")) is pops[("1.1", "1001")]
    assert table.has_call("1.1")  # 1002's pop is still open
    table.pop(("1.1", "1002"))
    assert not table.has_call("1.1") and table.has_call("2.1")
    assert [p.agent for p in table.values()] == ["1001"]
    table.clear()
    assert not table.has_call("2.1") and list(table.items()) == []


def test_set_agents_keeps_the_calls_tracked_and_the_driver_prefixes() -> None:
    messages = trace("ami-queue-sip-call.txt")
    tracker = CallTracker(["1002"], ("SIP",))
    assert replay(tracker, messages) == []  # 1001 is not an agent yet
    tracker.set_agents(["1001"])
    assert tracker.agents == {"1001"}
    # A new call of 1001 pops, its SIP channel still read as an agent's.
    assert replay(tracker, rewrite(messages, {"1795301086": "1795309999"})) == pop(
        **{
            **QUEUE_SIP,
            "call_id": "1795309999.0",
            "uniqueid": "1795309999.1",
        }
    )
    # A call under way is kept: it goes on to its end after the agents change.
    tracker = CallTracker(AGENTS, ("SIP",))
    ringing = 1 + next(i for i, m in enumerate(messages) if m.name == "AgentCalled")
    assert [c.kind for c in replay(tracker, messages[:ringing])] == ["ringing"]
    tracker.set_agents(["1003"])
    assert [s.kind for s in tracker.snapshot()] == ["ringing"]
    assert replay(tracker, messages[ringing:]) == pop(**QUEUE_SIP)[1:]
    assert tracker.agent_of_channel("SIP/1001-00000009") is None
    assert tracker.agent_of_channel("SIP/1003-00000009") == "1003"
