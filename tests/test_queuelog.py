"""The queue-event log (centralita/queuelog.py): AMI queue events replayed, from the traces
recorded on a real Asterisk and from hand-made sequences, into a real SQLite store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_web_support import console_env, web_settings

from ami.protocol import AmiMessage, AmiParser
from centralita.keys import AMI, QUEUE_LOG
from centralita.queuelog import QueueEventWriter, QueueLog, iso
from centralita.store import Store, StoreBackend
from centralita.store.queue_events import PauseChange, QueueCallUpdate, QueueEvent

TRACES = Path(__file__).resolve().parent / "fixtures" / "asterisk-traces"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def trace_events(name: str) -> list[AmiMessage]:
    parser = AmiParser()
    messages = parser.receive_data((TRACES / name).read_bytes())
    return [m for m in messages if m.kind == "event"]


def event(name: str, **fields: str) -> AmiMessage:
    return AmiMessage.build([("Event", name), ("Privilege", "agent,all"), *fields.items()])


def caller(name: str, uniqueid: str, queue: str = "support-en", **fields: str) -> AmiMessage:
    return event(name, Channel="PJSIP/trunk-0001", Uniqueid=uniqueid, Queue=queue, **fields)


def pause(queue: str, paused: bool, reason: str = "", interface: str = "PJSIP/1001") -> AmiMessage:
    return event(
        "QueueMemberPause",
        Queue=queue,
        MemberName="Amira",
        Interface=interface,
        Paused="1" if paused else "0",
        PausedReason=reason,
    )


@pytest.fixture
def store(any_store: StoreBackend) -> StoreBackend:
    """An empty store, on SQLite and on PostgreSQL in turn (tests/conftest.py)."""
    return any_store


async def replay(
    store: Store, tmp_path: Path, messages: list[AmiMessage], clock: Clock, *, sip: bool = False
) -> list[QueueEvent]:
    """Feed `messages` through a QueueLog into the store, one second apart; returns what the
    log emitted."""
    emitted: list[QueueEvent] = []
    writer = QueueEventWriter(store, batch=3)
    writer.start()

    def emit(item: QueueEvent) -> None:
        emitted.append(item)
        writer.put(item)

    queue_log = QueueLog(web_settings(tmp_path, 5038, sip=sip).site, emit, clock=clock)
    for msg in messages:
        queue_log.handle(msg)
        clock.now += 1
    await writer.drain()
    await writer.stop()
    assert writer.dropped == 0
    return emitted


async def test_an_answered_call_from_the_recorded_trace(store: Store, tmp_path: Path) -> None:
    messages = trace_events("ami-queue-sip-call.txt")
    names = [m.name for m in messages]
    # The order app_queue really sends: the caller leaves the queue before AgentConnect.
    assert names.index("QueueCallerLeave") < names.index("AgentConnect")
    clock = Clock()
    await replay(store, tmp_path, messages, clock, sip=True)
    join = names.index("QueueCallerJoin")
    connect = names.index("AgentConnect")
    complete = names.index("AgentComplete")
    [row] = await store.queue_calls_of("1795301086.1")
    assert row == {
        "uniqueid": "1795301086.1",
        "queue": "support-sip",
        "joined_at": iso(T0 + join),
        "answered_at": iso(T0 + connect),
        # AgentComplete: TalkTime 6, so answered 6 s before it (the connect time is kept).
        "ended_at": iso(T0 + complete),
        "wait_s": 0,
        "talk_s": 6,
        "agent": "1001",  # SIP/1001 is agent 1001's device with sip_driver = "sip"
        "outcome": "answered",
        "service_level_s": 20,  # a queue the config does not name: the default
    }


async def test_a_timed_out_caller_from_the_recorded_trace_is_abandoned(
    store: Store, tmp_path: Path
) -> None:
    messages = trace_events("ami-queue-timeout.txt")
    abandon = next(m for m in messages if m.name == "QueueCallerAbandon")
    await replay(store, tmp_path, messages, Clock(), sip=True)
    [row] = await store.queue_calls_of(abandon.value("Uniqueid"))
    assert row["outcome"] == "abandoned"
    assert row["wait_s"] == int(abandon.value("HoldTime"))
    assert row["answered_at"] is None and row["talk_s"] is None and row["agent"] == ""
    assert row["ended_at"] is not None and str(row["joined_at"]) < str(row["ended_at"])


async def test_answered_and_abandoned_calls_with_duplicates(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    answered = [
        caller("QueueCallerJoin", "100.1", Position="1", Count="1"),
        caller("QueueCallerLeave", "100.1", Position="1", Count="0"),
        caller("AgentConnect", "100.1", Interface="PJSIP/1002", HoldTime="1", RingTime="1"),
        caller("AgentComplete", "100.1", Interface="PJSIP/1002", HoldTime="1", TalkTime="1"),
    ]
    abandoned = [
        caller("QueueCallerJoin", "200.1", queue="support-fr", Position="1", Count="1"),
        caller("QueueCallerAbandon", "200.1", queue="support-fr", HoldTime="1", Position="1"),
        caller("QueueCallerLeave", "200.1", queue="support-fr", Position="1", Count="0"),
    ]
    # Every event twice (a replay): nothing changes, and an outcome once decided stays.
    messages = [m for m in answered + abandoned for m in (m, m)]
    # A stray join repeated long after the end must not reopen the call.
    messages.append(caller("QueueCallerJoin", "100.1", Position="1", Count="1"))
    await replay(store, tmp_path, messages, clock)
    [row] = await store.queue_calls_of("100.1")
    assert (row["joined_at"], row["answered_at"], row["ended_at"]) == (
        iso(T0),  # the first join
        iso(T0 + 4),  # the first AgentConnect
        iso(T0 + 6),  # the first AgentComplete
    )
    assert (row["wait_s"], row["talk_s"], row["agent"], row["outcome"]) == (
        1,
        1,
        "1002",
        "answered",
    )
    [row] = await store.queue_calls_of("200.1")
    assert (row["queue"], row["outcome"], row["wait_s"], row["ended_at"]) == (
        "support-fr",
        "abandoned",
        1,
        iso(T0 + 10),
    )
    totals = {t.queue: t for t in await store.queue_totals_since(iso(T0))}
    assert (totals["support-en"].offered, totals["support-en"].answered) == (1, 1)
    assert totals["support-en"].answered_within_sl == 1
    assert (totals["support-fr"].offered, totals["support-fr"].abandoned) == (1, 1)
    assert await store.queue_totals_since(iso(T0 + 3600)) == []


async def test_an_end_without_its_join_places_the_join_from_hold_time(
    store: Store, tmp_path: Path
) -> None:
    """After a restart the join was never seen: app_queue's HoldTime and TalkTime place it."""
    clock = Clock()
    messages = [
        caller("AgentComplete", "300.1", Interface="PJSIP/9999", HoldTime="30", TalkTime="60")
    ]
    await replay(store, tmp_path, messages, clock)
    [row] = await store.queue_calls_of("300.1")
    assert row["joined_at"] == iso(T0 - 90)
    assert row["answered_at"] == iso(T0 - 60)
    assert row["wait_s"] == 30 and row["outcome"] == "answered"
    assert row["agent"] == "PJSIP/9999"  # not a configured agent: its interface
    # Answered after 30 s: beyond support-en's service level of 20 s.
    [totals] = await store.queue_totals_since(iso(T0 - 3600))
    assert (totals.answered, totals.answered_within_sl) == (1, 0)


