"""The console's API and pages against the real app, the real store and the fake AMI."""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import json
import re
import socket
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from test_web_support import (
    EVENTS_HEADERS,
    TRACES,
    console_env,
    csrf_from_html,
    receive_json,
    receive_past_state,
    web_settings,
)

from ami.testing import load_trace
from centralita.app import YOUNG_GC_THRESHOLD, create_app, freeze_startup_objects
from dialplan.names import OUTBOUND_CONTEXT

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
CALLER = "+34915550123"

LOCAL_TIME_CELL = re.compile(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d</td>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_started_app_collects_young_objects_less_often(tmp_path: Path) -> None:
    # The AMI feed's objects that outlive an event made CPython's default young-collection
    # threshold (700) run the collector ~35 times a second at 200 calls/s (centralita/app.py;
    # `centralita serve` runs this once started).
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        await freeze_startup_objects(create_app(web_settings(tmp_path, free_port())))
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_healthz_reports_ami_and_app_serves_without_it(tmp_path: Path) -> None:
    # Nothing listens on this port: the app must start, serve, and say AMI is away.
    settings = web_settings(tmp_path, free_port())
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
            async with client.get(server.make_url("/healthz")) as resp:
                body = await resp.json()
            assert resp.status == 200
            assert body["status"] == "ok"
            assert body["ami"]["connected"] is False
            async with client.get(server.make_url("/login")) as resp:
                assert resp.status == 200
    finally:
        await server.close()
    (tmp_path / "up").mkdir()
    async with console_env(tmp_path / "up") as env, env.session() as client:
        await env.wait_ami()
        async with client.get("/healthz") as resp:
            body = await resp.json()
        assert body["ami"]["connected"] is True
        assert body["ami"]["error"] is None


async def test_queue_call_pops_with_contact_and_crm_url(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True, crm=True) as env, env.session() as client:
        await env.wait_ami()
        contact = await env.store.create_contact(
            name="Bob Customer", company="ACME", numbers=[CALLER]
        )
        await env.login(client, "1001")
        async with client.ws_connect("/ws") as ws:
            await env.wait_sockets("1001")
            await env.ami.replay_trace(QUEUE_TRACE)
            messages = [await receive_json(ws) for _ in range(3)]
    expected_contact = {
        "id": contact.id,
        "name": "Bob Customer",
        "company": "ACME",
        "numbers": [CALLER],
        "notes": "",
        "external_id": "",
        "url": "",
    }
    common = {
        "call_id": "1795301086.0",
        "direction": "in",
        "number": CALLER,
        "agent": "1001",
        "queue": "support-sip",
        "contacts": [expected_contact],
        "crm_url": "https://crm.example.com/contacts?phone=%2B34915550123",
        "name": "Bob Customer",
        "uniqueid": "1795301086.1",
        "private": False,
    }
    # The call timer, language, history and callback (issue 11) are checked apart: times.
    timers = [{k: m.pop(k) for k in ("started_at", "answered_at", "ended_at")} for m in messages]
    extras = [
        {k: m.pop(k) for k in ("language", "history", "history_url", "callback")} for m in messages
    ]
    assert timers[0]["started_at"] == timers[1]["started_at"] == timers[2]["started_at"] > 0
    assert timers[0]["answered_at"] is None and timers[0]["ended_at"] is None
    assert timers[1]["answered_at"] == timers[2]["answered_at"] >= timers[0]["started_at"]
    assert timers[2]["ended_at"] >= timers[1]["answered_at"]
    assert (
        extras
        == [
            {
                "language": "en",
                "history": [],
                "history_url": "/calls?customer=%2B34915550123",
                "callback": None,
            }
        ]
        * 3
    )
    assert messages == [
        {"type": "call.ringing", **common},
        {"type": "call.answered", **common},
        {"type": "call.ended", **common},
    ]


async def test_open_pop_is_resent_to_a_console_that_connects_late(tmp_path: Path) -> None:
    events = load_trace(QUEUE_TRACE)
    # Up to (not including) AgentComplete: the call is up at agent 1001.
    first_hangup = next(i for i, m in enumerate(events) if m.name == "AgentComplete")
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.login(client, "1001")
        await env.ami.replay_trace(events[:first_hangup])
        await env.drain()
        async with client.ws_connect("/ws") as ws:
            message = await receive_json(ws)
            assert message["type"] == "call.answered"
            assert message["call_id"] == "1795301086.0"
            assert message["contacts"] == []
            # While on this call, click-to-dial is refused.
            token = await env.login(client, "1001")
            async with client.post(
                "/api/dial", json={"number": "5550001"}, headers={"X-CSRF-Token": token}
            ) as resp:
                assert resp.status == 409
                assert "already on a call" in (await resp.json())["error"]
            assert env.ami.actions_named("Originate") == []


async def test_cdr_outcome_and_calls_api(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.store.create_contact(name="Bob Customer", numbers=[CALLER])
        token = await env.login(client, "1001")
        await env.ami.replay_trace(QUEUE_TRACE)
        await env.drain()
        # Both Cdr events of the trace are stored, once each, even when replayed again.
        await env.ami.replay_trace([m for m in load_trace(QUEUE_TRACE) if m.name == "Cdr"])
        await env.drain()
        assert await env.store.count_cdrs() == 2
        outcome = {
            "call_id": "1795301086.0",
            "uniqueid": "1795301086.1",
            "outcome": "support",
            "notes": "asked about the invoice",
            "follow_up": "2026-12-01",
        }
        async with client.post(
            "/api/outcomes", json=outcome, headers={"X-CSRF-Token": token}
        ) as resp:
            assert resp.status == 200
            saved = (await resp.json())["outcome"]
        assert saved["agent"] == "1001"
        assert saved["follow_up"] == "2026-12-01"
        async with client.post(
            "/api/outcomes",
            json={**outcome, "outcome": "not-configured"},
            headers={"X-CSRF-Token": token},
        ) as resp:
            assert resp.status == 400
            assert "outcome must be one of" in (await resp.json())["error"]
        async with client.post(
            "/api/outcomes",
            json={**outcome, "follow_up": "next tuesday"},
            headers={"X-CSRF-Token": token},
        ) as resp:
            assert resp.status == 400

        async with client.get("/api/calls", params={"agent": "1001"}) as resp:
            body = await resp.json()
        assert body["total"] == 1
        (call,) = body["calls"]
        assert call["uniqueid"] == "1795301086.1"
        assert call["src"] == CALLER
        assert call["agent"] == "1001"
        assert call["contact"] == "Bob Customer"
        assert call["outcome"] == "support"
        assert call["notes"] == "asked about the invoice"
        assert call["follow_up"] == "2026-12-01"

        async with client.get("/api/calls", params={"offset": "1", "limit": "1"}) as resp:
            page = await resp.json()
        assert (page["total"], page["offset"], page["limit"], len(page["calls"])) == (2, 1, 1, 1)
        async with client.get("/api/calls", params={"start": "2026-11-22"}) as resp:
            assert (await resp.json())["total"] == 0
        async with client.get("/api/calls", params={"customer": "bob"}) as resp:
            assert (await resp.json())["total"] == 1
        async with client.get("/api/calls", params={"start": "yesterday"}) as resp:
            assert resp.status == 400

        async with client.get("/calls", params={"agent": "1001"}) as resp:
            html = await resp.text()
        assert "asked about the invoice" in html
        assert "2026-12-01" in html
        assert LOCAL_TIME_CELL.search(html), html
        assert 'data-number="+34915550123"' in html


async def test_calls_csv_neutralises_formulas(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.store.create_contact(name='=HYPERLINK("http://evil")', numbers=[CALLER])
        await env.login(client, "1001")
        await env.ami.replay_trace(QUEUE_TRACE)
        await env.drain()
        async with client.get("/calls.csv", params={"agent": "1001"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/csv")
            text = await resp.text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:4] == ["time", "uniqueid", "linkedid", "caller"]
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["contact"] == '\'=HYPERLINK("http://evil")'
    assert row["caller"] == "'+34915550123"  # a leading + is a formula trigger too


async def test_click_to_dial_sends_originate_and_reports_the_response(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        token = await env.login(client, "1002")
        async with client.post(
            "/api/dial", json={"number": "+34915550123"}, headers={"X-CSRF-Token": token}
        ) as resp:
            body = await resp.json()
        assert resp.status == 200, body
        assert body["ok"] is True
        assert body["reason_text"] == "answered"
        (action,) = env.ami.actions_named("Originate")
        headers = dict(action.headers)
        assert headers["Channel"] == "PJSIP/1002"
        assert headers["Context"] == OUTBOUND_CONTEXT
        assert headers["Exten"] == "+34915550123"
        assert headers["Priority"] == "1"
        assert headers["CallerID"] == "<0777>"
        assert headers["Async"] == "true"
        assert headers["ActionID"] == body["action_id"]
        assert action.get_all("Variable") == ["CENTRALITA_DIAL=+34915550123"]

        # Private: Anonymous caller ID; a failed originate is reported as such.
        env.ami.originate_result = ("Failure", 5)
        async with client.post(
            "/api/dial",
            json={"number": "5550001", "private": True},
            headers={"X-CSRF-Token": token},
        ) as resp:
            body = await resp.json()
        assert resp.status == 502
        assert (body["ok"], body["reason_text"]) == (False, "busy")
        second = env.ami.actions_named("Originate")[1]
        assert second.value("CallerID") == '"Anonymous" <0777>'


async def test_contacts_create_search_and_link(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        token = await env.login(client, "1001")
        headers = {"X-CSRF-Token": token}
        async with client.post(
            "/api/contacts",
            json={"name": "Carla Nueva", "company": "Nueva SL", "number": "+34600111222"},
            headers=headers,
        ) as resp:
            assert resp.status == 201
            created = (await resp.json())["contact"]
        assert created["numbers"] == ["+34600111222"]
        async with client.post("/api/contacts", json={"name": "  "}, headers=headers) as resp:
            assert resp.status == 400
        async with client.get("/api/contacts", params={"q": "carla"}) as resp:
            found = (await resp.json())["contacts"]
        assert [c["id"] for c in found] == [created["id"]]
        async with client.post(
            f"/api/contacts/{created['id']}/numbers",
            json={"number": "915 550 123"},
            headers=headers,
        ) as resp:
            assert resp.status == 200
        async with client.get("/api/contacts", params={"number": "+34 915550123"}) as resp:
            by_number = (await resp.json())["contacts"]
        assert [c["name"] for c in by_number] == ["Carla Nueva"]
        async with client.post(
            "/api/contacts/999999/numbers", json={"number": "915550123"}, headers=headers
        ) as resp:
            assert resp.status == 404


async def test_callmyway_event_pops_and_acks(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.store.create_contact(name="Dora", numbers=["+34911222333"])
        await env.login(client, "1003")
        async with client.ws_connect("/ws") as ws:
            await env.wait_sockets("1003")
            start: dict[str, Any] = {
                "action": "callStart",
                "data": {
                    "callid": "cmw-42",
                    "account_id": "acct-7",
                    "endpoint_id": "1003",
                    "ani": "+34911222333",
                    "dnis": "0777",
                    "detect_time": "2026-11-21 10:00:00",
                    "connect_time": "",
                    "disconnect_time": "",
                    "duration": 0,
                    "type": "in",
                    "cost": 0,
                },
            }
            async with env.session() as pbx:
                async with pbx.post(
                    "/api/events/callmyway", json=start, headers=EVENTS_HEADERS
                ) as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"ack": "ok"}
                ringing = await receive_json(ws)
                assert ringing["type"] == "call.ringing"
                assert ringing["call_id"] == "cmw-42"
                assert ringing["number"] == "+34911222333"
                assert [c["name"] for c in ringing["contacts"]] == ["Dora"]
                end = {"action": "callEnd", "data": {**start["data"], "duration": 30}}
                async with pbx.post(
                    "/api/events/callmyway", json=end, headers=EVENTS_HEADERS
                ) as resp:
                    assert await resp.json() == {"ack": "ok"}
                assert (await receive_json(ws))["type"] == "call.ended"
                for bad, why in [
                    ("not json", "not valid JSON"),
                    (json.dumps({"action": "callFoo", "data": {}}), "action must be"),
                    (json.dumps({"action": "callStart", "data": {"callid": "x"}}), "endpoint_id"),
                    (
                        json.dumps(
                            {"action": "callStart", "data": {"callid": "x", "endpoint_id": "77"}}
                        ),
                        "not an agent",
                    ),
                    (
                        json.dumps(
                            {
                                "action": "callStart",
                                "data": {
                                    "callid": "x",
                                    "endpoint_id": "1003",
                                    "detect_time": "tuesday",
                                },
                            }
                        ),
                        "detect_time",
                    ),
                ]:
                    async with pbx.post(
                        "/api/events/callmyway",
                        data=bad,
                        headers={"Content-Type": "application/json", **EVENTS_HEADERS},
                    ) as resp:
                        assert resp.status == 400, bad
                        assert why in (await resp.json())["error"]


async def test_metrics_expose_pops_ami_and_backlog(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        await env.login(client, "1001")
        async with client.ws_connect("/ws"):
            await env.wait_sockets("1001")
            await env.ami.replay_trace(QUEUE_TRACE)
            await env.drain()
            async with client.get("/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
    lines = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert lines["centralita_ami_connected"] == 1.0
    assert lines["centralita_console_sockets"] == 1.0
    assert lines["centralita_webhook_backlog"] == 0.0
    assert lines["centralita_active_calls"] == 0.0
    assert lines['centralita_pops_sent_total{type="call.ringing"}'] >= 1.0
    assert "centralita_pop_seconds_count" in lines
    assert "centralita_agi_command_seconds_count" in lines


async def test_pages_need_login_and_render(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        for path in ("/", "/calls", "/callbacks", "/complaints", "/calls.csv"):
            async with client.get(path, allow_redirects=False) as resp:
                assert resp.status == 303, path
                assert resp.headers["Location"] == "/login"
        async with client.get("/api/calls") as resp:
            assert resp.status == 401
        await env.store.add_callback(
            callerid="600111222",
            language="en",
            queue="support-en",
            number="600111222",
            alternative="",
            uniqueid="1.5",
        )
        await env.store.add_rating(
            callerid="600333444", agent="1002", queue="support-en", rating=2, call_id="1.6"
        )
        await env.login(client, "1001")
        async with client.get("/") as resp:
            html = await resp.text()
        csrf_from_html(html)
        assert "Amira Haddad" in html
        assert '<option value="call-back">' in html
        async with client.get("/callbacks", params={"status": "pending"}) as resp:
            text = await resp.text()
        assert 'data-number="600111222"' in text
        assert LOCAL_TIME_CELL.search(text), text  # local time with its offset, as the CLI
        async with client.get("/callbacks", params={"status": "bogus"}) as resp:
            assert resp.status == 400
        async with client.get("/complaints") as resp:
            text = await resp.text()
        assert "600333444" in text
        assert "<td>2</td>" in text
        assert LOCAL_TIME_CELL.search(text), text


async def test_shutdown_closes_console_sockets(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.login(client, "1001")
        ws = await client.ws_connect("/ws")
        await env.wait_sockets("1001")
        # The browser keeps reading while the server shuts down (and answers the close).
        reader = asyncio.ensure_future(receive_past_state(ws))
        await asyncio.wait_for(env.server.close(), 10)
        msg = await reader
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1001
        await ws.close()


async def test_contact_lookup_falls_back_to_the_store(tmp_path: Path) -> None:
    from centralita.pop import PopBridge, PopHub, SimpleChange
    from centralita.store import Store
    from dialplan.model import CrmSettings

    async with Store.open(tmp_path / "c.db") as store:
        bob = await store.create_contact(name="Bob", numbers=[CALLER])
        await store.create_contact(name="Ann", numbers=["915550123"])
        change = SimpleChange(
            kind="ringing", call_id="c1", direction="in", number=CALLER, agent="1"
        )
        assert store.contacts_for_number_now(CALLER) is not None  # the fast path answers
        quick = await PopBridge(store, PopHub(), CrmSettings()).message_for(change)
        assert store._fast is not None
        store._fast.close()  # a closed (or busy) fast path answers None: the store is asked
        assert store.contacts_for_number_now(CALLER) is None
        slow = await PopBridge(store, PopHub(), CrmSettings()).message_for(change)
        assert quick["contacts"] == slow["contacts"]
        assert [c["name"] for c in quick["contacts"]] == ["Ann", "Bob"]
        assert quick["contacts"][1]["id"] == bob.id
        assert quick["contacts"][1]["numbers"] == [CALLER]
