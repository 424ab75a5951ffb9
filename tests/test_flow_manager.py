"""Flow `manager` end to end: call records in a real SQLite store (filled with `upsert_cdr`),
the Asterisk simulator as the caller, device states from the simulated channel."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import FlowEnv, make_settings, start_flow_env

from agi.flows.manager import lookup_allowed
from agi.testing import Caller, CallResult, place_call
from centralita.store import CallRecord

FALLBACK = "queue:support-en"  # the demo's manager.fallback
CALLER = "0034915550123"
_ids = itertools.count(1)


def record(
    src: str,
    agent: str,
    *,
    ago: timedelta = timedelta(minutes=30),
    disposition: str = "ANSWERED",
    queue_call: bool = True,
) -> CallRecord:
    """A CDR as cdr_manager writes it: times are local wall clock (cdr_manager.c:182)."""
    n = next(_ids)
    start = datetime.now().replace(microsecond=0) - ago
    answered = disposition == "ANSWERED"
    return CallRecord(
        uniqueid=f"1795300000.{n}",
        linkedid=f"1795300000.{n}",
        src=src,
        # A queue call names the queue's extension in dst and the agent only in the channel
        # (asterisk-traces/ami-queue-sip-call.txt); a direct call names the agent in dst.
        dst="300" if queue_call else agent,
        dcontext="incoming",
        clid=f'"Caller" <{src}>',
        channel=f"PJSIP/trunk-{n:08x}",
        dstchannel=f"PJSIP/{agent}-{n:08x}",
        lastapp="Queue" if queue_call else "Dial",
        start=start,
        answer=start + timedelta(seconds=5) if answered else None,
        end=start + timedelta(seconds=65),
        duration=65,
        billsec=60 if answered else 0,
        disposition=disposition,
    )


async def fill(env: FlowEnv, records: Sequence[CallRecord]) -> None:
    for rec in records:
        await env.store.upsert_cdr(rec)


async def call(
    env: FlowEnv, callerid: str, device_states: dict[str, str] | None = None
) -> CallResult:
    caller = Caller(
        script="manager",
        callerid=callerid,
        device_states=device_states or {},
    )
    result = await place_call("127.0.0.1", env.port, caller)
    assert result.error is None, result.error
    return result


def free(*extensions: str) -> dict[str, str]:
    return {f"PJSIP/{ext}": "NOT_INUSE" for ext in extensions}


ALL_FREE = free("1001", "1002", "1003")


async def test_right_agent_among_many_records(flow_env: FlowEnv) -> None:
    others = [
        record(f"0034600{i:06d}", ("1001", "1002", "1003")[i % 3], ago=timedelta(minutes=i))
        for i in range(200)
    ]
    mine = [
        record(CALLER, "1001", ago=timedelta(hours=5)),
        record(CALLER, "1002", ago=timedelta(hours=2)),
        record(CALLER, "1003", ago=timedelta(minutes=40)),  # the most recent one
    ]
    await fill(flow_env, [*others, *mine])
    result = await call(flow_env, CALLER, ALL_FREE)
    assert result.route == "agent:1003"
    assert result.variables["CENTRALITA_AGENT"] == "1003"
    assert "GET FULL VARIABLE ${DEVICE_STATE(PJSIP/1003)}" in [
        c.replace('"', "") for c in result.commands
    ]


async def test_direct_calls_count_too(flow_env: FlowEnv) -> None:
    await fill(flow_env, [record(CALLER, "1002", queue_call=False)])
    assert (await call(flow_env, CALLER, ALL_FREE)).route == "agent:1002"


async def test_old_records_and_other_dispositions_are_ignored(flow_env: FlowEnv) -> None:
    window = timedelta(hours=flow_env.settings.site.manager.window_h)
    await fill(
        flow_env,
        [
            record(CALLER, "1001", ago=timedelta(hours=3)),
            record(CALLER, "1002", ago=window + timedelta(minutes=5)),  # too old
            record(CALLER, "1003", ago=timedelta(minutes=10), disposition="FAILED"),
            record(CALLER, "1002", ago=timedelta(minutes=5), disposition="CONGESTION"),
        ],
    )
    result = await call(flow_env, CALLER, ALL_FREE)
    assert result.route == "agent:1001"


async def test_only_records_older_than_the_window(flow_env: FlowEnv) -> None:
    window = timedelta(hours=flow_env.settings.site.manager.window_h)
    await fill(flow_env, [record(CALLER, "1001", ago=window + timedelta(minutes=1))])
    result = await call(flow_env, CALLER, ALL_FREE)
    assert result.route == FALLBACK
    assert "CENTRALITA_AGENT" not in result.variables
    assert not any("DEVICE_STATE" in c for c in result.commands)


@pytest.mark.parametrize("disposition", ["ANSWERED", "NO ANSWER", "BUSY"])
async def test_each_configured_disposition_counts(flow_env: FlowEnv, disposition: str) -> None:
    await fill(flow_env, [record(CALLER, "1003", disposition=disposition)])
    assert (await call(flow_env, CALLER, ALL_FREE)).route == "agent:1003"


async def test_a_destination_that_is_not_an_agent_is_ignored(flow_env: FlowEnv) -> None:
    await fill(
        flow_env,
        [
            record(CALLER, "1002", ago=timedelta(hours=1)),
            record(CALLER, "2000", ago=timedelta(minutes=1), queue_call=False),  # voicemail
        ],
    )
    assert (await call(flow_env, CALLER, ALL_FREE)).route == "agent:1002"


@pytest.mark.parametrize(
    "state",
    ["INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD", "UNAVAILABLE", "UNKNOWN", "INVALID"],
)
async def test_a_busy_agent_sends_the_call_to_the_queue(flow_env: FlowEnv, state: str) -> None:
    await fill(flow_env, [record(CALLER, "1001")])
    result = await call(flow_env, CALLER, {"PJSIP/1001": state})
    assert result.route == FALLBACK
    assert "CENTRALITA_AGENT" not in result.variables
    assert any("DEVICE_STATE(PJSIP/1001)" in c for c in result.commands)


async def test_device_state_is_read_case_insensitively(flow_env: FlowEnv) -> None:
    await fill(flow_env, [record(CALLER, "1001")])
    assert (await call(flow_env, CALLER, {"PJSIP/1001": "not_inuse"})).route == "agent:1001"


@pytest.mark.parametrize(
    "spelling", ["+34 915 550 123", "0034915550123", "915550123", "+34915550123"]
)
@pytest.mark.parametrize("stored", ["+34 915 550 123", "0034915550123", "915550123"])
async def test_one_person_whatever_the_spelling(
    flow_env: FlowEnv, spelling: str, stored: str
) -> None:
    await fill(flow_env, [record(stored, "1002")])
    assert (await call(flow_env, spelling, ALL_FREE)).route == "agent:1002"


async def test_another_number_is_another_person(flow_env: FlowEnv) -> None:
    await fill(flow_env, [record(CALLER, "1002")])
    assert (await call(flow_env, "0034915550124", ALL_FREE)).route == FALLBACK


@pytest.mark.parametrize(
    "callerid",
    [
        "915550123' OR '1'='1",
        "915550123'; DROP TABLE cdr; --",
        "0 OR 1=1",
        "%",
        "915550123%",
        '" OR agent IS NOT NULL --',
    ],
)
async def test_a_caller_id_that_looks_like_sql_changes_nothing(
    flow_env: FlowEnv, callerid: str
) -> None:
    await fill(flow_env, [record("0034600000001", "1003"), record("0034600000002", "1001")])
    before = await flow_env.store.count_cdrs()
    result = await call(flow_env, callerid, ALL_FREE)
    assert result.route == FALLBACK
    assert await flow_env.store.count_cdrs() == before
    # And the table still answers ordinary lookups.
    assert (await call(flow_env, "0034600000001", ALL_FREE)).route == "agent:1003"


@pytest.mark.parametrize(
    "callerid", ["anonymous", "Anonymous", "unknown", "", "private", "12345", "+34 12"]
)
async def test_withheld_or_short_caller_ids_skip_the_lookup(
    flow_env: FlowEnv, callerid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []
    real = flow_env.context.last_agent

    async def spy(number: str) -> str | None:
        looked_up.append(number)
        return await real(number)

    monkeypatch.setattr(flow_env.context, "last_agent", spy)
    result = await call(flow_env, callerid, ALL_FREE)
    assert result.route == FALLBACK
    assert looked_up == []
    # A long enough number does get looked up (the spy works).
    await call(flow_env, CALLER, ALL_FREE)
    assert looked_up == [CALLER]


def test_lookup_allowed() -> None:
    assert lookup_allowed("915550123", 6)
    assert lookup_allowed("+34 915 550 123", 6)
    assert not lookup_allowed("12345", 6)
    assert lookup_allowed("123456", 6)
    assert not lookup_allowed("anonymous", 1)
    assert not lookup_allowed("٩١٥٥٥٠١٢٣", 6)  # Arabic-Indic digits are not a trunk's number


async def test_sip_driver_names_the_device(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, lambda text: text.replace('sip_driver = "pjsip"', 'sip_driver = "sip"')
    )
    async for env in start_flow_env(settings):
        await fill(env, [record(CALLER, "1001")])
        result = await call(env, CALLER, {"SIP/1001": "NOT_INUSE", "PJSIP/1001": "INUSE"})
        assert result.route == "agent:1001"
        assert any("DEVICE_STATE(SIP/1001)" in c for c in result.commands)
