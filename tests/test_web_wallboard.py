"""/wallboard and /wallboard/ws on the real app (loopback aiohttp, fake AMI over a socket):
supervisors only (403 for an agent, asserted per route), the snapshot and the live changes
as a recorded queue call plays, and the rebuild after the AMI link comes back."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from test_web_support import TRACES, WebEnv, console_env, receive_json

from ami.fake_queues import FakeEntry
from ami.testing import load_trace, rewrite
from centralita.keys import AMI_TAPS, SETTINGS, WALLBOARD
from centralita.store.queue_events import QueueCallUpdate
from centralita.web import wallboard as web_wallboard
from centralita.web.auth import WS_CLOSE_LOGGED_OUT

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"


class Board:
    """A wallboard socket read message by message: the snapshot frame is one message, each
    later frame a JSON array of them (docs/supervisors.md)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[str] = []  # every text frame read, as sent
        self._pending: list[dict[str, Any]] = []

    async def frame(self) -> Any:
        msg = await self.ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        self.frames.append(msg.data)
        return json.loads(msg.data)

    async def next(self) -> dict[str, Any]:
        while not self._pending:
            data = await self.frame()
            self._pending = data if isinstance(data, list) else [data]
        return self._pending.pop(0)

    async def close(self) -> None:
        await self.ws.close()


async def receive_until(
    board: Board, kind: str, key: str, value: str, field: str, want: object
) -> dict[str, object]:
    """Read messages until one of type `kind` whose `key` is `value` shows `field == want`."""
    while True:
        message = await board.next()
        if message["type"] != kind:
            continue
        item = message["queue" if kind == "wallboard.queue" else "agent"]
        if item[key] == value and item[field] == want:
            return item  # type: ignore[no-any-return]


async def open_board(env: WebEnv, client: aiohttp.ClientSession) -> Board:
    await env.login(client, "1001")  # Amira: a supervisor in the demo
    return Board(await client.ws_connect("/wallboard/ws"))


