"""Several Asterisk servers (`[[asterisk]]`): the real app following two fake AMIs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from asterisks_support import two_env
from test_web_support import TRACES, receive_json

from agi.flows.context import SurveyRequest
from ami.testing import load_trace, rewrite
from centralita.keys import AGENT_STATES, FLOW_CONTEXT

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
# The trace's call, as server a would carry another one: other Uniqueids and Linkedid.
ON_A = {"1795301086.": "1795309999."}


async def test_pops_and_call_records_come_from_both_servers(tmp_path: Path) -> None:
    async with two_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.login(client, "1001")
        async with client.ws_connect("/ws") as ws:
            await env.wait_sockets("1001")
            await env.ami_b.replay_trace(QUEUE_TRACE)
            from_b = [await receive_json(ws) for _ in range(3)]
            await env.ami.replay_trace(rewrite(load_trace(QUEUE_TRACE), ON_A))
            from_a = [await receive_json(ws) for _ in range(3)]
        await env.drain()
        assert [m["type"] for m in from_b] == [m["type"] for m in from_a]
        assert {m["call_id"] for m in from_b} == {"1795301086.0"}
        assert {m["call_id"] for m in from_a} == {"1795309999.0"}
        # Each server's two Cdr events, stored once each.
        assert await env.store.count_cdrs() == 4


async def test_healthz_and_metrics_show_each_server(tmp_path: Path) -> None:
    async with two_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        async with client.get("/healthz") as resp:
            ami = (await resp.json())["ami"]
        assert ami["connected"] is True
        assert [(s["name"], s["connected"]) for s in ami["servers"]] == [("a", True), ("b", True)]
        assert ami["servers"][1]["port"] == env.ami_b.port
        await env.stop_b()
        async with client.get("/healthz") as resp:
            ami = (await resp.json())["ami"]
        assert ami["connected"] is False
        down = ami["servers"][1]
        assert (down["name"], down["connected"]) == ("b", False)
        assert down["error"]
        assert ami["servers"][0]["connected"] is True
        async with client.get("/metrics") as resp:
            text = await resp.text()
        assert 'centralita_asterisk_connected{server="a"} 1.0' in text
        assert 'centralita_asterisk_connected{server="b"} 0.0' in text
        assert "centralita_ami_connected 0.0" in text


async def dial(
    client: aiohttp.ClientSession, token: str, number: str = "5550001"
) -> tuple[int, dict[str, Any]]:
    async with client.post(
        "/api/dial", json={"number": number}, headers={"X-CSRF-Token": token}
    ) as resp:
        return resp.status, await resp.json()


async def test_click_to_dial_goes_where_the_phone_is_registered(tmp_path: Path) -> None:
    async with two_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1002")
        await env.device_state(env.ami, "a", "PJSIP/1002", "UNAVAILABLE")
        await env.device_state(env.ami_b, "b", "PJSIP/1002", "NOT_INUSE")
        status, body = await dial(client, token)
        assert status == 200, body
        assert env.ami.actions_named("Originate") == []
        (originate,) = env.ami_b.actions_named("Originate")
        assert originate.value("Channel") == "PJSIP/1002"

        # The phone moved to a: the next dial goes there.
        await env.device_state(env.ami_b, "b", "PJSIP/1002", "UNAVAILABLE")
        await env.device_state(env.ami, "a", "PJSIP/1002", "NOT_INUSE")
        await asyncio.sleep(0.2)  # the first call's pop ended
        status, body = await dial(client, token)
        assert status == 200, body
        assert len(env.ami.actions_named("Originate")) == 1
        assert len(env.ami_b.actions_named("Originate")) == 1

        # Registered nowhere: a clear 409, and nothing reaches either Asterisk.
        await env.device_state(env.ami, "a", "PJSIP/1002", "UNAVAILABLE")
        status, body = await dial(client, token)
        assert (status, body["code"]) == (409, "not_registered"), body
        assert "PJSIP/1002" in body["error"]

        # Not registered on a, and b (where it may be) unreachable: 503.
        await env.stop_b()
        status, body = await dial(client, token)
        assert (status, body["code"]) == (503, "not_registered"), body
        assert "not connected: b" in body["error"]
        assert len(env.ami.actions_named("Originate")) == 1


async def test_calling_a_callback_back_is_routed_too(tmp_path: Path) -> None:
    async with two_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        callback = await env.store.add_callback(
            callerid="+34915550123",
            language="en",
            queue="support-en",
            number="+34915550123",
            alternative="",
            uniqueid="1795301086.0",
        )
        await env.store.assign_callback(callback.id, "1001")
        url = f"/api/callbacks/{callback.id}/call"
        headers = {"X-CSRF-Token": token}
        async with client.post(url, json={"which": "number"}, headers=headers) as resp:
            body = await resp.json()
        assert (resp.status, body["code"]) == (409, "not_registered"), body
        await env.device_state(env.ami_b, "b", "PJSIP/1001", "NOT_INUSE")
        async with client.post(url, json={"which": "number"}, headers=headers) as resp:
            body = await resp.json()
        assert resp.status == 200, body
        assert len(env.ami_b.actions_named("Originate")) == 1
        assert env.ami.actions_named("Originate") == []


async def test_agents_of_one_server_need_no_registration_and_queue_actions_follow(
    tmp_path: Path,
) -> None:
    agents = (["1001", "1002", "1100", "1101", "1200"], ["1003"])
    async with two_env(tmp_path, agents=agents) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1003")
        headers = {"X-CSRF-Token": token}
        # 1003 lives on b only: the dial goes there without any device state known.
        status, body = await dial(client, token)
        assert status == 200, body
        assert len(env.ami_b.actions_named("Originate")) == 1
        assert env.ami.actions_named("Originate") == []
        # Pause and queue login go to b, never to a.
        async with client.post(
            "/api/me/pause", json={"paused": True, "reason": "break"}, headers=headers
        ) as resp:
            assert resp.status == 200, await resp.text()
        async with client.post(
            "/api/me/queues/support-ar", json={"member": True}, headers=headers
        ) as resp:
            assert resp.status == 200, await resp.text()
        assert len(env.ami_b.actions_named("QueuePause")) == 1
        assert len(env.ami_b.actions_named("QueueAdd")) == 1
        assert env.ami.actions_named("QueuePause") == []
        assert env.ami.actions_named("QueueAdd") == []
        # b away: 503 ami_down for 1003, and a is not asked instead.
        await env.stop_b()
        async with client.post("/api/me/pause", json={"paused": False}, headers=headers) as resp:
            assert (resp.status, (await resp.json())["code"]) == (503, "ami_down")
        status, body = await dial(client, token)
        assert (status, body["code"]) == (503, "ami_down")
        assert env.ami.actions_named("QueuePause") == []


async def test_pause_goes_to_every_server_hosting_the_agent(tmp_path: Path) -> None:
    async with two_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        async with client.post(
            "/api/me/pause",
            json={"paused": True, "reason": "lunch"},
            headers={"X-CSRF-Token": token},
        ) as resp:
            assert resp.status == 200, await resp.text()
        for fake in (env.ami, env.ami_b):
            (pause,) = fake.actions_named("QueuePause")
            assert pause.value("Interface") == "PJSIP/1001"
            assert pause.value("Reason") == "lunch"


async def test_a_reconnect_of_one_server_keeps_the_agent_states_of_the_other(
    tmp_path: Path,
) -> None:
    agents = (["1001", "1002", "1100", "1101", "1200"], ["1003"])
    async with two_env(tmp_path, agents=agents) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1003")
        async with client.post(
            "/api/me/pause",
            json={"paused": True, "reason": "training"},
            headers={"X-CSRF-Token": token},
        ) as resp:
            assert resp.status == 200, await resp.text()
        states = env.app[AGENT_STATES]
        for _ in range(500):
            if states.state("1003")["paused"]:
                break
            await asyncio.sleep(0.01)
        assert states.state("1003")["paused"] is True
        # a drops and comes back: its QueueStatus must not wipe b's paused agent.
        before = len(env.ami_b.actions_named("QueueStatus"))
        await env.ami.drop_connections()
        await env.ami.wait_for_sessions(1)
        await env.link("a").listener.wait_connected(10.0)
        for _ in range(500):
            if len(env.ami_b.actions_named("QueueStatus")) > before:
                break
            await asyncio.sleep(0.01)
        # b was asked again (its list of now, not of its own login), and 1003 stays paused.
        assert len(env.ami_b.actions_named("QueueStatus")) > before
        await env.drain()
        assert states.state("1003")["paused"] is True
        assert states.state("1003")["reason"] == "training"


async def test_survey_call_file_goes_to_the_spool_of_the_carrying_server(
    tmp_path: Path,
) -> None:
    async with two_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.ami_b.replay_trace(QUEUE_TRACE)
        await env.ami.replay_trace(rewrite(load_trace(QUEUE_TRACE), ON_A))
        await env.drain()
        context = env.app[FLOW_CONTEXT]

        def request(uniqueid: str, call_id: str) -> SurveyRequest:
            return SurveyRequest(
                callerid="+34915550123",
                call_id=call_id,
                agent="1001",
                queue="support-en",
                language="en",
                uniqueid=uniqueid,
            )

        spool_a = tmp_path / "data" / "spool-a" / "outgoing"
        spool_b = tmp_path / "data" / "spool-b" / "outgoing"

        def files(folder: Path) -> list[Path]:
            return sorted(folder.glob("*.call")) if folder.is_dir() else []

        # The caller's channel of b's call (hung up by now: the tracker remembers it).
        assert await context.schedule_survey(request("1795301086.0", "1795301086.0"))
        assert len(files(spool_b)) == 1 and files(spool_a) == []
        assert "1795301086.0" in files(spool_b)[0].read_text()
        # a's call, known by its Linkedid only.
        assert await context.schedule_survey(request("", "1795309999.0"))
        assert len(files(spool_a)) == 1 and len(files(spool_b)) == 1
        # A call neither server's AMI saw: the first server's spool.
        assert await context.schedule_survey(request("1.2", "1.2"))
        assert len(files(spool_a)) == 2 and len(files(spool_b)) == 1


# Agent 1002 talking on a call (the queue trace as 1002's), for listen-in.
CALL_1002 = rewrite(load_trace(QUEUE_TRACE), {"SIP/1001": "SIP/1002"})
TALKING_1002 = CALL_1002[
    : next(i for i, m in enumerate(CALL_1002) if m.name == "SoftHangupRequest")
]


async def test_listen_in_rings_the_supervisor_on_the_server_carrying_the_call(
    tmp_path: Path,
) -> None:
    async with two_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.ami_b.replay_trace(TALKING_1002)
        await env.drain()
        token = await env.login(client, "1001")  # a supervisor in the demo
        path = "/api/supervisor/agents/1002/spy"
        headers = {"X-CSRF-Token": token}
        # The supervisor's phone is registered on a only: b carries the call, so no.
        await env.device_state(env.ami, "a", "SIP/1001", "NOT_INUSE")
        async with client.post(path, json={"mode": "listen"}, headers=headers) as resp:
            body = await resp.json()
        assert (resp.status, body["code"]) == (409, "no_phone"), body
        assert "on 'b', which carries the call" in body["error"]
        # Registered on b too: the Originate goes to b, into the spy context.
        await env.device_state(env.ami_b, "b", "SIP/1001", "NOT_INUSE")
        async with client.post(path, json={"mode": "listen"}, headers=headers) as resp:
            body = await resp.json()
        assert resp.status == 200, body
        (originate,) = env.ami_b.actions_named("Originate")
        assert originate.value("Channel") == "SIP/1001"
        assert body["channel"].startswith("SIP/1002-")
        assert env.ami.actions_named("Originate") == []
