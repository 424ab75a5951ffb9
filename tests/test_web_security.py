"""Console security: per-agent pops, sessions and CSRF, dial input, rate limits, escaping.

Everything runs against the real app on loopback with the fake AMI replaying
asterisk-traces/ami-queue-sip-call.txt (agent 1001 on `SIP/1001`, hence sip_driver = "sip").
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from test_web_support import TRACES, console_env, receive_json

from ami.testing import load_trace, rewrite
from centralita.store import CallRecord
from centralita.web.auth import COOKIE

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"


async def test_agent_a_never_receives_agent_b_pop(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        async with env.session() as a, env.session() as b:
            await env.login(a, "1001")
            await env.login(b, "1002")
            async with a.ws_connect("/ws") as ws_a, b.ws_connect("/ws") as ws_b:
                await env.wait_sockets("1001")
                await env.wait_sockets("1002")
                # The recorded call rings 1001 only.
                await env.ami.replay_trace(QUEUE_TRACE)
                await env.drain()
                kinds = [(await receive_json(ws_a))["type"] for _ in range(3)]
                assert kinds == ["call.ringing", "call.answered", "call.ended"]
                # The same call, rewritten to ring 1002, goes to 1002 only.
                other = rewrite(
                    load_trace(QUEUE_TRACE),
                    {"SIP/1001": "SIP/1002", "1795301086.": "1795309999."},
                )
                await env.ami.replay_trace(other)
                await env.drain()
                got_b = [await receive_json(ws_b) for _ in range(3)]
                assert [m["type"] for m in got_b] == [
                    "call.ringing",
                    "call.answered",
                    "call.ended",
                ]
                assert {m["agent"] for m in got_b} == {"1002"}
                assert {m["call_id"] for m in got_b} == {"1795309999.0"}
                # Messages on one socket are ordered: the pong comes after any pop queued
                # before it, so getting the pong first proves nothing else was sent.
                await ws_a.send_str("ping")
                assert await receive_json(ws_a) == {"type": "pong"}
                await ws_b.send_str("ping")
                assert await receive_json(ws_b) == {"type": "pong"}


async def test_ws_needs_a_session_and_our_origin(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
            await client.ws_connect("/ws")
        assert anonymous.value.status == 401
        await env.login(client, "1001")
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await client.ws_connect("/ws", origin="https://evil.example")
        assert foreign.value.status == 403
        async with client.ws_connect("/ws") as ws:
            await env.wait_sockets("1001")
            assert not ws.closed


async def test_post_without_session_or_csrf_is_refused(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env:
        body = {"call_id": "1.1", "outcome": "sale"}
        async with env.session() as anonymous:
            async with anonymous.post("/api/outcomes", json=body) as resp:
                assert resp.status == 401
            async with anonymous.post("/api/dial", json={"number": "5550001"}) as resp:
                assert resp.status == 401
        async with env.session() as a, env.session() as b:
            token_a = await env.login(a, "1001")
            token_b = await env.login(b, "1002")
            async with a.post("/api/outcomes", json=body) as resp:
                assert resp.status == 403
                assert "CSRF" in (await resp.json())["error"]
            async with a.post(
                "/api/outcomes", json=body, headers={"X-CSRF-Token": "0" * 64}
            ) as resp:
                assert resp.status == 403
            # Another agent's token is no good either.
            async with a.post("/api/outcomes", json=body, headers={"X-CSRF-Token": token_b}) as r:
                assert r.status == 403
            # A form post carries it as a field; logout without it is refused too.
            async with a.post("/logout", data={}) as resp:
                assert resp.status == 403
            assert await env.store.get_outcomes("1.1") == []
            async with a.post("/api/outcomes", json=body, headers={"X-CSRF-Token": token_a}) as r:
                assert r.status == 200
            saved = await env.store.get_outcomes("1.1")
            assert [(o.agent, o.outcome) for o in saved] == [("1001", "sale")]
        assert env.ami.actions_named("Originate") == []


async def test_logout_revokes_the_session(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        token = await env.login(client, "1001")
        cookie = client.cookie_jar.filter_cookies(client._base_url)[COOKIE].value  # type: ignore[arg-type]
        async with client.post("/logout", data={"csrf": token}, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/login"
        # Replaying the old cookie after logout does not work.
        async with env.session() as replay:
            replay.cookie_jar.update_cookies({COOKIE: cookie})
            async with replay.get("/api/calls") as resp:
                assert resp.status == 401


async def test_session_cookie_flags(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.store.set_agent_password("1001", "pw-1001-x")
        async with client.post(
            "/login", data={"extension": "1001", "password": "pw-1001-x"}, allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/"
            header = resp.headers["Set-Cookie"]
        assert header.startswith(COOKIE + "=")
        assert "HttpOnly" in header
        assert "SameSite=Strict" in header
        assert "Path=/" in header
        # A forged cookie (the signature of another payload) is not a session.
        value = header.split(";")[0].split("=", 1)[1]
        payload, _, signature = value.rpartition(".")
        async with env.session() as forger:
            forger.cookie_jar.update_cookies({COOKIE: payload[:-2] + "xx." + signature})
            async with forger.get("/api/calls") as resp:
                assert resp.status == 401


async def test_login_from_another_site_is_refused(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.store.set_agent_password("1001", "pw-1001-x")
        async with client.post(
            "/login",
            data={"extension": "1001", "password": "pw-1001-x"},
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 403
            assert COOKIE not in resp.cookies


@pytest.mark.parametrize(
    "number",
    [
        "5550001\r\nAction: Command\r\nCommand: core stop now",
        "5550001\n",
        "555\r0001",
        "5550001,1",
        "",
        "1" * 33,
        # "555-0001" was refused here before issue 11: the dial box now cleans pasted
        # separators (tests/test_agent_api.py checks it reaches AMI as 5550001).
        "555-000a",
        "55+5",
    ],
)
async def test_dial_number_with_crlf_or_junk_is_refused(tmp_path: Path, number: str) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1001")
        async with client.post(
            "/api/dial", json={"number": number}, headers={"X-CSRF-Token": token}
        ) as resp:
            assert resp.status == 400
            assert "number" in (await resp.json())["error"]
        # Nothing reached the AMI: no Originate, and no Command smuggled in.
        assert env.ami.actions_named("Originate") == []
        assert env.ami.actions_named("Command") == []


async def test_login_rate_limit_per_extension_and_ip(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.store.set_agent_password("1001", "the-right-one")
        await env.store.set_agent_password("1002", "the-right-two")

        async def attempt(ext: str, password: str) -> int:
            async with client.post(
                "/login",
                data={"extension": ext, "password": password},
                headers={"Accept": "application/json"},
            ) as resp:
                return resp.status

        assert [await attempt("1001", f"wrong-{i}") for i in range(5)] == [401] * 5
        # Now even the right password is refused for a while, with Retry-After.
        async with client.post(
            "/login",
            data={"extension": "1001", "password": "the-right-one"},
            headers={"Accept": "application/json"},
        ) as resp:
            assert resp.status == 429
            assert int(resp.headers["Retry-After"]) > 0
        # Another extension from the same address still may log in (under the IP limit) ...
        assert await attempt("1002", "the-right-two") == 200
        # ... until this address has failed too often on any extensions.
        for i in range(15):
            await attempt(f"9{i:03d}", "guess")
        assert await attempt("1002", "the-right-two") == 429


async def test_hostile_caller_name_is_escaped(tmp_path: Path) -> None:
    hostile = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
    async with console_env(tmp_path) as env, env.session() as client:
        await env.store.create_contact(name=hostile, numbers=["+34915550123"])
        start = datetime(2026, 11, 21, 22, 44, 46)
        await env.store.upsert_cdr(
            CallRecord(
                uniqueid="1795301086.1",
                linkedid="",
                src="+34915550123",
                dst="300",
                dcontext="queue-sip",
                clid=f'"{hostile}" <+34915550123>',
                channel="Local/300@queue-sip-00000000;2",
                dstchannel="SIP/1001-00000000",
                lastapp="Queue",
                start=start,
                answer=start,
                end=start,
                duration=6,
                billsec=6,
                disposition="ANSWERED",
            )
        )
        await env.login(client, "1001")
        async with client.get("/calls") as resp:
            html = await resp.text()
            assert resp.status == 200
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html


async def test_callmyway_endpoint_only_from_allowed_peers(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text.replace(
            'allowed_peers = ["127.0.0.1/32", "::1/128"]', 'allowed_peers = ["10.9.9.9/32"]'
        )

    async with console_env(tmp_path, edit=edit) as env, env.session() as client:
        body = {"action": "callStart", "data": {"callid": "x1", "endpoint_id": "1001"}}
        async with client.post("/api/events/callmyway", json=body) as resp:
            assert resp.status == 403
        await asyncio.sleep(0)
        assert env.open_pops("1001") == []


async def test_only_supervisors_see_every_call_the_callbacks_and_complaints(
    tmp_path: Path,
) -> None:
    async with console_env(tmp_path) as env:
        assert env.settings.site.console_permission("1001") == "supervisor"  # its role
        for number, agent_channel in (
            ("600000001", "SIP/1001-00000001"),
            ("600000002", "SIP/1002-00000002"),
        ):
            await env.store.upsert_cdr(
                CallRecord(
                    uniqueid=f"1.{number}",
                    linkedid=f"1.{number}",
                    src=number,
                    dst="300",
                    dcontext="centralita-queue",
                    clid=number,
                    channel=f"PJSIP/trunk-{number}",
                    dstchannel=agent_channel,
                    lastapp="Queue",
                    start=datetime(2026, 11, 20, 10, 0, 0),
                    answer=datetime(2026, 11, 20, 10, 0, 5),
                    end=datetime(2026, 11, 20, 10, 5, 0),
                    duration=300,
                    billsec=295,
                    disposition="ANSWERED",
                )
            )
        async with env.session() as supervisor, env.session() as agent:
            await env.login(supervisor, "1001")
            await env.login(agent, "1002")
            async with supervisor.get("/api/calls") as resp:
                assert sorted(c["src"] for c in (await resp.json())["calls"]) == [
                    "600000001",
                    "600000002",
                ]
            # An agent sees their own calls only, whatever filter they ask for.
            async with agent.get("/api/calls?agent=1001") as resp:
                assert [c["src"] for c in (await resp.json())["calls"]] == ["600000002"]
            for page in ("/callbacks", "/complaints"):
                async with supervisor.get(page) as resp:
                    assert resp.status == 200
                async with agent.get(page) as resp:
                    assert resp.status == 403
            async with agent.get("/calls") as resp:
                html = await resp.text()
            assert 'href="/complaints"' not in html and "600000001" not in html
