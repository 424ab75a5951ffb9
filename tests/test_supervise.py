"""The supervisors' actions (issue 12, point 2) against the real app, a real SQLite file and the
fake AMI on real sockets: pause, queue login/logout and listen-in reach Asterisk as
QueuePause, QueueAdd/QueueRemove and Originate, each is audited, and only supervisors may."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_web_support import TRACES, console_env, receive_type

from ami.testing import load_trace, rewrite
from centralita.keys import AGENT_STATES, AMI
from centralita.store.audit import AuditEntry
from dialplan.names import SPY_CONTEXT, SPY_TARGET_VAR

ROUTES = (
    ("/api/supervisor/agents/1002/pause", {"paused": True, "reason": "lunch"}),
    ("/api/supervisor/agents/1002/queues/support-fr", {"logged_in": True}),
    ("/api/supervisor/agents/1002/spy", {"mode": "listen"}),
)
# The recorded queue call (chan_sip), answered by 1002 (a plain agent) instead of 1001 (the
# supervisor), cut before it hangs up: 1002's channel is up and bridged.
CALL = rewrite(load_trace(TRACES / "ami-queue-sip-call.txt"), {"SIP/1001": "SIP/1002"})
TALKING = CALL[: next(i for i, m in enumerate(CALL) if m.name == "SoftHangupRequest")]
AGENT_CHANNEL = next(m.value("Channel") for m in CALL if m.value("Channel").startswith("SIP/1002"))


async def post(
    client: aiohttp.ClientSession, token: str, path: str, body: object
) -> tuple[int, Any]:
    async with client.post(path, json=body, headers={"X-CSRF-Token": token}) as resp:
        return resp.status, await resp.json()


def acted(env: Any) -> list[str]:
    """The actions that change something in Asterisk the fake received."""
    changing = {"queuepause", "queueadd", "queueremove", "originate"}
    return [a.name for a in env.ami.actions if a.name.lower() in changing]


async def audit(env: Any) -> list[AuditEntry]:
    """The audit log, oldest first."""
    return list(reversed(await env.store.list_audit()))


# ----------------------------------------------------------------------------- who may


@pytest.mark.parametrize("extension", ["1002", "1200"])  # an agent, quality staff
@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_a_member_who_is_not_a_supervisor_gets_403_on_each_route(
    tmp_path: Path, extension: str, path: str, body: dict[str, object]
) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.ami.replay_trace(TALKING)  # 1002 on a call: only the role stands in the way
        await env.drain()
        token = await env.login(client, extension)
        status, answer = await post(client, token, path, body)
        assert (status, answer["code"]) == (403, "not_supervisor")
        assert acted(env) == []
        assert await audit(env) == []


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_each_route_needs_a_session_and_the_csrf_token(
    tmp_path: Path, path: str, body: dict[str, object]
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        async with client.post(path, json=body) as resp:
            assert resp.status == 401
        await env.login(client, "1001")
        async with client.post(path, json=body) as resp:
            assert resp.status == 403  # no CSRF token
        assert await audit(env) == []


@pytest.mark.parametrize("supervisor", ["1001", "1100", "1101"])  # supervisor, ceo, admin
async def test_supervisor_and_admin_roles_may_act(tmp_path: Path, supervisor: str) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, supervisor)
        status, answer = await post(client, token, *ROUTES[0])
        assert (status, answer) == (200, {"ok": True})
        assert [(e.actor, e.action, e.subject) for e in await audit(env)] == [
            (supervisor, "supervisor.pause", "1002")
        ]


async def test_unknown_agents_and_queues_are_404(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        for path, body in ROUTES:
            status, answer = await post(client, token, path.replace("1002", "9999"), body)
            assert (status, answer["code"]) == (404, "unknown_agent"), path
        status, answer = await post(
            client, token, "/api/supervisor/agents/1002/queues/nope", {"logged_in": True}
        )
        assert (status, answer["code"]) == (404, "unknown_queue")
        status, answer = await post(
            client, token, ROUTES[0][0], {"paused": True, "reason": "lunch", "queue": "nope"}
        )
        assert (status, answer["code"]) == (404, "unknown_queue")
        assert acted(env) == []
        assert await audit(env) == []


async def test_every_action_is_503_while_asterisk_is_away(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        await env.ami.stop()
        listener = env.app[AMI]
        for _ in range(500):
            if not listener.connected:
                break
            await asyncio.sleep(0.01)
        assert listener.connected is False
        for path, body in ROUTES:
            status, answer = await post(client, token, path, body)
            assert (status, answer["code"]) == (503, "ami_down"), path
        assert await audit(env) == []


# ----------------------------------------------------------------------------- pause


async def test_pause_reaches_asterisk_as_queuepause_with_the_reason_and_is_audited(
    tmp_path: Path,
) -> None:
    async with console_env(tmp_path) as env, env.session() as boss, env.session() as agent:
        await env.wait_ami()
        token = await env.login(boss, "1001")
        await env.login(agent, "1002")
        async with agent.ws_connect("/ws") as ws:
            await receive_type(ws, "agent.state")
            status, answer = await post(
                boss, token, ROUTES[0][0], {"paused": True, "reason": "training"}
            )
            assert (status, answer) == (200, {"ok": True})
            (action,) = env.ami.actions_named("QueuePause")
            assert action.value("Interface") == "PJSIP/1002"
            assert action.value("Paused") == "true"
            assert action.value("Reason") == "training"
            assert "Queue" not in action  # every queue 1002 is in
            # The agent's own console hears it from Asterisk, as any pause.
            while True:
                state = await receive_type(ws, "agent.state")
                if state["paused"]:
                    break
            assert (state["extension"], state["reason"]) == ("1002", "training")
            assert env.app[AGENT_STATES].state("1002")["paused"] is True

        # Unpause in one queue only.
        status, _ = await post(boss, token, ROUTES[0][0], {"paused": False, "queue": "support-en"})
        assert status == 200
        second = env.ami.actions_named("QueuePause")[1]
        assert (second.value("Queue"), second.value("Paused")) == ("support-en", "false")
        assert "Reason" not in second
        rows = await audit(env)
        assert [(e.actor, e.action, e.subject) for e in rows] == [
            ("1001", "supervisor.pause", "1002"),
            ("1001", "supervisor.unpause", "1002"),
        ]
        assert json.loads(rows[0].changes) == {
            "paused": True,
            "reason": "training",
            "queue": None,
        }
        assert json.loads(rows[1].changes)["queue"] == "support-en"


async def test_a_pause_asterisk_refuses_is_409_and_audited(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        # 1100 (the CEO) is in no queue: app_queue answers "Interface not found".
        status, answer = await post(
            client, token, "/api/supervisor/agents/1100/pause", {"paused": True}
        )
        assert (status, answer["code"]) == (409, "not_member")
        (row,) = await audit(env)
        assert (row.action, row.subject) == ("supervisor.pause", "1100")
        assert json.loads(row.changes)["refused"] == "Interface not found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"paused": True, "reason": "nap"}, "reason"),
        ({"paused": "yes"}, "paused"),
        ({"paused": True, "reason": "lunch\r\nAction: Command"}, "reason"),
        ({"paused": True, "queue": 5}, "queue"),
    ],
)
async def test_bad_pause_bodies_are_400_and_reach_nothing(
    tmp_path: Path, body: dict[str, object], field: str
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        status, answer = await post(client, token, ROUTES[0][0], body)
        assert (status, answer["field"]) == (400, field)
        assert env.ami.actions_named("QueuePause") == []
        assert await audit(env) == []


# ----------------------------------------------------------------------------- queues


async def test_queue_login_and_logout_reach_asterisk_and_are_audited(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        path = "/api/supervisor/agents/1002/queues/support-fr"
        status, answer = await post(client, token, path, {"logged_in": True})
        assert (status, answer) == (200, {"ok": True})
        (add,) = env.ami.actions_named("QueueAdd")
        assert [(k, add.value(k)) for k in ("Queue", "Interface", "MemberName")] == [
            ("Queue", "support-fr"),
            ("Interface", "PJSIP/1002"),
            ("MemberName", "John Smith"),
        ]
        member = env.ami.queues.member("support-fr", "PJSIP/1002")
        assert member is not None and member.dynamic

        status, answer = await post(client, token, path, {"logged_in": False})
        assert (status, answer) == (200, {"ok": True})
        (remove,) = env.ami.actions_named("QueueRemove")
        assert (remove.value("Queue"), remove.value("Interface")) == ("support-fr", "PJSIP/1002")
        assert env.ami.queues.member("support-fr", "PJSIP/1002") is None

        # support-en is 1002's own queue (queues.conf `member =>`): Asterisk refuses.
        status, answer = await post(
            client, token, "/api/supervisor/agents/1002/queues/support-en", {"logged_in": False}
        )
        assert (status, answer["code"]) == (409, "static_member")
        assert "John Smith (1002) is a permanent member of support-en" in answer["error"]

        rows = await audit(env)
        assert [(e.action, e.subject, json.loads(e.changes)) for e in rows] == [
            ("supervisor.queue_login", "1002", {"queue": "support-fr", "logged_in": True}),
            ("supervisor.queue_logout", "1002", {"queue": "support-fr", "logged_in": False}),
            (
                "supervisor.queue_logout",
                "1002",
                {"queue": "support-en", "logged_in": False, "refused": "Member not dynamic"},
            ),
        ]


async def test_a_member_whose_role_takes_no_queue_calls_is_not_logged_in(
    tmp_path: Path,
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        status, answer = await post(
            client, token, "/api/supervisor/agents/1200/queues/support-en", {"logged_in": True}
        )
        assert (status, answer["code"]) == (409, "no_queue_calls")
        status, answer = await post(
            client, token, "/api/supervisor/agents/1002/queues/support-en", {"logged_in": "y"}
        )
        assert (status, answer["field"]) == (400, "logged_in")
        assert env.ami.actions_named("QueueAdd") == []


# ----------------------------------------------------------------------------- listen-in


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
async def test_spy_originates_to_the_supervisors_phone_into_the_spy_context(
    tmp_path: Path, mode: str
) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.ami.replay_trace(TALKING)
        await env.drain()
        token = await env.login(client, "1001")
        status, answer = await post(client, token, ROUTES[2][0], {"mode": mode})
        assert (status, answer) == (200, {"ok": True, "channel": AGENT_CHANNEL})
        (action,) = env.ami.actions_named("Originate")
        assert action.value("Channel") == "SIP/1001"  # the supervisor's own phone
        assert action.value("Context") == SPY_CONTEXT
        assert action.value("Exten") == mode
        assert action.value("Priority") == "1"
        assert action.get_all("Variable") == [f"{SPY_TARGET_VAR}={AGENT_CHANNEL}"]
        assert AGENT_CHANNEL.startswith("SIP/1002-")
        (row,) = await audit(env)
        assert (row.actor, row.action, row.subject) == ("1001", f"supervisor.{mode}", "1002")
        assert json.loads(row.changes) == {
            "mode": mode,
            "channel": AGENT_CHANNEL,
            "phone": "SIP/1001",
        }


async def test_spy_on_an_agent_without_a_call_is_409_no_call(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        status, answer = await post(client, token, ROUTES[2][0], {"mode": "listen"})
        assert (status, answer["code"]) == (409, "no_call")
        # Once the call ended, there is nothing to listen to either.
        await env.ami.replay_trace(CALL)
        await env.drain()
        status, answer = await post(client, token, ROUTES[2][0], {"mode": "listen"})
        assert (status, answer["code"]) == (409, "no_call")
        assert env.ami.actions_named("Originate") == []
        assert await audit(env) == []


async def test_spy_refuses_bad_modes_and_own_calls(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.ami.replay_trace(TALKING)
        await env.drain()
        token = await env.login(client, "1001")
        for mode in ("q", "listen,qw", "Listen", None, "barge\r\nAction: Command"):
            status, answer = await post(client, token, ROUTES[2][0], {"mode": mode})
            assert (status, answer["field"]) == (400, "mode"), mode
        status, answer = await post(
            client, token, "/api/supervisor/agents/1001/spy", {"mode": "listen"}
        )
        assert (status, answer["code"]) == (400, "own_call")
        assert env.ami.actions_named("Originate") == []


async def test_spy_needs_the_supervisors_phone_registered(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.ami.replay_trace(TALKING)
        await env.ami.push_events(
            [
                [
                    ("Event", "DeviceStateChange"),
                    ("Privilege", "call,all"),
                    ("Device", "SIP/1001"),
                    ("State", "UNAVAILABLE"),
                ]
            ]
        )
        await env.drain()
        token = await env.login(client, "1001")
        status, answer = await post(client, token, ROUTES[2][0], {"mode": "listen"})
        assert (status, answer["code"]) == (409, "no_phone")
        assert "SIP/1001" in answer["error"]
        assert env.ami.actions_named("Originate") == []


async def test_a_spy_call_the_supervisor_does_not_answer_is_409_and_audited(
    tmp_path: Path,
) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.ami.replay_trace(TALKING)
        await env.drain()
        env.ami.originate_result = ("Failure", 3)  # no answer
        token = await env.login(client, "1001")
        status, answer = await post(client, token, ROUTES[2][0], {"mode": "barge"})
        assert (status, answer["code"]) == (409, "not_answered")
        (row,) = await audit(env)
        assert row.action == "supervisor.barge"
        assert json.loads(row.changes)["refused"] == "no answer"


async def test_a_spy_whose_ami_link_drops_before_the_answer_is_503(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True, ami_delay=30.0) as env, env.session() as client:
        await env.wait_ami()
        await env.ami.replay_trace(TALKING)
        await env.drain()
        token = await env.login(client, "1001")
        spying = asyncio.create_task(post(client, token, ROUTES[2][0], {"mode": "whisper"}))
        await env.ami.wait_for_action("Originate")
        await env.ami.drop_connections()  # before the OriginateResponse
        status, answer = await spying
        assert (status, answer["code"]) == (503, "ami_down")
        (row,) = await audit(env)
        assert row.action == "supervisor.whisper"
        assert json.loads(row.changes)["refused"]