@pytest.mark.parametrize("extension", ["1002", "1200"])  # an agent; quality staff
async def test_the_wallboard_is_for_supervisors_only(tmp_path: Path, extension: str) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        async with client.get("/wallboard", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/login")
        async with client.get("/wallboard/ws") as resp:
            assert resp.status == 401
        await env.login(client, extension)
        async with client.get("/wallboard") as resp:
            assert resp.status == 403
            assert "supervisors" in await resp.text()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/wallboard/ws")
        assert refused.value.status == 403
        assert env.app[WALLBOARD].sockets == {}


async def test_a_socket_from_another_site_is_refused(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.login(client, "1001")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/wallboard/ws", origin="https://evil.example")
        assert refused.value.status == 403
        async with client.get("/wallboard") as resp:
            assert resp.status == 200
            html = await resp.text()
        assert 'id="wb-queues"' in html and "wallboard.js" in html
        assert resp.headers["Cache-Control"] == "no-store"


async def test_the_snapshot_then_each_change_of_a_queue_call(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        ws = await open_board(env, client)
        snapshot = await ws.next()
        assert snapshot["type"] == "wallboard.snapshot" and snapshot["asterisk"] is True
        assert abs(snapshot["now"] - time.time()) < 60
        assert [q["name"] for q in snapshot["queues"]] == ["support-ar", "support-en", "support-fr"]
        assert {a["extension"]: a["state"] for a in snapshot["agents"]} == {
            "1001": "free",
            "1002": "free",
            "1003": "free",
        }  # not 1100, 1101, 1200: their roles take no queue calls
        events = rewrite(load_trace(QUEUE_TRACE), {"support-sip": "support-en"})
        joined = 1 + next(i for i, m in enumerate(events) if m.name == "QueueCallerJoin")
        await env.ami.replay_trace(events[:joined])
        queue = await receive_until(ws, "wallboard.queue", "name", "support-en", "waiting", 1)
        assert queue["longest_wait_since"] is not None
        # Changes within one push tick are sent as where they ended: the call is replayed
        # in two parts, so that the agent is seen on the call, then free again.
        connected = 1 + next(i for i, m in enumerate(events) if m.name == "AgentConnect")
        await env.ami.replay_trace(events[joined:connected])
        await receive_until(ws, "wallboard.agent", "extension", "1001", "state", "on_call")
        await env.ami.replay_trace(events[connected:])
        agent = await receive_until(ws, "wallboard.agent", "extension", "1001", "state", "free")
        assert agent["queues"]
        queue = env.app[WALLBOARD].model.snapshot()["queues"][1]  # type: ignore[index]
        assert (queue["waiting"], queue["answered_today"], queue["service_level_pct"]) == (
            0,
            1,
            100.0,
        )
        await ws.close()


async def test_the_board_is_rebuilt_when_the_ami_link_comes_back(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        ws = await open_board(env, client)
        assert (await ws.next())["type"] == "wallboard.snapshot"
        queue = env.ami.queues.queue("support-fr")
        assert queue is not None
        queue.entries = [FakeEntry("SIP/trunk-7", "1800000000.7", start=time.time() - 30)]
        # Calls logged today while the link was down (another instance, say): the board
        # reads the day's counts from the queue-event log after the reconnect.
        joined = datetime.now(UTC).isoformat(timespec="seconds")
        await env.store.write_queue_events(
            [
                QueueCallUpdate("1.1", "support-fr", "answered", joined, 20, wait_s=5),
                QueueCallUpdate("1.2", "support-fr", "answered", joined, 20, wait_s=8),
                QueueCallUpdate("1.3", "support-fr", "answered", joined, 20, wait_s=40),
                QueueCallUpdate("1.4", "support-fr", "abandoned", joined, 20),
            ]
        )
        await env.ami.drop_connections()
        while True:  # away, then back: a snapshot each time
            snapshot = await ws.next()
            if snapshot["type"] == "wallboard.snapshot" and snapshot["asterisk"]:
                break
        fr = next(q for q in snapshot["queues"] if q["name"] == "support-fr")
        assert fr["waiting"] == 1
        if fr["answered_today"] != 3:  # the store is read right after the snapshot
            fr = await receive_until(
                ws, "wallboard.queue", "name", "support-fr", "answered_today", 3
            )
        assert (fr["abandoned_today"], fr["service_level_pct"]) == (1, 66.7)
        assert time.time() - 35 < fr["longest_wait_since"] < time.time() - 25
        queuesummary = env.ami.actions_named("QueueSummary")
        assert queuesummary, "the wallboard asks for QueueSummary after a reconnect"
        await ws.close()


async def test_the_socket_closes_when_the_supervisor_logs_out(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        csrf = await env.login(client, "1001")
        ws = await client.ws_connect("/wallboard/ws")
        assert (await receive_json(ws, skip=()))["type"] == "wallboard.snapshot"
        async with client.post("/logout", headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status in (200, 303)
        while True:  # snapshots may come first (the AMI link coming up)
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == WS_CLOSE_LOGGED_OUT
        assert env.app[WALLBOARD].sockets == {}


async def test_changes_come_in_frames_the_same_bytes_on_every_board(tmp_path: Path) -> None:
    """After the snapshot, each frame is a JSON array of the messages of one push: what
    changed with the events read since the last one. Every open board gets the very same
    frames."""
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        first = await open_board(env, client)
        second = Board(await client.ws_connect("/wallboard/ws"))  # a second tab
        for board in (first, second):
            assert (await board.next())["type"] == "wallboard.snapshot"
        hub = env.app[WALLBOARD]
        assert len(hub.sockets) == 2
        sent, frames = hub.sent, hub.frames
        events = rewrite(load_trace(QUEUE_TRACE), {"support-sip": "support-en"})
        connected = 1 + next(i for i, m in enumerate(events) if m.name == "AgentConnect")
        taps = env.app[AMI_TAPS]
        # The events up to the answer, handed to the readers as the AMI listener does, with
        # no pause between them (the pusher cannot run): their changes make one frame.
        for msg in events[:connected]:
            taps.on_event(msg)
        answered = await first.frame()
        agents = {m["agent"]["extension"]: m["agent"] for m in answered if "agent" in m}
        queues = {m["queue"]["name"]: m["queue"] for m in answered if "queue" in m}
        assert len(agents) + len(queues) == len(answered)  # nothing else, nothing twice
        assert agents["1001"]["state"] == "on_call"
        assert (queues["support-en"]["on_call"], queues["support-en"]["waiting"]) == (1, 0)
        for msg in events[connected:]:
            taps.on_event(msg)
        ended = await first.frame()
        agents = {m["agent"]["extension"]: m["agent"] for m in ended if "agent" in m}
        queues = {m["queue"]["name"]: m["queue"] for m in ended if "queue" in m}
        assert len(agents) + len(queues) == len(ended)
        assert agents["1001"]["state"] == "free"
        assert queues["support-en"]["answered_today"] == 1
        while len(second.frames) < 3:
            await second.frame()
        assert second.frames[1:] == first.frames[1:]  # after each one's own snapshot
        # Counted for both sockets: messages, and the frames that carried them.
        assert (hub.sent - sent, hub.frames - frames) == (2 * (len(answered) + len(ended)), 4)
        await first.close()
        await second.close()


async def stalled_browser(env: WebEnv, client: aiohttp.ClientSession) -> asyncio.StreamWriter:
    """A wallboard socket opened by hand (the upgrade request, the 101 read) that then reads
    nothing more, with a small receive buffer: a browser that stopped reading."""
    url = yarl.URL(env.url)
    host, port = url.host or "127.0.0.1", url.port or 80
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    cookie = "; ".join(f"{c.key}={c.value}" for c in client.cookie_jar)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /wallboard/ws HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return writer


async def test_a_stalled_supervisor_does_not_hold_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser that stops reading fills its socket's buffers; the frames after that wait
    at most one deadline (broadcast's, shortened here) before it is dropped, and every
    other board still gets every frame."""
    monkeypatch.setattr(web_wallboard, "SEND_TIMEOUT_S", 0.2)
    async with console_env(tmp_path) as env, env.session() as client:
        await env.wait_ami()
        await env.login(client, "1001")  # Amira: a supervisor in the demo
        stalled = await stalled_browser(env, client)  # opened first: written to first
        hub = env.app[WALLBOARD]
        good = Board(await client.ws_connect("/wallboard/ws", max_msg_size=0))
        assert (await good.next())["type"] == "wallboard.snapshot"
        assert len(hub.sockets) == 2
        text = "x" * (512 * 1024)
        frames = 40  # 20 MiB: more than the kernel's buffers hold for the stalled socket

        async def read_all() -> list[Any]:  # the good board reads as a browser does
            return [await good.frame() for _ in range(frames)]

        reading = asyncio.create_task(read_all())
        for i in range(frames):
            await hub.broadcast([json.dumps({"type": "test.padding", "i": i, "text": text})])
        assert len(hub.sockets) == 1  # the stalled one was dropped, the other kept
        received = await reading
        assert [(m["i"], m["text"]) for (m,) in received] == [(i, text) for i in range(frames)]
        await good.close()
        stalled.close()


async def test_an_open_board_is_sent_the_new_config_as_a_snapshot(tmp_path: Path) -> None:
    async with console_env(tmp_path, sip=True) as env, env.session() as client:
        await env.wait_ami()
        ws = await open_board(env, client)
        assert (await ws.next())["type"] == "wallboard.snapshot"
        site = env.settings.site
        sales = replace(site.queues[0], name="sales", id=9)
        nadia = replace(site.agents[2], extension="1010", name="Nadia Ben", queues=("sales",))
        members = (*(m for m in site.members if m.extension != "1002"), nadia)
        queues = (*(q for q in site.queues if q.name != "support-ar"), sales)
        new_site = replace(site, queues=queues, members=members)
        # A reload (centralita/live.py): every part takes the new site, in start-up order.
        assert env.app[SETTINGS].apply(replace(env.settings, site=new_site)).applied
        snapshot = await ws.next()
        assert snapshot["type"] == "wallboard.snapshot"
        assert [q["name"] for q in snapshot["queues"]] == ["support-en", "support-fr", "sales"]
        assert [a["extension"] for a in snapshot["agents"]] == ["1001", "1003", "1010"]
        await ws.close()
