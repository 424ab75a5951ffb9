"""The console and API attacks of the outside audit (issue 10), as regression tests.

Each test replays one attack against the real app on loopback (the fake AMI replays
asterisk-traces/ami-queue-sip-call.txt). In the demo config 1001 is the supervisor; 1002 and
1003 are plain agents.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_web_support import (
    EVENTS_HEADERS,
    EVENTS_SECRET,
    TRACES,
    console_env,
    receive_past_state,
)

import centralita.store.passwords as store_passwords
from ami.testing import load_trace, rewrite
from centralita.keys import AGI_SERVER, AUTH, HUB
from centralita.web.auth import COOKIE, WS_CLOSE_LOGGED_OUT

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
# The recorded call, rewritten to ring 1002 (a plain agent) instead of 1001 (the supervisor).
CALL_1002 = rewrite(load_trace(QUEUE_TRACE), {"SIP/1001": "SIP/1002"})
UNIQUEID = "1795301086.1"  # the customer leg whose Cdr names the agent
LINKEDID = "1795301086.0"


async def _post(
    client: aiohttp.ClientSession, path: str, token: str, body: Mapping[str, object]
) -> tuple[int, dict[str, object]]:
    async with client.post(path, json=body, headers={"X-CSRF-Token": token}) as resp:
        return resp.status, await resp.json()


async def _calls(client: aiohttp.ClientSession) -> dict[str, Any]:
    async with client.get("/api/calls") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
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
            (call,) = calls["calls"]
            assert call["outcome"] is None and call["notes"] is None
            async with owner.get("/calls") as resp:
                assert "intruder&#39;s note" not in await resp.text()
        async with env.session() as supervisor:
            await env.login(supervisor, "1001")
            every = (await _calls(supervisor))["calls"]
            notes = {c["uniqueid"]: c["notes"] for c in every}
            assert notes[UNIQUEID] == "intruder's note"  # supervisors see every outcome


# ------------------------------------------------------------------ finding 8: inbound events

CALL_START = {
    "action": "callStart",
    "data": {"callid": "forged-1", "endpoint_id": "1003", "ani": "+34911222333", "type": "in"},
}


async def test_inbound_event_needs_the_shared_secret_and_json(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as page:
        raw = json.dumps(CALL_START).encode()
        # A page on an allowed address: text/plain needs no CORS preflight.
        async with page.post(
            "/api/events/callmyway", data=raw, headers={"Content-Type": "text/plain"}
        ) as resp:
            assert resp.status in (401, 415)
        async with page.post(
            "/api/events/callmyway",
            data=raw,
            headers={**EVENTS_HEADERS, "Content-Type": "text/plain"},
        ) as resp:
            assert resp.status == 415
        async with page.post("/api/events/callmyway", json=CALL_START) as resp:
            assert resp.status == 401
        async with page.post(
            "/api/events/callmyway",
            json=CALL_START,
            headers={"X-Centralita-Secret": "guess"},
        ) as resp:
            assert resp.status == 401
        async with page.post(
            "/api/events/callmyway",
            data=raw,
            headers={"Content-Type": "application/json", "X-Centralita-Signature": "sha256=00"},
        ) as resp:
            assert resp.status == 401
        assert env.open_pops("1003") == []
        # With an HMAC of the body it is accepted.
        signature = hmac.new(EVENTS_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        async with page.post(
            "/api/events/callmyway",
            data=raw,
            headers={
                "Content-Type": "application/json",
                "X-Centralita-Signature": f"sha256={signature}",
            },
        ) as resp:
            assert resp.status == 200, await resp.text()
        assert [p["call_id"] for p in env.open_pops("1003")] == ["forged-1"]


async def test_inbound_event_endpoint_is_off_without_a_secret(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text.replace(f'events_secret = "{EVENTS_SECRET}"\n', "")

    async with console_env(tmp_path, edit=edit) as env, env.session() as pbx:
        async with pbx.post(
            "/api/events/callmyway", json=CALL_START, headers=EVENTS_HEADERS
        ) as resp:
            assert resp.status == 403
        assert env.open_pops("1003") == []


@pytest.mark.parametrize("number", ["1e400", "NaN", "Infinity", "-Infinity"])
async def test_inbound_event_refuses_non_finite_numbers(tmp_path: Path, number: str) -> None:
    async with console_env(tmp_path) as env, env.session() as pbx:
        raw = json.dumps(CALL_START)[:-2] + f', "duration": {number}}}}}'
        assert json.loads(raw)["data"]["duration"] is not None  # Python's json takes it
        async with pbx.post(
            "/api/events/callmyway",
            data=raw,
            headers={"Content-Type": "application/json", **EVENTS_HEADERS},
        ) as resp:
            assert resp.status == 400
        assert env.open_pops("1003") == []


# ------------------------------------------------------------------ finding 9: 400, not 500


async def test_deeply_nested_json_is_a_400(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    async with console_env(tmp_path) as env, env.session() as client:
        token = await env.login(client, "1002")
        for path in ("/api/outcomes", "/api/contacts", "/api/dial", "/api/pops/dismiss"):
            async with client.post(
                path,
                data=deep,
                headers={"Content-Type": "application/json", "X-CSRF-Token": token},
            ) as resp:
                assert resp.status == 400, path
        async with client.post(
            "/api/events/callmyway",
            data=deep,
            headers={"Content-Type": "application/json", **EVENTS_HEADERS},
        ) as resp:
            assert resp.status == 400


async def test_non_ascii_digits_are_a_400(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.ami.replay_trace(CALL_1002)
        await env.drain()
        async with env.session() as client:
            token = await env.login(client, "1002")
            for path, query in (
                ("/api/calls", {"offset": "²"}),
                ("/api/calls", {"limit": "²"}),
                ("/calls", {"page": "²"}),
            ):
                async with client.get(path, params=query) as resp:
                    assert resp.status == 400, (path, query)
            status, body = await _post(
                client,
                "/api/outcomes",
                token,
                {"call_id": LINKEDID, "uniqueid": UNIQUEID, "outcome": "sale", "contact_id": "²"},
            )
            assert status == 400, body


# ------------------------------------------------------------------ finding 2: login flood


class _HashCounter:
    """Counts scrypt hashes (known and unknown extensions) and the most at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()
        for name in ("check_password", "hash_password"):
            monkeypatch.setattr(store_passwords, name, self._wrap(getattr(store_passwords, name)))

    def _wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            with self._lock:
                self.count += 1
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                return func(*args)
            finally:
                with self._lock:
                    self.running -= 1

        return counted


