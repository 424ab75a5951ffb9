"""Every flow, the caller hanging up at every command index: nothing crashes, nothing
half-confirmed is stored."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import FlowEnv

from agi.testing import Caller, CallResult, place_call

SURVEY_VARS = {
    "CENTRALITA_CALLER": "34915550123",
    "CENTRALITA_CALL_ID": "1.1",
    "CENTRALITA_AGENT": "1001",
    "CENTRALITA_QUEUE": "support-en",
}


@dataclass
class Scenario:
    caller: Callable[[int | None], Caller]
    # The index of the command after which the flow's record is complete (None: none kept).
    commit_after: Callable[[CallResult], int | None]


def first_command(prefix: str) -> Callable[[CallResult], int | None]:
    def find(result: CallResult) -> int | None:
        return next(i for i, c in enumerate(result.commands) if c.startswith(prefix))

    return find


SCENARIOS = {
    "language": Scenario(
        lambda at: Caller(script="language", keys=[None, "9", None, "2"], hangup_at=at),
        lambda result: None,
    ),
    "callback": Scenario(
        lambda at: Caller(
            script="callback",
            args=["support-en"],
            keys=["600123456#", "1", "611111111#", "1"],
            hangup_at=at,
        ),
        first_command("GET DATA centralita/confirm-reenter"),
    ),
    # Without a CRM client the node's CRM answer is an error: the caller confirms the ID and
    # goes to the failure destination; nothing is stored by this flow.
    "customer-id": Scenario(
        lambda at: Caller(
            script="customer-id", args=["vip-check"], keys=["123456#", "1"], hangup_at=at
        ),
        lambda result: None,
    ),
    "manager": Scenario(
        lambda at: Caller(script="manager", callerid="+34915550123", hangup_at=at),
        lambda result: None,
    ),
    "survey": Scenario(
        lambda at: Caller(script="survey", keys=["2#", None], variables=SURVEY_VARS, hangup_at=at),
        first_command("GET DATA centralita/rate-call"),
    ),
}


async def stored(env: FlowEnv) -> int:
    return len(await env.store.list_callbacks()) + len(await env.store.list_ratings())


@pytest.mark.parametrize("flow", sorted(SCENARIOS))
async def test_hangup_at_every_command(
    flow_env: FlowEnv, flow: str, caplog: pytest.LogCaptureFixture
) -> None:
    scenario = SCENARIOS[flow]
    full = await place_call("127.0.0.1", flow_env.port, scenario.caller(None))
    assert full.route is not None and not full.caller_hung_up
    commit = scenario.commit_after(full)
    kept_before = await stored(flow_env)
    assert kept_before == (0 if commit is None else 1)
    for index in range(len(full.commands)):
        before = await stored(flow_env)
        result = await place_call("127.0.0.1", flow_env.port, scenario.caller(index))
        assert result.caller_hung_up, index
        assert result.closed_by_server and result.error is None, index
        kept = await stored(flow_env) - before
        expected = 1 if commit is not None and index > commit else 0
        assert kept == expected, (flow, index, result.commands)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
