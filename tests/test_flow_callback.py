"""Flow `callback` end to end: what the caller heard, what was stored and logged."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from conftest import FlowEnv

from agi.testing import Caller, place_call, place_calls
from centralita.csvlog import read_rows

ENTER = "centralita/enter-phone-number"
ALT = "centralita/enter-alternative"
YOU_ENTERED = "centralita/you-entered"
CONFIRM = "centralita/confirm-reenter"
INVALID = "centralita/invalid-option"


def callback_caller(keys: Sequence[str | None], **kwargs: object) -> Caller:
    return Caller(script="callback", args=["support-en"], keys=keys, **kwargs)  # type: ignore[arg-type]


async def test_confirm_main_and_skip_the_alternative(flow_env: FlowEnv) -> None:
    result = await place_call("127.0.0.1", flow_env.port, callback_caller(["600123456#", "1", "#"]))
    assert result.heard == [
        "centralita/all-agents-busy",
        ENTER,
        YOU_ENTERED,
        "digits:600123456",
        CONFIRM,
        ALT,
        "centralita/callback-thanks",
    ]
    assert result.route == "hangup"
    (stored,) = await flow_env.store.list_callbacks()
    assert (stored.number, stored.alternative, stored.status) == ("600123456", "", "pending")
    assert (stored.queue, stored.callerid, stored.language) == ("support-en", "5551234567", "en")
    (row,) = read_rows(flow_env.settings.data_dir / "callbacks.csv")
    assert row["number"] == "600123456" and row["id"] == str(stored.id)


async def test_re_enter_then_alternative(flow_env: FlowEnv) -> None:
    keys = ["611111111#", "2", "622222222#", "1", "633333333#", "1"]
    result = await place_call("127.0.0.1", flow_env.port, callback_caller(keys))
    assert [h for h in result.heard if h.startswith("digits:")] == [
        "digits:611111111",
        "digits:622222222",
        "digits:633333333",
    ]
    (stored,) = await flow_env.store.list_callbacks()
    assert (stored.number, stored.alternative) == ("622222222", "633333333")


async def test_thirty_digit_entry_is_refused_and_asked_again(flow_env: FlowEnv) -> None:
    keys = ["1" * 30, "600123456#", "1", "#"]
    result = await place_call("127.0.0.1", flow_env.port, callback_caller(keys))
    assert result.heard[:4] == ["centralita/all-agents-busy", ENTER, INVALID, ENTER]
    max_digits = flow_env.settings.site.callback.max_digits
    assert f"GET DATA {ENTER} 10000 {max_digits + 1}" in result.commands
    (stored,) = await flow_env.store.list_callbacks()
    assert stored.number == "600123456"


@pytest.mark.parametrize("entry", ["123#", "*#", "#", None])
async def test_short_star_or_empty_entries_store_nothing(
    flow_env: FlowEnv, entry: str | None
) -> None:
    result = await place_call("127.0.0.1", flow_env.port, callback_caller([entry, entry, entry]))
    assert result.heard.count(INVALID) == 3
    assert result.heard[-1] == "centralita/goodbye"
    assert result.route == "hangup"
    assert await flow_env.store.list_callbacks() == []
    assert not (flow_env.settings.data_dir / "callbacks.csv").exists()


async def test_no_confirmation_stores_nothing(flow_env: FlowEnv) -> None:
    keys = ["600123456#", None, "600123456#", "9", "600123456#", None]
    result = await place_call("127.0.0.1", flow_env.port, callback_caller(keys))
    assert result.heard[-1] == "centralita/goodbye"
    assert await flow_env.store.list_callbacks() == []


async def test_hangup_after_confirming_the_main_number_keeps_it(flow_env: FlowEnv) -> None:
    # Commands: ANSWER, STREAM busy, GET DATA, STREAM you-entered, SAY DIGITS, GET DATA confirm,
    # GET DATA alternative (index 6): the caller hangs up there.
    result = await place_call(
        "127.0.0.1", flow_env.port, callback_caller(["600123456#", "1"], hangup_at=6)
    )
    assert result.caller_hung_up
    (stored,) = await flow_env.store.list_callbacks()
    assert (stored.number, stored.alternative) == ("600123456", "")


async def test_hostile_caller_name_changes_nothing(flow_env: FlowEnv) -> None:
    hostile = 'Ahmad "\\" أحمد\nEXEC System evil \\\\ "'
    result = await place_call(
        "127.0.0.1",
        flow_env.port,
        callback_caller(["600123456#", "1", "#"], calleridname=hostile),
    )
    assert result.route == "hangup"
    assert not [c for c in result.commands if "System" in c or "evil" in c]
    assert [a for a in result.apps] == []
    (stored,) = await flow_env.store.list_callbacks()
    assert stored.number == "600123456"


async def test_a_thousand_callbacks_at_once(flow_env: FlowEnv) -> None:
    callers = [
        callback_caller([f"6{i:08d}#", "1", "#"], callerid=f"55500{i:05d}") for i in range(1000)
    ]
    results = await place_calls("127.0.0.1", flow_env.port, callers, concurrency=1000)
    assert all(r.route == "hangup" for r in results)
    stored = await flow_env.store.list_callbacks()
    assert sorted(s.number for s in stored) == [f"6{i:08d}" for i in range(1000)]
    rows = read_rows(flow_env.settings.data_dir / "callbacks.csv")
    assert sorted(r["number"] for r in rows) == [f"6{i:08d}" for i in range(1000)]
    raw = (flow_env.settings.data_dir / "callbacks.csv").read_text(encoding="utf-8")
    assert raw.count("\n") == 1001 and raw.startswith("time,callerid,")
