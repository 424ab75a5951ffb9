"""The agent desktop's API (issue 11) against the real app, a real SQLite file and the fake
AMI on real sockets: /api/me, preferences, pause, queue login/logout, history, numbers,
outcomes from /calls, and the agent state mirrored from AMI onto the agent's socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_web_support import (
    TRACES,
    console_env,
    receive_json,
    receive_type,
)

from ami.cdr import CallRecord
from ami.fake_queues import FakeMember
from ami.testing import load_trace, rewrite
from centralita.keys import BRIDGE

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
CALLER = "+34915550123"
# The recorded call, ringing 1002 (a plain agent) instead of 1001 (the supervisor).
CALL_1002 = rewrite(load_trace(QUEUE_TRACE), {"SIP/1001": "SIP/1002"})


async def post(
    client: aiohttp.ClientSession, token: str, path: str, body: object
) -> tuple[int, Any]:
    async with client.post(path, json=body, headers={"X-CSRF-Token": token}) as resp:
        return resp.status, await resp.json()


async def get(client: aiohttp.ClientSession, path: str, **params: str) -> tuple[int, Any]:
    async with client.get(path, params=params) as resp:
        return resp.status, await resp.json()


async def state_until(
    ws: aiohttp.ClientWebSocketResponse, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first `agent.state` on `ws` for which `predicate` holds (app_queue sends one
    event per queue, so a change in every queue may come as several messages)."""
    while True:
        state: dict[str, Any] = await receive_type(ws, "agent.state")
        if predicate(state):
            return state


def statuses(state: dict[str, Any]) -> set[str]:
    return {q["status"] for q in state["queues"] if q["member"]}


# ------------------------------------------------------------------------------ /api/me


