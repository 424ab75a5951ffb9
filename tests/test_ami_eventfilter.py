"""manager.conf's eventfilter: as main/manager.c applies it (ami.eventfilter), as rendered for
Centralita's runtime user (every event the app reads still arrives, the rest does not), and
as the fake AMI applies it over a real socket."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from ami.cdr import parse_cdr
from ami.client import AmiListener
from ami.eventfilter import EventFilter, EventFilterError, manager_conf_filter, parse_filter
from ami.protocol import AmiMessage
from ami.testing import FakeAmiServer, load_trace
from ami.tracker import CallTracker
from centralita import queuelog
from centralita.agentstate import MEMBER_EVENTS
from centralita.cmd_render import render_files
from centralita.settings import demo_text, parse_settings
from centralita.wallboard import CALL_EVENTS
from dialplan.names import AMI_EVENTS, CUSTOMER_ID_VAR, DEVICE_STATE_EVENT

TRACE = Path(__file__).resolve().parent / "fixtures" / "asterisk-traces" / "ami-queue-sip-call.txt"


def event(name: str, **headers: str) -> AmiMessage:
    return AmiMessage.build([("Event", name), ("Privilege", "call,all"), *headers.items()])


def varset(variable: str) -> AmiMessage:
    return AmiMessage.build(
        [
            ("Event", "VarSet"),
            ("Privilege", "dialplan,all"),
            ("Channel", "PJSIP/1001-00000001"),
            ("Uniqueid", "1.1"),
            ("Variable", variable),
            ("Value", "x"),
        ]
    )


def rendered_manager_conf() -> str:
    text = demo_text()
    return render_files(parse_settings(text, "centralita.toml", Path("site"), None))["manager.conf"]


# ----------------------------------------------------------------------- manager.c's semantics


def test_filters_as_manager_c_parses_and_matches_them() -> None:
    # The cases of main/manager.c's own eventfilter tests (parsing_filter_tests).
    by_name = parse_filter("eventfilter(name(VarSet),method(none))", "")
    assert by_name.matches(varset("A"), lambda: "") and not by_name.exclude
    starts = parse_filter(
        "eventfilter(action(include),name(VarSet),header(Channel),method(starts_with))", "PJSIP/1"
    )
    assert starts.header == "Channel:"
    assert EventFilter([starts]).passes(varset("A"))
    assert not EventFilter([starts]).passes(event("VarSet", Channel="SIP/1"))
    legacy = parse_filter("eventfilter", "!Variable: CENTRAL.*")
    assert legacy.exclude and legacy.method == "regex"
    exact = parse_filter("eventfilter(name(VarSet),header(Variable),method(exact))", "!ZZZ")
    assert exact.exclude  # a leading ! excludes an advanced filter too
    for criteria, pattern in [
        ("eventfilter(action(inlude))", ""),
        ("eventfilter(nnnn(yyy))", "XXX"),
        ("eventfilter(name(yyy),header(VarSet),method(coains))", "XXX"),
        ("eventfilter", ""),
        ("eventfilter()", "XXX"),
        ("eventfilter", "XX[X"),
        ("eventfilter(name(VarSet),method(none))", "XXX"),  # none with a pattern
        ("eventfilter(name(VarSet),method(exact))", ""),  # a method without one
    ]:
        with pytest.raises(EventFilterError):
            parse_filter(criteria, pattern)


def test_include_and_exclude_filters_combine_as_should_send_event() -> None:
    include = parse_filter("eventfilter(name(Hangup))", "")
    exclude = parse_filter(
        "eventfilter(action(exclude),header(Channel),method(contains))", "Local/"
    )
    hangup, local = event("Hangup", Channel="PJSIP/1"), event("Hangup", Channel="Local/1@x")
    other = event("Newexten", Channel="PJSIP/1")
    assert all(EventFilter().passes(m) for m in (hangup, local, other))  # no filter: all
    assert [EventFilter([include]).passes(m) for m in (hangup, local, other)] == [1, 1, 0]
    assert [EventFilter([exclude]).passes(m) for m in (hangup, local, other)] == [1, 0, 1]
    both = EventFilter([include, exclude])
    assert [both.passes(m) for m in (hangup, local, other)] == [1, 0, 0]


# ----------------------------------------------------------------------- the rendered filter


def test_every_event_the_app_reads_is_in_the_rendered_filter() -> None:
    tracker = CallTracker(["1001"], ("PJSIP",))
    read = (
        set(tracker._handlers)
        | MEMBER_EVENTS
        | CALL_EVENTS
        | queuelog.CALL_EVENTS
        | queuelog.MEMBER_EVENTS
        | {"Cdr", "OriginateResponse"}
    )
    assert read == AMI_EVENTS | {"VarSet"}
    runtime = manager_conf_filter(rendered_manager_conf(), "centralita")
    assert runtime and not runtime.excludes
    for name in sorted(AMI_EVENTS):
        assert runtime.passes(event(name, Channel="PJSIP/1001-00000001", Device="PJSIP/1001")), name
    # Device states: those of phones only (the demo's driver is PJSIP), not app_queue's
    # Queue: devices nor Local channels, which nothing reads.
    state = DEVICE_STATE_EVENT
    assert runtime.passes(event(state, Device="PJSIP/1001", State="INUSE"))
    assert runtime.passes(event(state, Device="PJSIP/9001", State="NOT_INUSE"))  # a supervisor
    for device in ("Queue:support-en", "Queue:support-en_avail", "Local/1001@agents", "SIP/1"):
        assert not runtime.passes(event(state, Device=device, State="INUSE")), device
    assert runtime.passes(varset(CUSTOMER_ID_VAR))
    assert runtime.passes(varset("CENTRALITA_ROUTE"))
    for dropped in (varset("BRIDGEPEER"), varset("X_CENTRALITA_Y"), event("Newexten")):
        assert not runtime.passes(dropped)
    # The reload user asks for no events and has no filter.
    assert not manager_conf_filter(rendered_manager_conf(), "centralita-reload")


def test_the_rendered_filter_keeps_what_the_tracker_uses_of_a_queue_call() -> None:
    runtime = manager_conf_filter(rendered_manager_conf(), "centralita")
    events = load_trace(TRACE)
    kept = [m for m in events if runtime.passes(m)]
    assert {m.name for m in events} - {m.name for m in kept} >= {"Newexten", "VarSet"}
    assert len(kept) < len(events) // 2 + 1
    # The same pops and call records from the kept events as from all of them.
    for stream in (events, kept):
        tracker = CallTracker(["1001"], ("SIP",))
        changes = [(c.kind, c.agent, c.call_id) for m in stream for c in tracker.handle(m)]
        cdrs = [c.uniqueid for m in stream if m.name == "Cdr" and (c := parse_cdr(m))]
        assert changes == [
            ("ringing", "1001", "1795301086.0"),
            ("answered", "1001", "1795301086.0"),
            ("ended", "1001", "1795301086.0"),
        ]
        assert cdrs == ["1795301086.1", "1795301086.0"]


async def test_the_fake_ami_applies_the_filter_over_the_socket() -> None:
    runtime = manager_conf_filter(rendered_manager_conf(), "centralita")
    async with FakeAmiServer(secret="s3cret", event_filter=runtime) as fake:
        seen: list[AmiMessage] = []
        listener = AmiListener(
            fake.host,
            fake.port,
            "centralita",
            "s3cret",
            tracker=CallTracker(["1001"], ("PJSIP",)),
            on_event=seen.append,
            rng=random.Random(1),
        )
        await listener.start()
        try:
            await listener.wait_connected()
            sent = await fake.push_events(
                [varset("BRIDGEPEER"), varset(CUSTOMER_ID_VAR), event("Newexten")]
            )
            encoded = fake.encode_events([event("Newstate"), event("Hangup"), event("Newexten")])
            sent += await fake.push_encoded(encoded, 1795301086.5)
            for _ in range(500):
                if len(seen) >= 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            await listener.stop()
    assert sent == 2
    assert [(m.name, m.value("Variable")) for m in seen] == [
        ("VarSet", CUSTOMER_ID_VAR),
        ("Hangup", ""),
    ]
    # Stamped after Privilege, as timestampevents does (__manager_event_sessions_va).
    assert seen[1].headers[:3] == (
        ("Event", "Hangup"),
        ("Privilege", "call,all"),
        ("Timestamp", "1795301086.500000"),
    )
