"""The wallboard's model (centralita/wallboard.py) on replayed AMI event sequences: the real
queue call of asterisk-traces (join, ring, answer, end), abandons and the service level,
pauses with a reason, wrap-up that ends by itself, and the rebuild after a reconnect from
QueueStatus and QueueSummary lists as app_queue sends them."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from test_web_support import TRACES

from ami.fake_queues import FakeEntry, FakeQueues
from ami.protocol import AmiMessage
from ami.testing import load_trace, rewrite
from centralita.agentstate import AgentStates
from centralita.pop import PopHub
from centralita.store.queue_events import QueueTotals
from centralita.wallboard import Wallboard

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
TIMEOUT_TRACE = TRACES / "ami-queue-timeout.txt"
# The traces' queue and agent, as this config names them.
RENAMES = {"support-sip": "support-en", "SIP/1001": "PJSIP/1001"}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Board:
    """The model with the agent-state mirror in front of it, fed as the AMI taps feed them."""

    def __init__(self, tmp_path: Path, edit: Any = None) -> None:
        self.clock = Clock()
        settings = make_settings(tmp_path, edit)
        site = settings.site
        self.states = AgentStates(
            site, PopHub(), login_queues=settings.console.login_queues, clock=self.clock
        )
        self.model = Wallboard(site, self.states, clock=self.clock)
        self.fake = FakeQueues()
        for queue in site.queues:
            members = [
                (site.device(a.extension), a.name) for a in site.agents if queue.name in a.queues
            ]
            self.fake.add_queue(queue.name, members)

    def feed(self, events: list[AmiMessage]) -> list[dict[str, Any]]:
        for event in events:
            self.states.handle(event)
            self.model.on_event(event)
        return self.messages()

    def reconnect(self) -> list[dict[str, Any]]:
        """What the AMI listener does after a login: QueueStatus, then QueueSummary."""
        status = self.fake.status_items(AmiMessage.build([("Action", "QueueStatus")]))
        self.states.rebuild(status)
        self.model.rebuild_status(status)
        self.model.rebuild_summary(
            self.fake.summary_items(AmiMessage.build([("Action", "QueueSummary")]))
        )
        self.model.set_link(True)
        return self.messages()

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self.model.refresh()]

    def queue(self, name: str) -> dict[str, Any]:
        snapshot = self.model.snapshot()
        return next(q for q in snapshot["queues"] if q["name"] == name)  # type: ignore[attr-defined]

    def agent(self, extension: str) -> dict[str, Any]:
        snapshot = self.model.snapshot()
        return next(a for a in snapshot["agents"] if a["extension"] == extension)  # type: ignore[attr-defined]


def trace(path: Path) -> list[AmiMessage]:
    return rewrite(load_trace(path), RENAMES)


def upto(events: list[AmiMessage], name: str) -> tuple[list[AmiMessage], list[AmiMessage]]:
    """The events up to and with the first `name`, and the rest."""
    end = 1 + next(i for i, m in enumerate(events) if m.name == name)
    return events[:end], events[end:]


def test_a_queue_call_joins_waits_is_answered_and_ends(tmp_path: Path) -> None:
    board = Board(tmp_path)
    first = board.reconnect()
    # The link came up: one snapshot with everything: the 3 queues, and the 3 members whose
    # role takes queue calls (not quality staff, managers or the CEO).
    assert [m["type"] for m in first] == ["wallboard.snapshot"]
    assert [a["extension"] for a in first[0]["agents"]] == ["1001", "1002", "1003"]
    assert len(first[0]["queues"]) == 3
    assert first[0]["asterisk"] is True
    en = board.queue("support-en")
    assert (en["waiting"], en["logged_in"], en["free"], en["on_call"]) == (0, 3, 3, 0)
    assert en["longest_wait_since"] is None and en["service_level_pct"] is None
    assert board.agent("1001")["state"] == "free"

    events = trace(QUEUE_TRACE)
    joined, rest = upto(events, "QueueCallerJoin")
    board.clock.now += 5
    join_at = board.clock.now
    changed = board.feed(joined)
    assert changed == [{"type": "wallboard.queue", "queue": board.queue("support-en")}]
    assert board.queue("support-en")["waiting"] == 1
    assert board.queue("support-en")["longest_wait_since"] == join_at

    called, rest = upto(rest, "AgentCalled")
    board.clock.now += 2
    changed = board.feed(called)
    assert {m["type"] for m in changed} == {"wallboard.agent", "wallboard.queue"}
    amira = board.agent("1001")
    assert (amira["state"], amira["since"]) == ("ringing", board.clock.now)
    en = board.queue("support-en")
    assert (en["ringing"], en["free"], en["waiting"]) == (1, 2, 1)
    # The agent's other queue counts the ringing too (she is busy for both).
    assert board.queue("support-ar")["ringing"] == 1

    connected, rest = upto(rest, "AgentConnect")
    board.clock.now += 3
    board.feed(connected)
    en = board.queue("support-en")
    assert (en["waiting"], en["longest_wait_since"]) == (0, None)
    assert (en["on_call"], en["answered_today"], en["service_level_pct"]) == (1, 1, 100.0)
    assert board.agent("1001")["state"] == "on_call"
    talk_since = board.agent("1001")["since"]

    board.clock.now += 6
    completed, rest = upto(rest, "AgentComplete")
    board.feed(completed)
    assert board.agent("1001")["state"] == "free"  # no wrap-up in this queue
    assert board.agent("1001")["since"] == board.clock.now > talk_since
    board.feed(rest)
    en = board.queue("support-en")
    assert (en["free"], en["on_call"], en["answered_today"], en["abandoned_today"]) == (3, 0, 1, 0)


def test_an_abandon_and_a_late_answer_lower_the_service_level(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    board.feed(trace(TIMEOUT_TRACE))
    en = board.queue("support-en")
    assert (en["abandoned_today"], en["answered_today"], en["waiting"]) == (1, 0, 0)
    assert board.agent("1001")["state"] == "free"  # AgentRingNoAnswer: rang, not answered
    events = trace(QUEUE_TRACE)
    board.feed(events)  # answered at once: within the 20 s
    # The same call again, answered after 45 s.
    connect = next(m for m in events if m.name == "AgentConnect")
    slow = AmiMessage.build([(k, "45" if k == "HoldTime" else v) for k, v in connect.headers])
    board.feed([slow])
    en = board.queue("support-en")
    assert (en["answered_today"], en["service_level_pct"]) == (2, 50.0)


def test_a_pause_with_a_reason_shows_per_agent_and_per_queue(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    pause = AmiMessage.build(
        [("Action", "QueuePause"), ("Interface", "PJSIP/1003"), ("Paused", "true"),
         ("Reason", "lunch")]
    )  # fmt: skip
    board.clock.now += 60
    _, events = board.fake.act(pause)
    changed = board.feed(events)
    assert [m["agent"]["extension"] for m in changed if m["type"] == "wallboard.agent"] == ["1003"]
    elodie = board.agent("1003")
    assert (elodie["state"], elodie["reason"], elodie["since"]) == (
        "paused",
        "lunch",
        board.clock.now,
    )
    assert all(q["paused"] and q["reason"] == "lunch" for q in elodie["queues"] if q["logged_in"])
    fr = board.queue("support-fr")
    assert (fr["paused"], fr["paused_reasons"], fr["free"], fr["logged_in"]) == (
        1,
        {"lunch": 1},
        0,
        1,
    )
    en = board.queue("support-en")
    assert (en["paused"], en["free"]) == (1, 2)
    # Unpaused in one queue only: she is free overall, still paused in support-fr.
    one = AmiMessage.build(
        [("Action", "QueuePause"), ("Interface", "PJSIP/1003"), ("Paused", "false"),
         ("Queue", "support-en")]
    )  # fmt: skip
    board.feed(board.fake.act(one)[1])
    assert board.agent("1003")["state"] == "free"
    assert board.queue("support-fr")["paused"] == 1
    assert board.queue("support-en")["paused"] == 0


def test_queue_logout_and_an_unavailable_phone(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    add = AmiMessage.build(
        [("Action", "QueueAdd"), ("Queue", "support-fr"), ("Interface", "PJSIP/1002")]
    )
    board.feed(board.fake.act(add)[1])
    john = board.agent("1002")
    assert {q["queue"]: (q["logged_in"], q["static"]) for q in john["queues"]} == {
        "support-en": (True, True),
        "support-fr": (True, False),
        "support-ar": (False, False),
    }
    assert board.queue("support-fr")["logged_in"] == 2
    remove = AmiMessage.build(
        [("Action", "QueueRemove"), ("Queue", "support-fr"), ("Interface", "PJSIP/1002")]
    )
    board.feed(board.fake.act(remove)[1])
    assert board.queue("support-fr")["logged_in"] == 1
    # The phone unregisters: AST_DEVICE_UNAVAILABLE in every queue.
    board.feed(board.fake.set_status("PJSIP/1002", 5))
    assert board.agent("1002")["state"] == "unavailable"
    en = board.queue("support-en")
    assert (en["logged_in"], en["free"]) == (2, 2)
    # Out of his last queue (queues.conf changed and reloaded): logged out.
    queue, member = board.fake.queue("support-en"), board.fake.member("support-en", "PJSIP/1002")
    assert queue is not None and member is not None
    board.feed([FakeQueues.member_event("QueueMemberRemoved", queue, member)])
    john = board.agent("1002")
    assert john["state"] == "logged_out" and not any(q["logged_in"] for q in john["queues"])


def test_wrapup_ends_by_itself(tmp_path: Path) -> None:
    def wrapup(text: str) -> str:
        return text.replace("wrapup_s = 0 ", "wrapup_s = 30 ", 1)

    board = Board(tmp_path, wrapup)  # support-ar: 30 s of wrap-up
    board.reconnect()
    events = rewrite(trace(QUEUE_TRACE), {"support-en": "support-ar"})
    board.feed(events)
    ended = board.clock.now
    assert board.agent("1001")["state"] == "wrapup"
    assert board.queue("support-ar")["wrapup"] == 1
    assert board.model.next_deadline() == ended + 30
    board.clock.now = ended + 29
    board.model.expire()
    assert board.messages() == []
    board.clock.now = ended + 30
    board.model.expire()
    changed = board.messages()
    assert [m["agent"]["state"] for m in changed if m["type"] == "wallboard.agent"] == ["free"]
    assert board.model.next_deadline() is None


def test_the_rebuild_after_a_reconnect(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    events = trace(QUEUE_TRACE)
    connected, _ = upto(events, "AgentConnect")
    board.feed(connected)  # the call is up when the link drops (its end is never seen)
    assert board.agent("1001")["state"] == "on_call"
    join = next(m for m in trace(TIMEOUT_TRACE) if m.name == "QueueCallerJoin")
    board.feed([join])
    assert board.queue("support-en")["waiting"] == 1
    board.model.set_link(False)
    [away] = board.messages()
    assert (away["type"], away["asterisk"]) == ("wallboard.snapshot", False)

    # Meanwhile in Asterisk: the call ended, the waiting caller left, two others wait now
    # (for 42 s and 7 s). Its own counts (since it started, not today) are not the day's.
    board.clock.now += 120
    queue = board.fake.queue("support-en")
    assert queue is not None
    real_now = time.time()  # the fake Asterisk's clock; the model's is board.clock
    queue.entries = [
        FakeEntry("SIP/trunk-01", "1800000070.1", start=real_now - 42.5),
        FakeEntry("SIP/trunk-02", "1800000105.4", start=real_now - 7.5),
    ]
    queue.completed, queue.abandoned, queue.servicelevel_perf = 9, 2, 88.9
    status = board.fake.status_items(AmiMessage.build([("Action", "QueueStatus")]))
    assert [m.value("Wait") for m in status if m.name == "QueueEntry"] == ["42", "7"]
    [back] = board.reconnect()
    assert (back["type"], back["asterisk"]) == ("wallboard.snapshot", True)
    assert board.agent("1001")["state"] == "free"  # QueueMember InCall 0, Status 1
    en = board.queue("support-en")
    assert (en["waiting"], en["longest_wait_since"]) == (2, board.clock.now - 42)
    assert (en["answered_today"], en["abandoned_today"], en["service_level_pct"]) == (1, 0, 100.0)
    assert en in back["queues"]
    assert board.model.wants_totals  # the day's counts are read again from the store


def test_the_days_counts_from_the_queue_event_log(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    board.feed(trace(QUEUE_TRACE))  # one answered live, before the store's totals are in
    since = board.model.day_start()
    midnight = datetime.fromtimestamp(board.clock.now).replace(hour=0, minute=0, second=0)
    assert since == midnight.astimezone(UTC).isoformat(timespec="seconds")
    board.model.seed_totals(
        since,
        [
            QueueTotals("support-en", offered=40, answered=30, abandoned=6, answered_within_sl=24),
            QueueTotals("support-fr", offered=0, answered=0, abandoned=0, answered_within_sl=0),
            QueueTotals("gone-queue", offered=5, answered=5, abandoned=0, answered_within_sl=5),
        ],
    )
    changed = board.messages()
    assert [m["queue"]["name"] for m in changed] == ["support-en"]
    en = board.queue("support-en")
    assert (en["answered_today"], en["abandoned_today"], en["service_level_pct"]) == (30, 6, 80.0)
    # The store behind the live count (a batched write not in yet): the live count stays.
    board.model.seed_totals(since, [QueueTotals("support-en", 1, 0, 0, 0)])
    assert board.queue("support-en")["answered_today"] == 30
    # Totals read for yesterday, arriving after midnight: ignored.
    board.model.seed_totals("2000-01-01T00:00:00+00:00", [QueueTotals("support-fr", 9, 9, 0, 9)])
    board.messages()
    assert board.queue("support-fr")["answered_today"] == 0


def test_the_summary_settles_the_callers_when_the_entries_disagree(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    now = board.clock.now
    summary = [
        AmiMessage.build(
            [("Event", "QueueSummary"), ("Queue", "support-fr"), ("LoggedIn", "1"),
             ("Available", "1"), ("Callers", "3"), ("HoldTime", "0"), ("TalkTime", "0"),
             ("LongestHoldTime", "95")]
        )
    ]  # fmt: skip
    board.model.rebuild_summary(summary)
    board.messages()
    fr = board.queue("support-fr")
    assert (fr["waiting"], fr["longest_wait_since"]) == (3, now - 95)
    summary = [
        AmiMessage.build([*summary[0].headers[:4], ("Callers", "1"), ("LongestHoldTime", "95")])
    ]
    board.model.rebuild_summary(summary)
    board.messages()
    assert board.queue("support-fr")["waiting"] == 1


def test_the_days_counts_start_again_at_midnight(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    board.feed(trace(QUEUE_TRACE))
    board.feed(trace(TIMEOUT_TRACE))
    en = board.queue("support-en")
    assert (en["answered_today"], en["abandoned_today"]) == (1, 1)
    board.clock.now += 24 * 3600
    board.model.expire()
    board.messages()
    en = board.queue("support-en")
    assert (en["answered_today"], en["abandoned_today"], en["service_level_pct"]) == (0, 0, None)


@pytest.mark.parametrize("name", ["QueueMemberStatus", "Newchannel", "QueueCallerJoin"])
def test_events_of_other_queues_or_agents_change_nothing(tmp_path: Path, name: str) -> None:
    board = Board(tmp_path)
    board.reconnect()
    stranger = AmiMessage.build(
        [("Event", name), ("Privilege", "agent,all"), ("Queue", "not-ours"),
         ("Interface", "PJSIP/9999"), ("Uniqueid", "1.1"), ("Status", "2")]
    )  # fmt: skip
    assert board.feed([stranger]) == []


def recount(snapshot: dict[str, Any], queue: str) -> dict[str, Any]:
    """A queue's agent columns counted from the agents the snapshot shows (docs/supervisors.md):
    what the model keeps up to date as agents change."""
    counts = dict.fromkeys(("logged_in", "free", "ringing", "on_call", "wrapup", "paused"), 0)
    reasons: dict[str, int] = {}
    for agent in snapshot["agents"]:
        mine = next((q for q in agent["queues"] if q["queue"] == queue), None)
        if mine is None or not mine["logged_in"]:
            continue
        if agent["state"] in ("unavailable", "logged_out"):
            continue
        counts["logged_in"] += 1
        if agent["state"] in ("on_call", "ringing", "wrapup"):
            counts[agent["state"]] += 1
        elif mine["paused"]:
            counts["paused"] += 1
            reasons[mine["reason"]] = reasons.get(mine["reason"], 0) + 1
        else:
            counts["free"] += 1
    return {**counts, "paused_reasons": dict(sorted(reasons.items()))}


def test_the_queue_counts_follow_every_agent_change(tmp_path: Path) -> None:
    board = Board(tmp_path, lambda text: text.replace("wrapup_s = 0 ", "wrapup_s = 30 ", 1))
    board.reconnect()
    rng = random.Random(12)
    queues = ["support-en", "support-fr", "support-ar"]
    phones = ["PJSIP/1001", "PJSIP/1002", "PJSIP/1003"]
    call = trace(QUEUE_TRACE)
    seen_columns: set[str] = set()
    for step in range(300):
        phone, queue = rng.choice(phones), rng.choice(queues)
        kind = rng.randrange(6)
        if kind == 0:
            action = [("Action", "QueuePause"), ("Interface", phone),
                      ("Paused", rng.choice(["true", "false"])),
                      ("Reason", rng.choice(["lunch", "training", ""]))]  # fmt: skip
            if rng.random() < 0.5:
                action.append(("Queue", queue))
            events = board.fake.act(AmiMessage.build(action))[1]
        elif kind == 1:
            name = rng.choice(["QueueAdd", "QueueRemove"])
            action = [("Action", name), ("Queue", queue), ("Interface", phone)]
            events = board.fake.act(AmiMessage.build(action))[1]
        elif kind == 2:
            events = board.fake.set_status(phone, rng.choice([1, 2, 5, 6]))
        elif kind == 3:  # part of the recorded call, at another queue and agent
            start = rng.randrange(len(call)) if rng.random() < 0.7 else 0
            renames = {"support-en": queue, "PJSIP/1001": phone, "1795301086": f"17{step}"}
            events = rewrite(call[start : start + rng.randrange(1, len(call) + 1)], renames)
        elif kind == 4:
            board.clock.now += rng.choice([1, 31])
            board.model.expire()
            events = []
        else:
            board.reconnect()
            events = []
        board.feed(events)
        snapshot = board.model.snapshot()
        for shown in snapshot["queues"]:  # type: ignore[attr-defined]
            name = shown["name"]
            kept = {k: shown[k] for k in recount(snapshot, name)}
            assert kept == recount(snapshot, name), (step, name)
            seen_columns |= {k for k, v in kept.items() if v and k != "paused_reasons"}
    # The walk went through every column.
    assert seen_columns == {"logged_in", "free", "ringing", "on_call", "wrapup", "paused"}


def test_ringall_stops_ringing_every_agent_when_the_caller_leaves(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    events = trace(QUEUE_TRACE)
    joined, rest = upto(events, "QueueCallerJoin")
    called = next(m for m in rest if m.name == "AgentCalled")
    leave = next(m for m in rest if m.name == "QueueCallerLeave")
    board.feed([*joined, called, *rewrite([called], {"PJSIP/1001": "PJSIP/1002"})])
    assert [board.agent(a)["state"] for a in ("1001", "1002", "1003")] == [
        "ringing",
        "ringing",
        "free",
    ]
    assert board.queue("support-en")["ringing"] == 2
    changed = board.feed([leave])  # answered elsewhere, or gone: nobody rings for it now
    assert sorted(m["agent"]["extension"] for m in changed if m["type"] == "wallboard.agent") == [
        "1001",
        "1002",
    ]
    assert [board.agent(a)["state"] for a in ("1001", "1002")] == ["free", "free"]
    assert board.queue("support-en")["ringing"] == 0


def test_configure_keeps_what_is_still_configured(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    # Élodie (1003) is also in `sales`, a queue this config does not have yet, then pauses.
    board.fake.add_queue("sales", [])
    add = [("Action", "QueueAdd"), ("Queue", "sales"), ("Interface", "PJSIP/1003")]
    board.feed(board.fake.act(AmiMessage.build(add))[1])
    pause = [("Action", "QueuePause"), ("Interface", "PJSIP/1003"), ("Paused", "true"),
             ("Reason", "lunch")]  # fmt: skip
    board.feed(board.fake.act(AmiMessage.build(pause))[1])
    board.feed(upto(trace(QUEUE_TRACE), "QueueCallerJoin")[0])
    assert board.queue("support-en")["waiting"] == 1
    assert board.queue("support-en")["logged_in"] == 3

    # support-ar and John Smith (1002) leave the config; sales and Nadia (1010) join it.
    site = make_settings(tmp_path).site
    sales = replace(site.queues[0], name="sales", id=9)
    nadia = replace(site.agents[2], extension="1010", name="Nadia Ben", queues=("sales",))
    members = tuple(
        replace(m, queues=tuple(q for q in m.queues if q != "support-ar"))
        for m in site.members
        if m.extension != "1002"
    )
    queues = (*(q for q in site.queues if q.name != "support-ar"), sales)
    new_site = replace(site, queues=queues, members=(*members, nadia))
    amira_since = board.agent("1001")["since"]
    board.clock.now += 600  # ten minutes after the start
    board.states.configure(new_site, login_queues=("support-en", "support-fr"))
    board.model.configure(new_site)

    messages = board.messages()
    assert [m["type"] for m in messages] == ["wallboard.snapshot"]
    snapshot = messages[0]
    assert [q["name"] for q in snapshot["queues"]] == ["support-en", "support-fr", "sales"]
    assert [a["extension"] for a in snapshot["agents"]] == ["1001", "1003", "1010"]
    elodie = board.agent("1003")
    assert (elodie["state"], elodie["reason"]) == ("paused", "lunch")
    en = board.queue("support-en")
    assert (en["waiting"], en["logged_in"]) == (1, 2)  # John's share left with him
    # Élodie counts in sales now, though her row did not change.
    assert (board.queue("sales")["paused"], board.queue("sales")["paused_reasons"]) == (
        1,
        {"lunch": 1},
    )
    for shown in snapshot["queues"]:
        assert {k: shown[k] for k in recount(snapshot, shown["name"])} == recount(
            snapshot, shown["name"]
        )
    assert board.agent("1010")["state"] == "logged_out"
    # Nadia has been on the board since the reload, not since the server started.
    assert board.agent("1010")["since"] == board.clock.now
    assert board.agent("1001")["since"] == amira_since == board.clock.now - 600
    assert board.model.wants_totals  # the new queue's day is read from the store
    assert board.messages() == []
    # Events of what is gone change nothing; the new queue takes callers.
    gone = rewrite(trace(QUEUE_TRACE), {"support-en": "support-ar"})
    assert board.feed(upto(gone, "QueueCallerJoin")[0]) == []
    joined = upto(rewrite(trace(QUEUE_TRACE), {"support-en": "sales"}), "QueueCallerJoin")[0]
    board.feed(joined)
    assert board.queue("sales")["waiting"] == 1


def test_a_queue_added_counts_the_agents_asterisk_has_in_it(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.reconnect()
    board.fake.add_queue("sales", [])
    add = [("Action", "QueueAdd"), ("Queue", "sales"), ("Interface", "PJSIP/1003")]
    board.feed(board.fake.act(AmiMessage.build(add))[1])
    row = board.agent("1003")
    settings = make_settings(tmp_path)
    site = settings.site
    new_site = replace(site, queues=(*site.queues, replace(site.queues[0], name="sales", id=9)))
    board.states.configure(new_site, login_queues=settings.console.login_queues)
    board.model.configure(new_site)
    board.messages()
    assert board.agent("1003") == row  # her row shows the same
    sales = board.queue("sales")
    assert (sales["logged_in"], sales["free"]) == (1, 1)