async def test_me_describes_the_agent_and_follows_preferences(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1003")
        status, me = await get(client, "/api/me")
        assert status == 200
        assert me["extension"] == "1003"
        assert me["name"] == "Élodie Martin"
        assert (me["language"], me["ui_language"]) == ("fr", "fr")
        assert me["alerts"] == {"sound": True, "notification": True, "title": True}
        assert me["pause_reasons"] == ["break", "lunch", "training", "meeting"]
        assert me["dispositions"] == ["sale", "support", "no-interest", "call-back"]
        # Own queues (static members) first, then the [console] login_queues.
        assert me["queues"] == ["support-fr", "support-en", "support-ar"]
        assert me["supervisor"] is False
        assert me["asterisk"] == {"connected": True}
        state = me["state"]
        assert state["type"] == "agent.state" and state["extension"] == "1003"
        assert [(q["queue"], q["member"], q["dynamic"], q["status"]) for q in state["queues"]] == [
            ("support-fr", True, False, "idle"),
            ("support-en", True, False, "idle"),
            ("support-ar", False, False, "out"),
        ]

        status, me = await post(
            client,
            token,
            "/api/me/preferences",
            {"ui_language": "ar", "alerts": {"sound": False}},
        )
        assert status == 200
        assert me["ui_language"] == "ar"
        assert me["alerts"] == {"sound": False, "notification": True, "title": True}

    # Stored in the database: another browser (and a restart) sees the same choice.
    async with console_env(tmp_path) as env, env.session() as other:
        await env.login(other, "1003")
        status, me = await get(other, "/api/me")
        assert (me["ui_language"], me["alerts"]["sound"]) == ("ar", False)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ui_language": "de"}, "ui_language"),
        ({"ui_language": 3}, "ui_language"),
        ({"alerts": {"sound": "no"}}, "alerts.sound"),
        ({"alerts": {"siren": True}}, "alerts.siren"),
        ({"alerts": []}, "alerts"),
        ({"theme": "dark"}, "theme"),
    ],
)
async def test_bad_preferences_are_refused_naming_the_field_and_nothing_changes(
    tmp_path: Path, body: dict[str, object], field: str
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        token = await env.login(client, "1001")
        status, _ = await post(client, token, "/api/me/preferences", {"ui_language": "fr"})
        assert status == 200
        status, answer = await post(client, token, "/api/me/preferences", body)
        assert status == 400
        assert (answer["field"], answer["code"]) == (field, "bad_preference")
        _, me = await get(client, "/api/me")
        assert me["ui_language"] == "fr"
        assert me["alerts"] == {"sound": True, "notification": True, "title": True}


async def test_agent_api_needs_a_session_and_the_csrf_token(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        for path in ("/api/me", "/api/history?number=1", "/api/numbers/normalize?number=1"):
            async with client.get(path) as resp:
                assert resp.status == 401, path
        await env.login(client, "1001")
        for path in ("/api/me/pause", "/api/me/queues/support-en", "/api/me/preferences"):
            async with client.post(path, json={"paused": True, "member": True}) as resp:
                assert resp.status == 403, path  # no CSRF token
        await env.wait_ami()
        assert env.ami.actions_named("QueuePause") == []
        assert env.ami.actions_named("QueueAdd") == []


# ------------------------------------------------------------------------------ pause


async def test_pause_goes_to_asterisk_and_the_state_comes_back_on_the_socket(
    tmp_path: Path,
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        async with client.ws_connect("/ws") as ws:
            link = await receive_type(ws, "link.asterisk")
            assert link == {"type": "link.asterisk", "connected": True}
            first = await receive_type(ws, "agent.state")
            assert first["paused"] is False
            status, body = await post(
                client, token, "/api/me/pause", {"paused": True, "reason": "lunch"}
            )
            assert (status, body) == (200, {"ok": True})
            action = env.ami.actions_named("QueuePause")[0]
            assert action.value("Interface") == "PJSIP/1001"
            assert action.value("Paused") == "true"
            assert action.value("Reason") == "lunch"
            assert "Queue" not in action  # every queue the agent is in
            state = await state_until(ws, lambda s: s["paused"])
            assert (state["paused"], state["reason"]) == (True, "lunch")
            assert state["since"] >= first["since"]
            assert {(q["queue"], q["paused"], q["reason"]) for q in state["queues"]} >= {
                ("support-ar", True, "lunch"),
                ("support-en", True, "lunch"),
            }
            # Ready again: no reason sent, none shown.
            status, _ = await post(client, token, "/api/me/pause", {"paused": False})
            assert status == 200
            assert "Reason" not in env.ami.actions_named("QueuePause")[1]
            state = await state_until(ws, lambda s: not any(q["paused"] for q in s["queues"]))
            assert (state["paused"], state["reason"]) == (False, "")


async def test_a_pause_made_elsewhere_shows_on_the_agents_socket_only(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as a, env.session() as b:
        await env.wait_ami()
        await env.login(a, "1002")
        await env.login(b, "1003")
        async with a.ws_connect("/ws") as ws_a, b.ws_connect("/ws") as ws_b:
            await receive_type(ws_a, "agent.state")
            await receive_type(ws_b, "agent.state")
            # The supervisor (or the phone's feature code) pauses 1002 in Asterisk.
            queue = env.ami.queues.queue("support-en")
            assert queue is not None
            member = queue.find("PJSIP/1002")
            assert member is not None
            member.paused, member.reason = True, "training"
            await env.ami.push_events(
                [env.ami.queues.member_event("QueueMemberPause", queue, member)]
            )
            state = await receive_type(ws_a, "agent.state")
            assert (state["extension"], state["paused"], state["reason"]) == (
                "1002",
                True,
                "training",
            )
            # 1003 hears nothing about 1002: the next thing on its socket is its own state.
            await env.ami.push_events(
                env.ami.queues.set_status("PJSIP/1003", 6)  # ringing
            )
            other = await state_until(ws_b, lambda s: statuses(s) == {"ringing"})
            assert other["extension"] == "1003" and other["paused"] is False


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"paused": True, "reason": "nap"}, "reason", "bad_reason"),
        ({"paused": True, "reason": 5}, "reason", "bad_reason"),
        ({"paused": "yes", "reason": "lunch"}, "paused", "bad_field"),
        ({"reason": "lunch"}, "paused", "bad_field"),
        ({"paused": True, "reason": "lunch\r\nAction: Command"}, "reason", "bad_reason"),
    ],
)
async def test_bad_pause_requests_are_refused_and_nothing_reaches_asterisk(
    tmp_path: Path, body: dict[str, object], field: str, code: str
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        status, answer = await post(client, token, "/api/me/pause", body)
        assert status == 400
        assert (answer["field"], answer["code"]) == (field, code)
        assert env.ami.actions_named("QueuePause") == []


async def test_pause_while_asterisk_is_away_is_503(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        await env.ami.stop()
        for _ in range(200):
            _, me = await get(client, "/api/me")
            if not me["asterisk"]["connected"]:
                break
            await asyncio.sleep(0.02)
        assert me["asterisk"]["connected"] is False
        status, answer = await post(client, token, "/api/me/pause", {"paused": True})
        assert (status, answer["code"]) == (503, "ami_down")
        status, answer = await post(client, token, "/api/me/queues/support-fr", {"member": True})
        assert (status, answer["code"]) == (503, "ami_down")


async def test_pause_of_an_agent_in_no_queue_is_asterisks_refusal(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        env.ami.queues.queues.clear()  # Asterisk lost its queues (a bad reload)
        token = await env.login(client, "1002")
        status, answer = await post(client, token, "/api/me/pause", {"paused": True})
        assert (status, answer["code"]) == (409, "not_member")
        assert "Interface not found" in answer["error"]


# ------------------------------------------------------------------------------ queues


async def test_queue_login_and_logout_are_dynamic_members(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1002")
        async with client.ws_connect("/ws") as ws:
            state = await receive_type(ws, "agent.state")
            fr = next(q for q in state["queues"] if q["queue"] == "support-fr")
            assert (fr["member"], fr["status"]) == (False, "out")
            status, body = await post(client, token, "/api/me/queues/support-fr", {"member": True})
            assert (status, body) == (200, {"ok": True})
            add = env.ami.actions_named("QueueAdd")[0]
            assert dict(add.headers[1:]) | {"ActionID": ""} == {
                "ActionID": "",
                "Queue": "support-fr",
                "Interface": "PJSIP/1002",
                "MemberName": "John Smith",
                "StateInterface": "PJSIP/1002",
            }
            state = await receive_type(ws, "agent.state")
            fr = next(q for q in state["queues"] if q["queue"] == "support-fr")
            assert (fr["member"], fr["dynamic"], fr["status"]) == (True, True, "idle")

            # Twice: Asterisk says it is already there, and so do we.
            status, body = await post(client, token, "/api/me/queues/support-fr", {"member": True})
            assert (status, body["code"]) == (409, "already_member")

            status, _ = await post(client, token, "/api/me/queues/support-fr", {"member": False})
            assert status == 200
            remove = env.ami.actions_named("QueueRemove")[0]
            assert (remove.value("Queue"), remove.value("Interface")) == (
                "support-fr",
                "PJSIP/1002",
            )
            state = await receive_type(ws, "agent.state")
            fr = next(q for q in state["queues"] if q["queue"] == "support-fr")
            assert (fr["member"], fr["status"]) == (False, "out")


async def test_an_agents_own_queue_is_static_and_cannot_be_left(tmp_path: Path) -> None:
    # queues.conf lists 1002 in support-en (`member =>`): app_queue answers QueueRemove with
    # "Member not dynamic" (manager_remove_queue_member), and the agent stays in.
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1002")
        status, body = await post(client, token, "/api/me/queues/support-en", {"member": False})
        assert (status, body["code"]) == (409, "static_member")
        assert "queues.conf" in body["error"]
        assert env.ami.queues.member("support-en", "PJSIP/1002") is not None
        _, me = await get(client, "/api/me")
        en = next(q for q in me["state"]["queues"] if q["queue"] == "support-en")
        assert (en["member"], en["dynamic"]) == (True, False)


async def test_unknown_queue_and_bad_member_are_refused(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1002")
        status, body = await post(client, token, "/api/me/queues/nope", {"member": True})
        assert (status, body["code"]) == (404, "unknown_queue")
        status, body = await post(client, token, "/api/me/queues/support-en", {"member": "yes"})
        assert (status, body["field"]) == (400, "member")
        assert env.ami.actions_named("QueueAdd") == []


async def test_queue_not_in_login_queues_is_forbidden(tmp_path: Path) -> None:
    async with (
        console_env(
            tmp_path,
            edit=lambda t: t.replace(
                'login_queues = ["support-ar", "support-en", "support-fr"]',
                'login_queues = ["support-en"]',
            ),
        ) as env,
        env.session() as client,
    ):
        await env.wait_ami()
        token = await env.login(client, "1002")
        status, body = await post(client, token, "/api/me/queues/support-fr", {"member": True})
        assert (status, body["code"]) == (403, "queue_not_allowed")
        assert env.ami.actions_named("QueueAdd") == []


# ------------------------------------------------------------------------------ state mirror


async def test_reconnect_rebuilds_the_state_from_queuestatus(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        await env.login(client, "1001")
        async with client.ws_connect("/ws") as ws:
            state = await receive_type(ws, "agent.state")
            assert state["paused"] is False
            # While the link is down, 1001 is paused on the phone and added to support-fr:
            # no event reaches Centralita, only the QueueStatus after the reconnect.
            await env.ami.drop_connections()
            link = await receive_type(ws, "link.asterisk")
            assert link["connected"] is False
            for queue in env.ami.queues.queues.values():
                member = queue.find("PJSIP/1001")
                if member is not None:
                    member.paused, member.reason = True, "meeting"
            fr = env.ami.queues.queue("support-fr")
            assert fr is not None
            fr.members["pjsip/1001"] = FakeMember(
                "PJSIP/1001", "Amira Haddad", "PJSIP/1001", dynamic=True
            )
            asked_before = len(env.ami.actions_named("QueueStatus"))
            state = await receive_type(ws, "agent.state")
            assert len(env.ami.actions_named("QueueStatus")) > asked_before
            assert (state["paused"], state["reason"]) == (False, "")  # paused in 2 of 3
            queues = {q["queue"]: q for q in state["queues"]}
            assert queues["support-fr"]["member"] and queues["support-fr"]["dynamic"]
            assert queues["support-en"]["paused"] and queues["support-en"]["reason"] == "meeting"
            link = await receive_type(ws, "link.asterisk")
            assert link["connected"] is True


async def test_wrapup_after_a_call_uses_the_queues_wrapuptime(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text.replace("wrapup_s = 0 ", "wrapup_s = 30", 1)  # support-ar's

    async with console_env(tmp_path, edit=edit) as env, env.session() as client:
        await env.wait_ami()
        await env.login(client, "1001")
        async with client.ws_connect("/ws") as ws:
            await receive_type(ws, "agent.state")
            await env.ami.push_events(env.ami.queues.set_status("PJSIP/1001", 2, in_call=True))
            state = await state_until(ws, lambda s: statuses(s) == {"in_call"})
            assert state["wrapup_until"] is None
            await env.ami.push_events(env.ami.queues.set_status("PJSIP/1001", 1, call_ended=True))
            state = await state_until(ws, lambda s: "in_call" not in statuses(s))
            queues = {q["queue"]: q["status"] for q in state["queues"]}
            # support-ar has wrapup_s = 30 in this config; support-en has none.
            assert queues["support-ar"] == "wrapup"
            assert queues["support-en"] == "idle"
            member = env.ami.queues.member("support-ar", "PJSIP/1001")
            assert member is not None
            assert state["wrapup_until"] == member.last_call + 30


# ------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    ("typed", "number"),
    [
        ("+212 522-000 111", "+212522000111"),
        ("(0)91 555 01 23", "915550123"),
        ("0034 915 550 123", "+34915550123"),
        ("91 555 01 23", "915550123"),  # without a country code: as a phone here dials it
        ("600111222", "600111222"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("555-0001", "5550001"),
        ("1002", "1002"),
    ],
)
async def test_pasted_numbers_are_cleaned_for_the_dial_box(
    tmp_path: Path, typed: str, number: str
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1002")
        status, body = await get(client, "/api/numbers/normalize", number=typed)
        assert status == 200
        assert body["number"] == number
        assert body["display"]
        status, body = await post(client, token, "/api/dial", {"number": typed})
        assert status == 200, body
        assert body["number"] == number
        (action,) = env.ami.actions_named("Originate")
        assert action.value("Exten") == number


@pytest.mark.parametrize(
    "typed", ["call me", "+34 91 ABC", "12", "+", "+1234", "91\n555", "555,1", "55+5"]
)
async def test_what_is_not_a_number_is_refused_with_a_message(tmp_path: Path, typed: str) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1002")
        status, body = await get(client, "/api/numbers/normalize", number=typed)
        assert status == 400
        assert (body["field"], body["code"]) == ("number", "bad_number")
        assert body["error"]
        status, body = await post(client, token, "/api/dial", {"number": typed})
        assert (status, body["field"]) == (400, "number")
        assert env.ami.actions_named("Originate") == []


# ------------------------------------------------------------------------------ history


def _cdr(uid: str, start: str, agent: str, src: str = CALLER) -> CallRecord:
    begin = datetime.fromisoformat(start)
    return CallRecord(
        uniqueid=uid,
        linkedid=uid,
        src=src,
        dst="300",
        dcontext="centralita-queue",
        clid=f'"Bob" <{src}>',
        channel=f"SIP/trunk-{uid}",
        dstchannel=f"PJSIP/{agent}-00000001" if agent else "",
        lastapp="Queue",
        start=begin,
        answer=begin if agent else None,
        end=begin,
        duration=95,
        billsec=90 if agent else 0,
        disposition="ANSWERED" if agent else "NO ANSWER",
    )


async def seed_history(env: Any) -> None:
    store = env.store
    await store.upsert_cdr(_cdr("1795000001.1", "2026-11-20 10:00:00", "1002"))
    await store.upsert_cdr(_cdr("1795000002.1", "2026-11-21 11:00:00", "1003"))
    await store.upsert_cdr(_cdr("1795000003.1", "2026-11-22 12:00:00", ""))
    await store.upsert_cdr(_cdr("1795000004.1", "2026-11-23 12:00:00", "1003", "+212600000000"))
    await store.save_outcome(
        call_id="1795000001.1", agent="1002", outcome="sale", notes="wants the blue one"
    )
    await store.save_outcome(
        call_id="1795000002.1", agent="1003", outcome="support", notes="router reset"
    )
    await store.add_callback(
        callerid=CALLER,
        language="es",
        queue="support-en",
        number="915550123",
        alternative="600111222",
        uniqueid="1795000005.1",
    )


async def test_history_notes_are_private_to_the_agent_who_took_the_call(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as agent, env.session() as boss:
        await seed_history(env)
        await env.login(agent, "1002")
        await env.login(boss, "1001")  # the supervisor
        status, body = await get(agent, "/api/history", number="0034 915 550 123")
        assert status == 200
        calls = body["calls"]
        assert [c["uniqueid"] for c in calls] == ["1795000003.1", "1795000002.1", "1795000001.1"]
        assert [c["agent"] for c in calls] == ["", "1003", "1002"]
        assert [c["agent_name"] for c in calls] == ["", "Élodie Martin", "John Smith"]
        assert [c["outcome"] for c in calls] == ["", "support", "sale"]
        # 1002 reads the notes of the call 1002 took, not those of 1003's.
        assert [c["notes"] for c in calls] == [None, None, "wants the blue one"]
        assert calls[2]["start"].startswith("2026-11-20T10:00:00")
        assert calls[2]["duration"] == 90 and calls[2]["direction"] == "in"
        assert body["callback"]["number"] == "915550123"
        assert body["callback"]["alt_number"] == "600111222"

        _, body = await get(boss, "/api/history", number=CALLER, limit="2")
        assert [c["notes"] for c in body["calls"]] == ["", "router reset"]

        _, body = await get(agent, "/api/history", number="anonymous")
        assert body == {"calls": [], "callback": None}
        for params in ({"number": ""}, {"number": CALLER, "limit": "0"}, {"limit": "5"}):
            status, body = await get(agent, "/api/history", **params)
            assert status == 400 and body["field"] in ("number", "limit")


async def test_history_configure_takes_new_names_and_readers(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env:
        await seed_history(env)
        history = env.app[BRIDGE].history
        assert history is not None
        calls, _ = await history.lookup(CALLER, "1002")
        assert [c["notes"] for c in calls] == [None, None, "wants the blue one"]
        # John (1002) is renamed and now reads every call's notes; Élodie (1003) is gone.
        history.configure({"1001": "Amira Haddad", "1002": "John S."}, ["1001", "1002"])
        calls, _ = await history.lookup(CALLER, "1002")
        assert [c["agent_name"] for c in calls] == ["", "", "John S."]
        assert [c["notes"] for c in calls] == ["", "router reset", "wants the blue one"]
        calls, _ = await history.lookup(CALLER, "1001")
        assert calls[1]["notes"] == "router reset"


async def test_the_pop_carries_history_callback_and_language(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await seed_history(env)
        await env.login(client, "1002")
        async with client.ws_connect("/ws") as ws:
            await env.wait_sockets("1002")
            await env.ami.replay_trace(CALL_1002)
            ringing = await receive_json(ws)
        assert ringing["type"] == "call.ringing"
        assert [c["uniqueid"] for c in ringing["history"]] == [
            "1795000003.1",
            "1795000002.1",
            "1795000001.1",
        ]
        assert [c["notes"] for c in ringing["history"]] == [None, None, "wants the blue one"]
        assert ringing["history_url"] == "/calls?customer=%2B34915550123"
        assert ringing["callback"]["id"] == 1
        assert ringing["language"] == "en"


# ------------------------------------------------------------------------------ outcomes


async def test_outcome_is_required_and_must_be_known_naming_the_field(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        token = await env.login(client, "1001")
        for body, code in (
            ({"call_id": "1.1"}, "required"),
            ({"call_id": "1.1", "outcome": ""}, "required"),
            ({"call_id": "1.1", "outcome": "sold-it"}, "bad_outcome"),
        ):
            status, answer = await post(client, token, "/api/outcomes", body)
            assert status == 400
            assert (answer["field"], answer["code"]) == ("outcome", code)
        assert await env.store.get_outcomes("1.1") == []


async def test_outcome_from_calls_later_by_the_agent_who_took_it_or_a_supervisor(
    tmp_path: Path,
) -> None:
    async with (
        console_env(tmp_path) as env,
        env.session() as taker,
        env.session() as colleague,
        env.session() as boss,
    ):
        await seed_history(env)
        tokens = {
            "1002": await env.login(taker, "1002"),
            "1003": await env.login(colleague, "1003"),
            "1001": await env.login(boss, "1001"),
        }
        body = {"call_id": "1795000001.1", "outcome": "call-back", "notes": "later"}
        # 1003 did not take this call: 403, and 1002's outcome stays.
        status, answer = await post(colleague, tokens["1003"], "/api/outcomes", body)
        assert status == 403
        outcomes = await env.store.get_outcomes("1795000001.1")
        assert [(o.agent, o.outcome) for o in outcomes] == [("1002", "sale")]
        # The agent who took it corrects it from /calls, a day later.
        status, answer = await post(taker, tokens["1002"], "/api/outcomes", body)
        assert status == 200 and answer["outcome"]["outcome"] == "call-back"
        # A supervisor may add one to any call.
        status, answer = await post(boss, tokens["1001"], "/api/outcomes", body)
        assert status == 200
        outcomes = await env.store.get_outcomes("1795000001.1")
        assert sorted((o.agent, o.outcome) for o in outcomes) == [
            ("1001", "call-back"),
            ("1002", "call-back"),
        ]