async def _login(client: aiohttp.ClientSession, extension: str, password: str) -> int:
    async with client.post(
        "/login",
        data={"extension": extension, "password": password},
        headers={"Accept": "application/json"},
    ) as resp:
        return resp.status


async def test_concurrent_wrong_logins_hash_at_most_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.store.set_agent_password("1002", "the-right-one")
        hashes = _HashCounter(monkeypatch)
        statuses = await asyncio.gather(*(_login(client, "1002", f"wrong-{i}") for i in range(100)))
        # The per-extension limit is 5 failures: 5 hashed, the rest refused unhashed.
        assert hashes.count <= 5
        assert statuses.count(401) == hashes.count
        assert set(statuses) <= {401, 429, 503}


async def test_concurrent_hashes_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        hashes = _HashCounter(monkeypatch)
        await asyncio.gather(*(_login(client, f"9{i:03d}", "guess") for i in range(20)))
        assert 0 < hashes.most <= env.app[AUTH].max_hashes


# ------------------------------------------------------------------ finding 3: sessions


def _cookie(client: aiohttp.ClientSession) -> str:
    return next(c.value for c in client.cookie_jar if c.key == COOKIE)


async def test_a_logged_out_cookie_stays_dead_after_a_restart(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        token = await env.login(client, "1002")
        cookie = _cookie(client)
        async with client.post("/logout", headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 200
    # The same data folder (database, signing key), a new process's memory.
    async with console_env(tmp_path) as env, env.session() as replay:
        replay.cookie_jar.update_cookies({COOKIE: cookie})
        async with replay.get("/api/calls") as resp:
            assert resp.status == 401


async def test_password_change_and_removal_end_existing_sessions(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as a, env.session() as b:
        await env.login(a, "1002")
        await env.login(b, "1003")
        await env.store.set_agent_password("1002", "a-brand-new-password")
        async with a.get("/api/calls") as resp:
            assert resp.status == 401
        await env.store.remove_agent_password("1003")  # what `agent remove` does
        async with b.get("/api/calls") as resp:
            assert resp.status == 401
        # A login after the change works (with the new password).
        async with a.post(
            "/login",
            data={"extension": "1002", "password": "a-brand-new-password"},
            headers={"Accept": "application/json"},
        ) as resp:
            assert resp.status == 200
        async with a.get("/api/calls") as resp:
            assert resp.status == 200


async def test_console_socket_closes_on_logout_and_on_revocation(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as a, env.session() as b:
        token = await env.login(a, "1002")
        await env.login(b, "1003")
        async with a.ws_connect("/ws") as ws_a, b.ws_connect("/ws") as ws_b:
            await env.wait_sockets("1002")
            await env.wait_sockets("1003")
            async with a.post("/logout", headers={"X-CSRF-Token": token}) as resp:
                assert resp.status == 200
            msg = await receive_past_state(ws_a)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, WS_CLOSE_LOGGED_OUT)
            # A password change made elsewhere (the CLI) closes 1003's socket too.
            await env.store.set_agent_password("1003", "changed-by-the-admin")
            msg = await receive_past_state(ws_b)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, WS_CLOSE_LOGGED_OUT)
            assert env.app[HUB].count() == 0


# ------------------------------------------------------------------ finding 4: /metrics


async def _agi_session(port: int, script: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"agi_network: yes\nagi_network_script: " + script + b"\n"
        b"agi_request: agi://127.0.0.1/" + script + b"\n"
        b"agi_channel: PJSIP/1099-00000001\nagi_uniqueid: 1795301017.1\n\n"
    )
    await writer.drain()
    await reader.read()  # an unknown flow: the server closes, the dialplan falls back
    writer.close()
    await writer.wait_closed()


async def test_metrics_labels_stay_bounded_and_odd_bytes_do_not_break_them(
    tmp_path: Path,
) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        port = env.app[AGI_SERVER].port
        names = [f"probe-{i}".encode() for i in range(300)] + [b"bad\xffname"]
        for chunk in range(0, len(names), 50):
            await asyncio.gather(*(_agi_session(port, n) for n in names[chunk : chunk + 50]))
        async with client.get("/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        assert "probe-" not in text
        assert 'flow="bad' not in text
        assert 'centralita_agi_sessions_total{flow="unknown",outcome="unknown-flow"}' in text
