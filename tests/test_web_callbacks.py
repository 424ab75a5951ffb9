"""Callbacks as work (issue 12) against the real app, a real SQLite file and the fake AMI on
real sockets: a supervisor assigns, the agent's count moves on their /ws, the agent calls back
through the click-to-dial path (each attempt stored with the Originate's result) and closes
it with a note; everything audited; agents get 403 on the supervisors' routes and 404 on
another agent's callbacks; no POST without its CSRF token."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from test_web_support import WebEnv, console_env, receive_type

from centralita.csvlog import read_rows
from centralita.keys import AMI
from centralita.store import StoreBackend
from dialplan.names import OUTBOUND_CONTEXT

SUPERVISOR = "1001"  # Amira, role supervisor (takes queue calls too)
AGENT = "1002"  # John, role agent
OTHER = "1003"  # Élodie, role agent
QUALITY = "1200"  # Layla, quality: takes no queue calls


async def post(
    client: aiohttp.ClientSession, token: str | None, path: str, body: object
) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": token} if token is not None else {}
    async with client.post(path, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def get(client: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
    async with client.get(path) as resp:
        return resp.status, await resp.json()


async def new_callback(store: StoreBackend, number: str = "600111222", alt: str = "") -> int:
    made = await store.add_callback(
        callerid=number,
        language="fr",
        queue="support-fr",
        number=number,
        alternative=alt,
        uniqueid="1700000000.1",
    )
    return made.id


async def actions(env: WebEnv) -> list[tuple[str, str, str, str]]:
    return [(a.actor, a.action, a.subject, a.changes) for a in await env.store.list_audit()][::-1]


async def test_an_agent_gets_403_on_every_supervisor_route(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        cb = await new_callback(env.store)
        for member in (AGENT, QUALITY):
            token = await env.login(client, member)
            async with client.get("/callbacks") as resp:
                assert resp.status == 403, member
            status, _ = await post(client, token, f"/api/callbacks/{cb}/assign", {"agent": AGENT})
            assert status == 403, member
            # The page's form too (a form POST, the token in its field).
            async with client.post(
                f"/api/callbacks/{cb}/assign",
                data={"csrf": token, "agent": member},
                allow_redirects=False,
            ) as resp:
                assert resp.status == 403, member
        unchanged = await env.store.get_callback(cb)
        assert unchanged is not None and unchanged.assigned_to == ""
        assert await env.store.list_audit() == []


async def test_no_post_without_its_csrf_token(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as boss, env.session() as agent:
        await env.wait_ami()
        cb = await new_callback(env.store)
        boss_token = await env.login(boss, SUPERVISOR)
        await env.login(agent, AGENT)
        for token in (None, "forged"):
            status, _ = await post(boss, token, f"/api/callbacks/{cb}/assign", {"agent": AGENT})
            assert status == 403
        status, _ = await post(boss, boss_token, f"/api/callbacks/{cb}/assign", {"agent": AGENT})
        assert status == 200  # with its token it goes through
        for path in (f"/api/callbacks/{cb}/call", f"/api/callbacks/{cb}/close"):
            for token in (None, boss_token):  # no token, or another session's
                status, _ = await post(agent, token, path, {"status": "done"})
                assert status == 403, (path, token)
        assert env.ami.actions_named("Originate") == []
        still = await env.store.get_callback(cb)
        assert still is not None and still.status == "pending" and still.assigned_to == AGENT


async def test_assign_call_back_and_close(tmp_path: Path) -> None:
    async with (
        console_env(tmp_path, sip=True) as env,
        env.session() as boss,
        env.session() as agent,
        env.session() as other,
    ):
        await env.wait_ami()
        cb = await new_callback(env.store, "600111222", "915550123")
        boss_token = await env.login(boss, SUPERVISOR)
        agent_token = await env.login(agent, AGENT)
        other_token = await env.login(other, OTHER)
        assert await get(agent, "/api/callbacks/mine") == (200, {"pending": 0, "callbacks": []})
        async with agent.ws_connect("/ws") as ws:
            await env.wait_sockets(AGENT)
            status, body = await post(
                boss, boss_token, f"/api/callbacks/{cb}/assign", {"agent": AGENT}
            )
            assert status == 200 and body["callback"]["assigned_to"] == AGENT
            # The agent's console hears of it at once.
            assert await receive_type(ws, "callbacks.changed") == {
                "type": "callbacks.changed",
                "pending": 1,
            }
            status, mine = await get(agent, "/api/callbacks/mine")
            assert status == 200 and mine["pending"] == 1
            [shown] = mine["callbacks"]
            assert (shown["id"], shown["number"], shown["alternative"], shown["language"]) == (
                cb,
                "600111222",
                "915550123",
                "fr",
            )
            assert shown["attempts"] == []
            # Another agent neither sees it nor acts on it: 404, as if there were none.
            assert (await get(other, "/api/callbacks/mine"))[1]["pending"] == 0
            for path in (f"/api/callbacks/{cb}/call", f"/api/callbacks/{cb}/close"):
                status, body = await post(other, other_token, path, {"status": "done"})
                assert (status, body["code"]) == (404, "unknown_callback"), path
            assert env.ami.actions_named("Originate") == []

            # Called back: the click-to-dial Originate from the agent's phone.
            status, body = await post(
                agent, agent_token, f"/api/callbacks/{cb}/call", {"which": "alternative"}
            )
            assert status == 200, body
            assert (body["number"], body["reason_text"]) == ("915550123", "answered")
            assert body["attempt"]["result"] == "answered"
            [originate] = env.ami.actions_named("Originate")
            headers = dict(originate.headers)
            assert headers["Channel"] == "SIP/1002"
            assert (headers["Context"], headers["Exten"]) == (OUTBOUND_CONTEXT, "915550123")
            # Busy the second time (OriginateResponse Reason 5): stored as such.
            env.ami.originate_result = ("Failure", 5)
            status, body = await post(agent, agent_token, f"/api/callbacks/{cb}/call", {})
            assert status == 502 and body["attempt"]["result"] == "busy"
            attempts = await env.store.list_callback_attempts([cb])
            assert [(a.agent, a.number, a.result) for a in attempts] == [
                (AGENT, "915550123", "answered"),
                (AGENT, "600111222", "busy"),
            ]
            assert all(a.ended_at is not None for a in attempts)
            assert [a["result"] for a in body["callback"]["attempts"]] == ["answered", "busy"]

            # Closed with a note: gone from the agent's list, count down on the socket.
            status, body = await post(
                agent,
                agent_token,
                f"/api/callbacks/{cb}/close",
                {"status": "done", "note": "Rang back, order fixed"},
            )
            assert status == 200 and body["callback"]["status"] == "done"
            assert (await receive_type(ws, "callbacks.changed"))["pending"] == 0
        closed = await env.store.get_callback(cb)
        assert closed is not None
        assert (closed.status, closed.closed_by, closed.note) == (
            "done",
            AGENT,
            "Rang back, order fixed",
        )
        assert await get(agent, "/api/callbacks/mine") == (200, {"pending": 0, "callbacks": []})
        # callbacks.csv has the change, as when the flow or the CLI writes one.
        [row] = read_rows(Path(env.settings.server.data_dir) / "callbacks.csv")
        assert (row["id"], row["status"]) == (str(cb), "done")
        # Closed is closed: no more calls, no second closing, no reassignment.
        for who, token, path in (
            (agent, agent_token, "call"),
            (agent, agent_token, "close"),
            (boss, boss_token, "assign"),
        ):
            status, body = await post(
                who, token, f"/api/callbacks/{cb}/{path}", {"status": "cancelled", "agent": OTHER}
            )
            assert (status, body["code"]) == (409, "callback_closed"), path
        assert len(env.ami.actions_named("Originate")) == 2
        assert await actions(env) == [
            (SUPERVISOR, "callback.assign", f"callback {cb}", "- -> 1002"),
            (AGENT, "callback.call", f"callback {cb}", f"attempt {attempts[0].id} to 915550123"),
            (AGENT, "callback.call", f"callback {cb}", f"attempt {attempts[1].id} to 600111222"),
            (AGENT, "callback.done", f"callback {cb}", "Rang back, order fixed"),
        ]


async def test_reassigning_moves_both_counts_and_a_supervisor_cancels(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as boss, env.session() as agent:
        cb = await new_callback(env.store)
        boss_token = await env.login(boss, SUPERVISOR)
        await env.login(agent, AGENT)
        await post(boss, boss_token, f"/api/callbacks/{cb}/assign", {"agent": AGENT})
        async with agent.ws_connect("/ws") as ws:
            await env.wait_sockets(AGENT)
            status, _ = await post(
                boss, boss_token, f"/api/callbacks/{cb}/assign", {"agent": OTHER}
            )
            assert status == 200
            assert (await receive_type(ws, "callbacks.changed"))["pending"] == 0
        assert (await get(agent, "/api/callbacks/mine"))[1]["pending"] == 0
        assert await env.store.count_callbacks("pending", assigned_to=OTHER) == 1
        # Only members who take queue calls; only callbacks that exist.
        status, body = await post(
            boss, boss_token, f"/api/callbacks/{cb}/assign", {"agent": QUALITY}
        )
        assert (status, body["code"], body["field"]) == (400, "bad_agent", "agent")
        for missing in ("9999", "x1"):
            status, body = await post(
                boss, boss_token, f"/api/callbacks/{missing}/assign", {"agent": AGENT}
            )
            assert status == 404
        # A supervisor may close anyone's.
        status, body = await post(
            boss, boss_token, f"/api/callbacks/{cb}/close", {"status": "cancelled", "note": "dup"}
        )
        assert status == 200
        status, body = await post(boss, boss_token, f"/api/callbacks/{cb}/close", {"status": "x"})
        assert status == 400
        assert [a[1:] for a in await actions(env)] == [
            ("callback.assign", f"callback {cb}", "- -> 1002"),
            ("callback.assign", f"callback {cb}", "1002 -> 1003"),
            ("callback.cancel", f"callback {cb}", "dup"),
        ]


async def test_an_attempt_refused_before_asterisk_is_stored_as_failed(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as agent:
        await env.wait_ami()
        cb = await new_callback(env.store)
        await env.store.assign_callback(cb, AGENT)
        token = await env.login(agent, AGENT)
        env.ami.originate_error = "Extension does not exist."
        status, body = await post(agent, token, f"/api/callbacks/{cb}/call", {})
        assert status == 502 and body["attempt"]["result"] == "failed"
        assert "refused" in body["attempt"]["reason"]
        # Asterisk away: refused before anything is sent, and the attempt says why.
        await env.ami.stop()
        listener = env.app[AMI]
        for _ in range(1500):
            if not listener.connected:
                break
            await asyncio.sleep(0.01)
        assert not listener.connected
        status, body = await post(agent, token, f"/api/callbacks/{cb}/call", {})
        assert (status, body["code"]) == (503, "ami_down")
        # Bad requests are no attempt at all.
        status, body = await post(agent, token, f"/api/callbacks/{cb}/call", {"which": "x"})
        assert (status, body["field"]) == (400, "which")
        status, body = await post(
            agent, token, f"/api/callbacks/{cb}/call", {"which": "alternative"}
        )
        assert (status, body["field"]) == (400, "which")  # it has none
        attempts = await env.store.list_callback_attempts([cb])
        assert [a.result for a in attempts] == ["failed", "failed"]
        assert "not connected" in attempts[1].reason


async def test_the_page_assigns_and_closes_with_forms(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as boss:
        cb = await new_callback(env.store)
        hostile = await new_callback(env.store, "<b>600</b>")
        token = await env.login(boss, SUPERVISOR)
        async with boss.get("/callbacks") as resp:
            assert resp.status == 200
            html = await resp.text()
        # Members who take queue calls are offered; quality staff are not.
        assert 'value="1002"' in html and 'value="1003"' in html and 'value="1200"' not in html
        assert "<b>600</b>" not in html and "&lt;b&gt;600&lt;/b&gt;" in html
        async with boss.post(
            f"/api/callbacks/{cb}/assign",
            data={"csrf": token, "agent": OTHER, "back": "pending"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/callbacks?status=pending"
        async with boss.post(
            f"/api/callbacks/{hostile}/close",
            data={"csrf": token, "status": "cancelled", "note": "Not a number", "back": ""},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/callbacks"
        async with boss.get("/callbacks") as resp:
            html = await resp.text()
        assert "Not a number" in html
        assigned = await env.store.get_callback(cb)
        assert assigned is not None and assigned.assigned_to == OTHER
