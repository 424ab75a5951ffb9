"""The console and API attacks of the outside audit (issue 10), as regression tests.

Each test replays one attack against the real app on loopback (the fake AMI replays
asterisk-traces/ami-queue-sip-call.txt). In the demo config 1001 is the supervisor; 1002 and
1003 are plain agents.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
from test_web_support import TRACES, console_env

from ami.testing import load_trace, rewrite

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
# The recorded call, rewritten to ring 1002 (a plain agent) instead of 1001 (the supervisor).
CALL_1002 = rewrite(load_trace(QUEUE_TRACE), {"SIP/1001": "SIP/1002"})
UNIQUEID = "1795301086.1"  # the customer leg whose Cdr names the agent
LINKEDID = "1795301086.0"


async def _post(
    client: aiohttp.ClientSession, path: str, token: str, body: dict[str, object]
) -> tuple[int, dict[str, object]]:
    async with client.post(path, json=body, headers={"X-CSRF-Token": token}) as resp:
        return resp.status, await resp.json()


async def _calls(client: aiohttp.ClientSession) -> dict[str, object]:
    async with client.get("/api/calls") as resp:
        assert resp.status == 200
        body: dict[str, object] = await resp.json()
        return body


# ------------------------------------------------------------------ finding 1: outcomes


async def test_agent_cannot_write_an_outcome_on_another_agents_call(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.ami.replay_trace(CALL_1002)
        await env.drain()
        async with env.session() as owner, env.session() as intruder:
            owner_token = await env.login(owner, "1002")
            intruder_token = await env.login(intruder, "1003")
            attack = {"call_id": LINKEDID, "uniqueid": UNIQUEID, "outcome": "sale", "notes": "x"}
            status, body = await _post(intruder, "/api/outcomes", intruder_token, attack)
            assert status == 403, body
            status, body = await _post(
                intruder, "/api/outcomes", intruder_token, {**attack, "uniqueid": ""}
            )
            assert status == 403, body
            assert await env.store.get_outcomes(UNIQUEID) == []
            # The owner may, and their notes stay theirs.
            mine = {**attack, "notes": "private to 1002"}
            status, body = await _post(owner, "/api/outcomes", owner_token, mine)
            assert status == 200, body
            assert (await _calls(intruder))["total"] == 0
            async with intruder.get("/calls.csv") as resp:
                assert "private to 1002" not in await resp.text()
            owner_calls = await _calls(owner)
            assert owner_calls["total"] == 1


async def test_a_stored_foreign_outcome_neither_lists_the_call_nor_shows_to_the_owner(
    tmp_path: Path,
) -> None:
    # An outcome written before the check existed (or by a supervisor) must not make the
    # call appear in the other agent's list, nor show as the owner's outcome.
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.ami.replay_trace(CALL_1002)
        await env.drain()
        await env.store.save_outcome(
            call_id=UNIQUEID, agent="1003", outcome="sale", notes="intruder's note"
        )
        async with env.session() as owner, env.session() as intruder:
            await env.login(owner, "1002")
            await env.login(intruder, "1003")
            assert (await _calls(intruder))["total"] == 0
            calls = await _calls(owner)
            (call,) = calls["calls"]  # type: ignore[misc]
            assert call["outcome"] is None and call["notes"] is None
            async with owner.get("/calls") as resp:
                assert "intruder&#39;s note" not in await resp.text()
        async with env.session() as supervisor:
            await env.login(supervisor, "1001")
            every = (await _calls(supervisor))["calls"]
            notes = {c["uniqueid"]: c["notes"] for c in every}  # type: ignore[attr-defined]
            assert notes[UNIQUEID] == "intruder's note"  # supervisors see every outcome
