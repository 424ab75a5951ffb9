"""The AMI taps: every reader sees every event, a failing one does not stop the others."""

from __future__ import annotations

import logging

import pytest

from ami.protocol import AmiMessage
from centralita.amitaps import AmiTaps


def _event(name: str) -> AmiMessage:
    return AmiMessage("event", (("Event", name),))


def test_every_reader_sees_every_event_even_after_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []

    def broken(msg: AmiMessage) -> None:
        raise RuntimeError("odd event")

    taps = AmiTaps()
    taps.add(on_event=lambda m: seen.append(("first", m.name)))
    taps.add(on_event=broken)
    taps.add(on_event=lambda m: seen.append(("last", m.name)))
    with caplog.at_level(logging.ERROR, logger="centralita.amitaps"):
        taps.on_event(_event("QueueCallerJoin"))
    assert seen == [("first", "QueueCallerJoin"), ("last", "QueueCallerJoin")]
    assert "failed on QueueCallerJoin" in caplog.text


def test_one_resync_list_per_action_feeds_every_reader_of_it() -> None:
    got: list[tuple[str, int]] = []
    taps = AmiTaps()
    taps.add(resync=(("QueueStatus", lambda items: got.append(("states", len(items)))),))
    taps.add(
        resync=(
            ("QueueStatus", lambda items: got.append(("wallboard", len(items)))),
            ("QueueSummary", lambda items: got.append(("summary", len(items)))),
        )
    )
    resyncs = dict(taps.resyncs)
    assert sorted(resyncs) == ["QueueStatus", "QueueSummary"]
    resyncs["QueueStatus"]([_event("QueueMember"), _event("QueueParams")])
    assert got == [("states", 2), ("wallboard", 2)]


def test_link_changes_reach_every_reader() -> None:
    got: list[tuple[str, bool]] = []
    taps = AmiTaps()
    taps.add(on_link=lambda up: got.append(("a", up)))
    taps.add(on_link=lambda up: got.append(("b", up)))
    taps.on_link(False)
    taps.on_link(True)
    assert got == [("a", False), ("b", False), ("a", True), ("b", True)]


def test_a_reader_that_names_its_events_sees_only_those_in_order() -> None:
    seen: list[tuple[str, str]] = []
    taps = AmiTaps()
    taps.add(on_event=lambda m: seen.append(("all", m.name)))
    taps.add(on_event=lambda m: seen.append(("queue", m.name)), events={"QueueCallerJoin"})
    for name in ("Newchannel", "QueueCallerJoin", "Hangup"):
        taps.on_event(_event(name))
    # A reader added later is called too: the per-name lists are rebuilt.
    taps.add(on_event=lambda m: seen.append(("late", m.name)), events=("Hangup",))
    taps.on_event(_event("Hangup"))
    assert seen == [
        ("all", "Newchannel"),
        ("all", "QueueCallerJoin"),
        ("queue", "QueueCallerJoin"),
        ("all", "Hangup"),
        ("all", "Hangup"),
        ("late", "Hangup"),
    ]