async def test_pause_intervals_with_their_reasons(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    messages = [
        # QueuePause without a queue: one event per membership; one interval.
        pause("support-en", True, "lunch"),  # T0
        pause("support-fr", True, "lunch"),  # T0+1
        pause("support-fr", True, "lunch"),  # duplicate
        # Unpaused in one queue only: still paused.
        pause("support-en", False),  # T0+3
        # The reason changes: the lunch ends, training begins.
        pause("support-fr", True, "training"),  # T0+4
        pause("support-fr", False),  # T0+5
        pause("support-fr", False),  # duplicate
        # Another agent's member status without a pause changes nothing.
        event("QueueMemberStatus", Queue="support-en", Interface="PJSIP/1002", Paused="0"),
        pause("support-en", True, "break", interface="PJSIP/1002"),  # T0+8, still open
    ]
    emitted = await replay(store, tmp_path, messages, clock)
    assert [e for e in emitted if isinstance(e, PauseChange)] == [
        PauseChange("1001", True, iso(T0), "lunch"),
        PauseChange("1001", True, iso(T0 + 4), "training"),
        PauseChange("1001", False, iso(T0 + 5)),
        PauseChange("1002", True, iso(T0 + 8), "break"),
    ]
    assert await store.pause_intervals_of("1001") == [
        ("lunch", iso(T0), iso(T0 + 4)),
        ("training", iso(T0 + 4), iso(T0 + 5)),
    ]
    assert await store.pause_intervals_of("1002") == [("break", iso(T0 + 8), None)]


async def test_a_resync_closes_and_opens_pauses(store: Store, tmp_path: Path) -> None:
    """After a lost link, QueueStatus says who is paused now: an open pause of an agent no
    longer paused closes (also one a previous run left in the store), a new one opens at
    app_queue's LastPause."""
    clock = Clock()
    await store.write_queue_events([PauseChange("1003", True, iso(T0 - 500), "meeting")])
    emitted: list[QueueEvent] = []
    queue_log = QueueLog(web_settings(tmp_path, 5038).site, emitted.append, clock=clock)
    queue_log.handle(pause("support-en", True, "lunch"))
    clock.now += 60
    member = {"Event": "QueueMember", "Queue": "support-en", "Location": "PJSIP/1002"}
    queue_log.rebuild(
        [
            AmiMessage.build(
                {**member, "Paused": "1", "PausedReason": "break", "LastPause": f"{T0 + 30:.0f}"}
            ),
            AmiMessage.build({**member, "Location": "PJSIP/1001", "Paused": "0"}),
            AmiMessage.build(
                {**member, "Location": "PJSIP/1004", "Paused": "1", "PausedReason": "coaching"}
            ),
        ]
    )
    await store.write_queue_events(emitted)
    assert await store.pause_intervals_of("1001") == [("lunch", iso(T0), iso(T0 + 60))]
    assert await store.pause_intervals_of("1003") == [("meeting", iso(T0 - 500), iso(T0 + 60))]
    # Paused while the link was down: since app_queue's LastPause, else since now.
    assert await store.pause_intervals_of("1002") == [("break", iso(T0 + 30), None)]
    assert await store.pause_intervals_of("PJSIP/1004") == [("coaching", iso(T0 + 60), None)]


async def test_a_bad_event_does_not_lose_its_batch(store: Store) -> None:
    writer = QueueEventWriter(store)
    writer.start()
    good = QueueCallUpdate("400.1", "support-en", "waiting", iso(T0), 20)
    writer.put(QueueCallUpdate("400.2", "support-en", "answered", iso(T0), 20, wait_s=-1))
    writer.put(good)
    await writer.drain()
    await writer.stop()
    assert writer.written == 1
    assert [r["outcome"] for r in await store.queue_calls_of("400.1")] == ["waiting"]
    assert await store.queue_calls_of("400.2") == []


def test_list_items_and_other_events_are_ignored(tmp_path: Path) -> None:
    emitted: list[QueueEvent] = []
    queue_log = QueueLog(web_settings(tmp_path, 5038).site, emitted.append, clock=Clock())
    # A QueueEntry-like list item (no Privilege), an event of another kind, a join without
    # its queue.
    queue_log.handle(
        AmiMessage.build({"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Queue": "q"})
    )
    queue_log.handle(event("Newchannel", Uniqueid="1.1"))
    queue_log.handle(event("QueueCallerJoin", Uniqueid="1.1"))
    assert emitted == []
    queue_log.handle(event("QueueCallerJoin", Uniqueid="1.1", Queue="q", Timestamp="1800000100.5"))
    assert emitted == [QueueCallUpdate("1.1", "q", "waiting", iso(T0 + 100), 20)]


async def test_the_app_keeps_the_queue_events_it_reads_from_ami(tmp_path: Path) -> None:
    """Wired in the app: the recorded call, replayed by the fake AMI, reaches the store."""
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.ami.replay_trace(TRACES / "ami-queue-sip-call.txt")
        await env.app[AMI].drain(10.0)
        await env.app[QUEUE_LOG].drain()
        [row] = await env.store.queue_calls_of("1795301086.1")
        assert (row["outcome"], row["agent"], row["talk_s"]) == ("answered", "1001", 6)
        [totals] = await env.store.queue_totals_since(str(row["joined_at"]))
        assert (totals.queue, totals.offered, totals.answered) == ("support-sip", 1, 1)


def test_configure_keeps_waiting_callers_and_open_pauses(tmp_path: Path) -> None:
    clock = Clock()
    emitted: list[QueueEvent] = []
    site = web_settings(tmp_path, 5038).site
    queue_log = QueueLog(site, emitted.append, clock=clock)
    queue_log.handle(pause("support-en", True, "lunch"))
    queue_log.handle(caller("QueueCallerJoin", "1800000000.1"))
    # support-en answers within 5 s now; John (1002) leaves, Nadia (1010) joins.
    en = next(q for q in site.queues if q.name == "support-en")
    queues = tuple(replace(en, service_level_s=5) if q is en else q for q in site.queues)
    nadia = replace(site.agents[1], extension="1010", name="Nadia Ben")
    members = (*(m for m in site.members if m.extension != "1002"), nadia)
    queue_log.configure(replace(site, queues=queues, members=members))
    assert (queue_log.agent_of("PJSIP/1010"), queue_log.agent_of("PJSIP/1002")) == (
        "1010",
        "PJSIP/1002",
    )
    clock.now += 10
    emitted.clear()
    queue_log.handle(pause("support-en", False))
    queue_log.handle(caller("AgentConnect", "1800000000.1", Interface="PJSIP/1010", HoldTime="10"))
    assert emitted == [
        PauseChange("1001", False, iso(T0 + 10)),  # the pause opened before is closed
        QueueCallUpdate(
            "1800000000.1",
            "support-en",
            "answered",
            iso(T0),  # joined before, still known
            5,
            answered_at=iso(T0 + 10),
            wait_s=10,
            agent="1010",
        ),
    ]
