"""The real AmiListener against the fake AMI server, over TCP on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ami.calls import CallChange
from ami.cdr import CallRecord
from ami.client import AmiListener, AmiNotConnected, AmiTimeout
from ami.originate import OriginateRefused, originate
from ami.protocol import AmiMessage
from ami.testing import FakeAmiServer, event_classes, load_trace
from ami.tracker import CallTracker
from dialplan.names import OUTBOUND_CONTEXT

TRACES = Path(__file__).resolve().parent / "fixtures" / "asterisk-traces"
QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
SECRET = "s3cret-for-tests"


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async def loop() -> None:
        while not predicate():  # noqa: ASYNC110 - polls any predicate, bounded below
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout_s)


class Recorder:
    def __init__(self) -> None:
        self.changes: list[CallChange] = []
        self.cdrs: list[CallRecord] = []

    async def on_change(self, change: CallChange) -> None:
        self.changes.append(change)

    async def on_cdr(self, cdr: CallRecord) -> None:
        self.cdrs.append(cdr)

    def kinds(self) -> list[str]:
        return [c.kind for c in self.changes]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmiServer]:
    async with FakeAmiServer(secret=SECRET, login_failure_delay=0.05) as server:
        yield server


def make_listener(
    fake: FakeAmiServer, recorder: Recorder, *, secret: str = SECRET, **kw: float
) -> AmiListener:
    options: dict[str, float] = {
        "ping_s": 30.0,
        "ping_timeout_s": 1.0,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.2,
        "action_timeout_s": 2.0,
    }
    options.update(kw)
    return AmiListener(
        fake.host,
        fake.port,
        "centralita",
        secret,
        tracker=CallTracker(["1001", "1002"], ("PJSIP", "SIP")),
        on_change=recorder.on_change,
        on_cdr=recorder.on_cdr,
        rng=random.Random(7),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def listener(fake: FakeAmiServer, recorder: Recorder) -> AsyncIterator[AmiListener]:
    lst = make_listener(fake, recorder)
    await lst.start()
    await lst.wait_connected()
    yield lst
    await lst.stop()


def action_headers(msg: AmiMessage) -> list[tuple[str, str]]:
    return [(n, v) for n, v in msg.headers if n != "ActionID"]


async def test_login_with_event_mask_then_state_rebuild(
    fake: FakeAmiServer, listener: AmiListener
) -> None:
    assert listener.connected
    assert listener.last_error is None
    assert fake.sessions == 1
    names = [a.name for a in fake.actions]
    assert names == ["Challenge", "Login", "DeviceStateList", "CoreShowChannels"]
    challenge, login = fake.actions[:2]
    assert action_headers(challenge) == [("Action", "Challenge"), ("AuthType", "MD5")]
    # MD5 challenge login (issue 10, finding 14): the secret itself never crosses the wire.
    key = login.value("Key")
    assert action_headers(login) == [
        ("Action", "Login"),
        ("Username", "centralita"),
        ("AuthType", "MD5"),
        ("Key", key),
        ("Events", "call,agent,dialplan,cdr"),
    ]
    assert len(key) == 32 and SECRET not in str(fake.actions)
    assert fake.logins == [("centralita", "md5")]
    assert login.action_id  # every action carries an ActionID for matching


async def test_replayed_queue_call_reaches_the_callbacks(
    fake: FakeAmiServer, listener: AmiListener, recorder: Recorder
) -> None:
    await fake.replay_trace(QUEUE_TRACE)
    await wait_until(lambda: len(recorder.changes) == 3 and len(recorder.cdrs) == 2)
    await listener.drain()
    assert recorder.kinds() == ["ringing", "answered", "ended"]
    first = recorder.changes[0]
    assert (first.agent, first.number, first.name, first.queue, first.call_id) == (
        "1001",
        "+34915550123",
        "Bob Customer",
        "support-sip",
        "1795301086.0",
    )
    assert [c.uniqueid for c in recorder.cdrs] == ["1795301086.1", "1795301086.0"]
    # The server filtered on our mask: no security/system/reporting events reached us.
    allowed = {"call", "agent", "dialplan", "cdr"}
    expected = [m for m in load_trace(QUEUE_TRACE) if event_classes(m) <= allowed]
    assert listener.stats.events == len(expected) < len(load_trace(QUEUE_TRACE))


async def test_duplicate_cdr_is_delivered_once(
    fake: FakeAmiServer, listener: AmiListener, recorder: Recorder
) -> None:
    cdr = next(m for m in load_trace(QUEUE_TRACE) if m.name == "Cdr")
    await fake.push_events([cdr, cdr])
    await wait_until(lambda: listener.stats.duplicate_cdrs == 1)
    await listener.drain()
    assert len(recorder.cdrs) == 1


async def test_an_unreadable_cdr_is_logged_and_the_next_delivered(
    fake: FakeAmiServer,
    listener: AmiListener,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = next(m for m in load_trace(QUEUE_TRACE) if m.name == "Cdr")
    bad = AmiMessage.build([("Event", "Cdr"), ("UniqueID", "1.2"), ("EndTime", "never")])
    with caplog.at_level(logging.WARNING, logger="ami.client"):
        await fake.push_events([bad, good])
        await wait_until(lambda: listener.stats.cdrs == 1)
        await listener.drain()
    assert listener.stats.unreadable_cdrs == 1
    assert [c.uniqueid for c in recorder.cdrs] == [good.value("UniqueID")]
    assert any("1.2" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_dropped_connection_reconnects_and_ends_the_vanished_pop(
    fake: FakeAmiServer, listener: AmiListener, recorder: Recorder
) -> None:
    events = load_trace(QUEUE_TRACE)
    i = next(i for i, m in enumerate(events) if m.name == "AgentConnect") + 1
    await fake.replay_trace(events[:i])
    await wait_until(lambda: recorder.kinds() == ["ringing", "answered"])
    await fake.drop_connections()
    # The call ends while we are away: nobody is connected to hear the Hangups.
    assert await fake.replay_trace(events[i:]) == 0
    assert len(fake.channels) == 0
    await wait_until(lambda: listener.stats.connects == 2 and listener.connected)
    await listener.wait_connected()
    await wait_until(lambda: len(recorder.changes) == 3)
    await listener.drain()
    assert recorder.kinds() == ["ringing", "answered", "ended"]
    assert recorder.changes[2] == dataclasses.replace(recorder.changes[0], kind="ended")
    assert listener.tracker.snapshot() == []
    assert len(fake.actions_named("CoreShowChannels")) == 2


async def test_reconnect_keeps_a_pop_whose_call_is_still_up(
    fake: FakeAmiServer, listener: AmiListener, recorder: Recorder
) -> None:
    events = load_trace(QUEUE_TRACE)
    i = next(i for i, m in enumerate(events) if m.name == "AgentConnect") + 1
    await fake.replay_trace(events[:i])
    await wait_until(lambda: recorder.kinds() == ["ringing", "answered"])
    await fake.drop_connections()
    await wait_until(lambda: listener.stats.connects == 2)
    await listener.wait_connected()
    assert len(fake.channels) == 3  # CoreShowChannels listed the live call
    await listener.drain()
    assert recorder.kinds() == ["ringing", "answered"]  # no ended, no second ringing
    assert [c.kind for c in listener.tracker.snapshot()] == ["answered"]
    await fake.replay_trace(events[i:])
    await wait_until(lambda: len(recorder.changes) == 3)
    assert recorder.kinds() == ["ringing", "answered", "ended"]


async def test_missing_pong_counts_as_dead_and_reconnects(
    fake: FakeAmiServer, recorder: Recorder
) -> None:
    lst = make_listener(fake, recorder, ping_s=0.05, ping_timeout_s=0.1)
    await lst.start()
    try:
        await lst.wait_connected()
        await wait_until(lambda: len(fake.actions_named("Ping")) >= 2)  # Pongs come back
        assert lst.stats.ping_failures == 0
        assert fake.connections == 1
        fake.answer_ping = False
        await wait_until(lambda: lst.stats.ping_failures >= 1 and fake.connections >= 2)
        fake.answer_ping = True
        await wait_until(lambda: lst.connected)
        assert lst.stats.connects >= 2
    finally:
        await lst.stop()


async def test_a_late_pong_behind_a_stream_of_events_keeps_the_link(
    fake: FakeAmiServer, recorder: Recorder
) -> None:
    # Asterisk answers Ping after what it has queued: a reader that is behind sees the Pong
    # late. Events still arriving mean the link is alive, and dropping it would lose them.
    lst = make_listener(fake, recorder, ping_s=0.05, ping_timeout_s=0.1)
    await lst.start()
    try:
        await lst.wait_connected()
        fake.answer_ping = False
        first = len(fake.actions_named("Ping"))
        state = [
            ("Event", "DeviceStateChange"),
            ("Privilege", "call,all"),
            ("Device", "PJSIP/1001"),
            ("State", "INUSE"),
        ]
        for _ in range(1000):
            if len(fake.actions_named("Ping")) >= first + 4:  # several left unanswered
                break
            await fake.push_events([state])
            await asyncio.sleep(0.01)
        assert len(fake.actions_named("Ping")) >= first + 4
        assert lst.stats.ping_failures == 0
        assert fake.connections == 1 and lst.connected
    finally:
        await lst.stop()


async def test_wrong_secret_is_reported_and_retried(
    fake: FakeAmiServer, recorder: Recorder
) -> None:
    lst = make_listener(fake, recorder, secret="wrong")
    await lst.start()
    try:
        await wait_until(lambda: len(fake.actions_named("Login")) >= 2)
        assert not lst.connected
        assert lst.last_error == "login refused: Authentication failed"
        assert fake.sessions == 0
        with pytest.raises(AmiNotConnected, match="Authentication failed"):
            await lst.action("Ping")
        with pytest.raises(AmiTimeout):
            await lst.wait_connected(timeout_s=0.1)
    finally:
        await lst.stop()


async def test_start_returns_at_once_and_connects_when_asterisk_appears(
    recorder: Recorder,
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there yet
    lst = AmiListener(
        "127.0.0.1",
        port,
        "centralita",
        SECRET,
        tracker=CallTracker(["1001"]),
        on_change=recorder.on_change,
        backoff_min_s=0.02,
        backoff_max_s=0.1,
    )
    await lst.start()
    try:
        assert not lst.connected
        await wait_until(lambda: lst.stats.attempts >= 2)
        assert lst.last_error is not None and "Error" in lst.last_error
        with pytest.raises(AmiNotConnected):
            await lst.action("Ping")
        async with FakeAmiServer(secret=SECRET, port=port) as server:
            await lst.wait_connected()
            assert server.sessions == 1
            reply = await lst.action("Ping")
            assert reply.is_success and reply.get("Ping") == "Pong"
    finally:
        await lst.stop()


async def test_stop_logs_off_and_cancels_cleanly(fake: FakeAmiServer, recorder: Recorder) -> None:
    lst = make_listener(fake, recorder)
    await lst.start()
    await lst.wait_connected()
    await lst.stop()
    assert not lst.connected
    assert fake.actions[-1].name == "Logoff"
    await wait_until(lambda: fake.sessions == 0)
    await asyncio.sleep(0.3)  # several backoff periods: it must not come back
    assert fake.connections == 1


async def test_action_matches_by_action_id_and_is_bounded(
    fake: FakeAmiServer, listener: AmiListener
) -> None:
    fake.commands["core show version"] = ["Asterisk 20.20.1 built by lab"]
    replies = await asyncio.gather(
        listener.action("Command", {"Command": "core show version"}),
        listener.action("Command", {"Command": "no such thing"}),
        listener.action("Ping"),
    )
    assert replies[0].is_success
    assert replies[0].get_all("Output") == ["Asterisk 20.20.1 built by lab"]
    assert not replies[1].is_success
    assert replies[1].value("Output").startswith("No such command 'no such thing'")
    assert replies[2].get("Ping") == "Pong"
    fake.answer_ping = False
    with pytest.raises(AmiTimeout, match="Ping"):
        await listener.action("Ping", timeout_s=0.1)


async def test_list_action_collects_items(fake: FakeAmiServer, listener: AmiListener) -> None:
    await fake.replay_trace(load_trace(QUEUE_TRACE)[:40])
    ack, items = await listener.list_action("CoreShowChannels")
    assert ack.get("EventList") == "start"
    assert [i.get("Channel") for i in items] == [
        "Local/300@queue-sip-00000000;1",
        "Local/300@queue-sip-00000000;2",
        "SIP/1001-00000000",
    ]
    assert items[1].get("Application") == "Queue"


async def test_a_failing_callback_does_not_stop_the_listener(fake: FakeAmiServer) -> None:
    seen: list[str] = []

    async def flaky(change: CallChange) -> None:
        seen.append(change.kind)
        if change.kind == "ringing":
            raise RuntimeError("the web app is having a bad day")

    lst = AmiListener(
        fake.host,
        fake.port,
        "centralita",
        SECRET,
        tracker=CallTracker(["1001"]),
        on_change=flaky,
    )
    await lst.start()
    try:
        await lst.wait_connected()
        await fake.replay_trace(QUEUE_TRACE)
        await wait_until(lambda: len(seen) == 3)
        assert seen == ["ringing", "answered", "ended"]
        assert lst.connected
    finally:
        await lst.stop()


# -- click-to-dial -----------------------------------------------------------------------


async def test_originate_is_well_formed_and_matched_by_action_id(
    fake: FakeAmiServer, listener: AmiListener, recorder: Recorder
) -> None:
    decoys: list[AmiMessage] = []

    def decoy(action: AmiMessage) -> list[list[tuple[str, str]]]:
        # Someone else's OriginateResponse arrives first: it must not be taken for ours.
        event = [
            ("Event", "OriginateResponse"),
            ("Privilege", "call,all"),
            ("ActionID", "someone-else"),
            ("Response", "Failure"),
            ("Channel", "PJSIP/1002"),
            ("Context", "x"),
            ("Exten", "1"),
            ("Reason", "5"),
            ("Uniqueid", "<unknown>"),
            ("CallerIDNum", "<unknown>"),
            ("CallerIDName", "<unknown>"),
        ]
        decoys.append(action)
        return [event]

    fake.on_originate = decoy
    result = await originate(listener, "1001", "+34600111222", device="PJSIP/1001", callerid="0777")
    sent = fake.actions_named("Originate")
    assert len(sent) == 1 and decoys == sent
    assert sent[0].headers == (
        ("Action", "Originate"),
        ("ActionID", result.action_id),
        ("Channel", "PJSIP/1001"),
        ("Context", OUTBOUND_CONTEXT),
        ("Exten", "+34600111222"),
        ("Priority", "1"),
        ("Timeout", "30000"),
        ("CallerID", "<0777>"),
        ("Async", "true"),
        ("Variable", "CENTRALITA_DIAL=+34600111222"),
    )
    assert result.action_id.startswith("c2d-")
    assert result.success
    assert (result.response, result.reason, result.reason_text) == ("Success", 4, "answered")
    assert result.channel.startswith("PJSIP/1001-")
    assert not listener.tracker.agent_busy("1001")  # nothing is ringing in this fake


async def test_originate_failure_reason_is_reported(
    fake: FakeAmiServer, listener: AmiListener
) -> None:
    fake.originate_result = ("Failure", 5)
    result = await originate(
        listener, "1002", "600", device="SIP/1002", callerid="0777", private=True
    )
    assert not result.success
    assert (result.response, result.reason, result.reason_text) == ("Failure", 5, "busy")
    sent = fake.actions_named("Originate")[0]
    assert sent.get("CallerID") == '"Anonymous" <0777>'
    assert sent.get_all("Variable") == [
        "CENTRALITA_DIAL=600",
        "CENTRALITA_PRIVATE=1",
        "CALLERID(pres)=prohib",
    ]


async def test_originate_refused_by_asterisk(fake: FakeAmiServer, listener: AmiListener) -> None:
    fake.originate_error = "Extension does not exist."
    result = await originate(listener, "1001", "600", device="PJSIP/1001", callerid="0777")
    assert (result.success, result.response, result.reason) == (False, "Error", None)
    assert result.message == "Extension does not exist."
    assert len(fake.actions_named("Originate")) == 1
    assert not listener.tracker.agent_busy("1001")


@pytest.mark.parametrize("device", ["Bogus/", "PJSIP", "PJSIP/1001&PJSIP/1002", "PJSIP/1,2"])
async def test_bad_device_is_refused_before_sending(
    fake: FakeAmiServer, listener: AmiListener, device: str
) -> None:
    with pytest.raises(ValueError, match="not a device"):
        await originate(listener, "1001", "600", device=device, callerid="0777")
    assert fake.actions_named("Originate") == []


async def test_originate_times_out_without_originate_response(
    fake: FakeAmiServer, listener: AmiListener
) -> None:
    fake.originate_delay = 30.0
    result = await originate(
        listener,
        "1001",
        "600",
        device="PJSIP/1001",
        callerid="0777",
        response_timeout_s=0.1,
    )
    assert (result.success, result.response) == (False, "Timeout")
    assert not listener.tracker.agent_busy("1001")


@pytest.mark.parametrize(
    "number",
    ["555\r\nAction: Command", "555\n", "555\r", "5550001\r\nVariable: X=1", "12,34", ""],
)
async def test_dial_number_with_cr_lf_is_refused_before_anything_is_sent(
    fake: FakeAmiServer, listener: AmiListener, number: str
) -> None:
    before = list(fake.actions)
    with pytest.raises(ValueError):
        await originate(listener, "1001", number, device="PJSIP/1001", callerid="0777")
    with pytest.raises(ValueError):
        await listener.action("Originate", [("Channel", "PJSIP/1001"), ("Exten", number + "\n")])
    await listener.action("Ping")  # a round trip: anything sent before it has arrived
    assert [a.name for a in fake.actions[len(before) :]] == ["Ping"]
    assert not listener.tracker.agent_busy("1001")


async def test_originate_refused_while_the_agent_is_on_a_call(
    fake: FakeAmiServer, listener: AmiListener, recorder: Recorder
) -> None:
    events = load_trace(QUEUE_TRACE)
    i = next(i for i, m in enumerate(events) if m.name == "AgentConnect") + 1
    await fake.replay_trace(events[:i])
    await wait_until(lambda: recorder.kinds() == ["ringing", "answered"])
    with pytest.raises(OriginateRefused, match="already on a call"):
        await originate(listener, "1001", "600", device="SIP/1001", callerid="0777")
    assert fake.actions_named("Originate") == []
    await fake.replay_trace(events[i:])
    await wait_until(lambda: not listener.tracker.agent_busy("1001"))
    result = await originate(listener, "1001", "600", device="SIP/1001", callerid="0777")
    assert result.success


async def test_two_quick_clicks_place_one_call(fake: FakeAmiServer, listener: AmiListener) -> None:
    first = asyncio.create_task(
        originate(listener, "1001", "600", device="PJSIP/1001", callerid="0777")
    )
    await asyncio.sleep(0)
    with pytest.raises(OriginateRefused):
        await originate(listener, "1001", "601", device="PJSIP/1001", callerid="0777")
    assert (await first).success
    assert [a.get("Exten") for a in fake.actions_named("Originate")] == ["600"]


async def test_originate_refused_when_not_connected(recorder: Recorder) -> None:
    lst = AmiListener("127.0.0.1", 9, "centralita", SECRET, tracker=CallTracker(["1001"]))
    with pytest.raises(OriginateRefused, match="not connected"):
        await originate(lst, "1001", "600", device="PJSIP/1001", callerid="0777")


def test_backoff_is_capped_exponential_with_jitter() -> None:
    lst = AmiListener(
        "127.0.0.1",
        1,
        "u",
        "s",
        tracker=CallTracker([]),
        backoff_min_s=0.5,
        backoff_max_s=30.0,
        rng=random.Random(1),
    )
    for failures, nominal in [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (60, 30.0)]:
        delays = [lst.backoff_delay(failures) for _ in range(50)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert len(set(delays)) > 1  # jittered


async def test_relist_asks_the_resync_lists_again(
    fake: FakeAmiServer, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queues.add_queue("support-en", [("PJSIP/1001", "Amira Haddad")])
    lists: list[list[str]] = []

    def queue_status(items: list[AmiMessage]) -> None:
        lists.append([f"{i.name} {i.value('Queue')}" for i in items])

    lst = make_listener(fake, recorder)
    # A list this Asterisk refuses is logged, as at login, and the others still asked.
    lst.resync = (("NoSuchList", lambda items: None), ("QueueStatus", queue_status))
    await lst.start()
    try:
        await lst.wait_connected()
        assert lists == [["QueueParams support-en", "QueueMember support-en"]]
        fake.queues.add_queue("sales", [])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ami.client"):
            await lst.relist()
        assert lists[1] == [
            "QueueParams support-en",
            "QueueMember support-en",
            "QueueParams sales",
        ]
        assert [r.getMessage().split(":")[0] for r in caplog.records] == ["AMI NoSuchList refused"]
        assert [len(fake.actions_named(n)) for n in ("QueueStatus", "CoreShowChannels")] == [2, 1]
        # The link goes on: events after the lists still reach the tracker.
        await fake.replay_trace(load_trace(QUEUE_TRACE))
        await wait_until(lambda: recorder.kinds() == ["ringing", "answered", "ended"])
        assert fake.sessions == 1
    finally:
        await lst.stop()
    # Not logged in: nothing is asked (the next login asks for every list).
    await lst.relist()
    assert len(lists) == 2
