"""Agent-state benchmark: 1,000 consoles connected, agents clicking pause and ready.

    .venv/bin/python bench/agent_state_bench.py [--agents 1000] [--clicks 2000] [--rate 100]

The whole app runs in this process on loopback; the fake AMI (`ami.testing.FakeAmiServer`
with a queue holding every agent, as queues.conf would) runs in a child process on a real
socket, and the agents' browsers (one WebSocket each, plus their clicks as HTTP POSTs) in
another, so neither steals the app's loop.

Each click is `POST /api/me/pause` (paused true with a reason, then false, in turns, agents
in random order, `--rate` clicks per second). Measured, on one clock (CLOCK_MONOTONIC is the
same for every process of the machine):

* click -> AMI: from just before the browser sends the POST to the moment the fake Asterisk
  has read the `QueuePause` action;
* AMI -> page: from just before the fake writes the `QueueMemberPause` event back to the
  moment the agent's socket has the `agent.state` message that shows it.

Baseline, in the same run and the same processes: the browser's `GET /healthz` round trip
(HTTP through the same app, no AMI) and a WebSocket `ping` -> `pong` round trip.
Target: p99 < 50 ms for both measures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import random
import sys
import tempfile
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from ami.fake_queues import FakeQueues, Headers  # noqa: E402
from ami.protocol import AmiMessage  # noqa: E402
from ami.testing import FakeAmiServer  # noqa: E402
from centralita.app import create_app  # noqa: E402
from centralita.keys import AGENT_STATES, AMI, AUTH, HUB  # noqa: E402
from centralita.settings import demo_text, parse_settings  # noqa: E402
from centralita.web.auth import COOKIE  # noqa: E402

SECRET = "bench-ami-secret"
FIRST_AGENT = 3000
QUEUE = "support-en"
REASON = "break"


def extension(i: int) -> str:
    return str(FIRST_AGENT + i)


# ----------------------------------------------------------------------------- child: fake AMI


class TimedQueues(FakeQueues):
    """Notes when each QueuePause was read and when its events were about to be written
    (the fake writes the response, then the events, right after `act` returns)."""

    def __init__(self) -> None:
        super().__init__()
        self.read_at: list[tuple[str, str, float]] = []  # (interface, paused, when)
        self.event_at: list[tuple[str, str, float]] = []

    def act(
        self, msg: AmiMessage, devices: Mapping[str, str] | None = None
    ) -> tuple[Headers, list[AmiMessage]]:
        interface, paused = msg.value("Interface"), msg.value("Paused")
        self.read_at.append((interface, paused, time.monotonic()))
        answer = super().act(msg, devices)
        self.event_at.append((interface, paused, time.monotonic()))
        return answer


def fake_ami_process(conn: Connection, agents: int) -> None:
    asyncio.run(_fake_ami(conn, agents))


async def _fake_ami(conn: Connection, agents: int) -> None:
    fake = FakeAmiServer(username="centralita", secret=SECRET)
    queues = TimedQueues()
    fake.queues = queues
    members = [(f"SIP/{extension(i)}", f"Bench {extension(i)}") for i in range(agents)]
    queues.add_queue(QUEUE, members)
    async with fake:
        conn.send(fake.port)
        await asyncio.to_thread(conn.recv)  # "report"
        conn.send((queues.read_at, queues.event_at))
        await asyncio.to_thread(conn.recv)  # "stop"


# ----------------------------------------------------------------------------- child: browsers


def browsers_process(
    conn: Connection, web_port: int, sessions: list[tuple[str, str, str]], clicks: int, rate: float
) -> None:
    asyncio.run(_browsers(conn, web_port, sessions, clicks, rate))


async def _browsers(
    conn: Connection, web_port: int, sessions: list[tuple[str, str, str]], clicks: int, rate: float
) -> None:
    base = f"http://127.0.0.1:{web_port}"
    http = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=60),
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=0),
    )
    sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
    for ext, cookie, _ in sessions:
        sockets[ext] = await http.ws_connect(f"{base}/ws", headers={"Cookie": f"{COOKIE}={cookie}"})
    # (extension, paused, when the page had it)
    shown: list[tuple[str, bool, float]] = []
    pongs: list[float] = []
    ping_sent: dict[str, float] = {}
    # Agents whose last click the page does not show yet -> the pause value clicked.
    waiting: dict[str, bool] = {}

    async def reader(ext: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.monotonic()
            if msg.data == '{"type":"pong"}':
                pongs.append(now - ping_sent.pop(ext, now))
                continue
            if '"agent.state"' in msg.data:
                paused = '"paused":true' in msg.data
                shown.append((ext, paused, now))
                if waiting.get(ext) is paused:
                    del waiting[ext]  # the page shows what was clicked: clickable again

    readers = [asyncio.create_task(reader(ext, ws)) for ext, ws in sockets.items()]
    conn.send("connected")
    await asyncio.to_thread(conn.recv)  # "go"

    # Baseline: HTTP and WebSocket round trips through the same app, 200 of each.
    health: list[float] = []
    me: list[float] = []
    for i in range(200):
        before = time.monotonic()
        async with http.get(f"{base}/healthz") as resp:
            await resp.read()
        health.append(time.monotonic() - before)
        ext, cookie, _ = sessions[i % len(sessions)]
        before = time.monotonic()
        async with http.get(f"{base}/api/me", headers={"Cookie": f"{COOKIE}={cookie}"}) as resp:
            await resp.read()
        me.append(time.monotonic() - before)
        ext = sessions[i % len(sessions)][0]
        ping_sent[ext] = time.monotonic()
        await sockets[ext].send_str("ping")
        await asyncio.sleep(0.005)

    clicked: list[tuple[str, bool, float, int]] = []
    state = dict.fromkeys((s[0] for s in sessions), False)
    order = [sessions[random.randrange(len(sessions))] for _ in range(clicks)]

    async def click(ext: str, cookie: str, token: str, paused: bool) -> None:
        body = {"paused": paused, "reason": REASON if paused else ""}
        headers = {"Cookie": f"{COOKIE}={cookie}", "X-CSRF-Token": token}
        before = time.monotonic()
        async with http.post(f"{base}/api/me/pause", json=body, headers=headers) as resp:
            await resp.read()
            clicked.append((ext, paused, before, resp.status))

    tasks = []
    for ext, cookie, token in order:
        if ext in waiting:
            continue  # a person clicks again only once the page shows the last click
        state[ext] = not state[ext]
        waiting[ext] = state[ext]
        tasks.append(asyncio.create_task(click(ext, cookie, token, state[ext])))
        await asyncio.sleep(1.0 / rate)
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)  # the last events back
    conn.send((clicked, shown, health, me, pongs))
    for ws in sockets.values():
        await ws.close()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await http.close()


# ----------------------------------------------------------------------------- the run


def config_text(data_dir: Path, ami_port: int, agents: int) -> str:
    text = demo_text()
    text = text.replace("agi_port = 4573", "agi_port = 0")
    text = text.replace("ami_port = 5038", f"ami_port = {ami_port}")
    text = text.replace('ami_secret = "change-me-centralita"', f'ami_secret = "{SECRET}"')
    text = text.replace('sip_driver = "pjsip"', 'sip_driver = "sip"')
    text = text.replace('data_dir = "data"', f'data_dir = "{data_dir}"')
    text = text.replace('log_level = "INFO"', 'log_level = "WARNING"')
    for a in range(agents):
        ext = extension(a)
        text += (
            f'\n[[agents]]\nextension = "{ext}"\nname = "Bench {ext}"\n'
            f'queues = ["{QUEUE}"]\nsecret = "bench-secret-{ext}"\n'
        )
    return text


async def live(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    parent, child = multiprocessing.Pipe()
    fake = multiprocessing.Process(target=fake_ami_process, args=(child, args.agents), daemon=True)
    fake.start()
    port = await asyncio.to_thread(parent.recv)
    config = tmp / "centralita.toml"
    text = config_text(tmp / "data", port, args.agents)
    config.write_text(text, encoding="utf-8")
    app = create_app(parse_settings(text, str(config), tmp, config))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    web_port = runner.addresses[0][1]
    await app[AMI].wait_connected(30)
    auth = app[AUTH]
    sessions = []
    for a in range(args.agents):
        cookie, session = auth.issue(extension(a))
        sessions.append((extension(a), cookie, auth.csrf_token(session)))
    browsers_conn, browsers_child = multiprocessing.Pipe()
    browsers = multiprocessing.Process(
        target=browsers_process,
        args=(browsers_child, web_port, sessions, args.clicks, args.rate),
        daemon=True,
    )
    browsers.start()
    assert await asyncio.to_thread(browsers_conn.recv) == "connected"
    for _ in range(500):
        if app[HUB].count() == args.agents:
            break
        await asyncio.sleep(0.01)
    assert app[HUB].count() == args.agents
    # As a long-running server should once started (docs/console.md, bench/pop_bench.py):
    # the startup objects out of the collector's way.
    gc.collect()
    gc.freeze()
    cpu_before = time.process_time()
    started = time.perf_counter()
    browsers_conn.send("go")
    clicked, shown, health, me, pongs = await asyncio.to_thread(browsers_conn.recv)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    parent.send("report")
    read_at, event_at = await asyncio.to_thread(parent.recv)
    pushed = app[AGENT_STATES].sent
    browsers.join(30)
    await runner.cleanup()
    parent.send("stop")
    fake.join(10)
    return {
        "clicked": clicked,
        "shown": shown,
        "health": health,
        "me": me,
        "pongs": pongs,
        "read_at": read_at,
        "event_at": event_at,
        "pushed": pushed,
        "elapsed": elapsed,
        "cpu": cpu,
    }


def match_latencies(
    starts: list[tuple[str, bool, float]], ends: list[tuple[str, bool, float]]
) -> list[float]:
    """For each start (agent, paused, t), the first end of the same agent and pause value
    at or after t: its delay."""
    by_key: dict[tuple[str, bool], list[float]] = {}
    for ext, paused, when in ends:
        by_key.setdefault((ext, paused), []).append(when)
    out = []
    for ext, paused, when in starts:
        later = [t for t in by_key.get((ext, paused), []) if t >= when]
        if later:
            out.append(min(later) - when)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(values: list[float]) -> str:
    if not values:
        return "-"
    ms = [v * 1000 for v in values]
    return f"p50 {pct(ms, 0.5):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms   max {max(ms):7.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--clicks", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0, help="clicks per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agent-state-bench-") as tmp:
        r = asyncio.run(live(args, Path(tmp)))

    def ext_of(interface: str) -> str:
        return interface.partition("/")[2]

    clicks = [(ext, paused, when) for ext, paused, when, _ in r["clicked"]]
    ok_clicks = sum(1 for *_, status in r["clicked"] if status == 200)
    reads = [(ext_of(i), p == "true", t) for i, p, t in r["read_at"]]
    events = [(ext_of(i), p == "true", t) for i, p, t in r["event_at"]]
    to_ami = match_latencies(clicks, reads)
    to_page = match_latencies(events, r["shown"])
    p99_ami = pct(to_ami, 0.99) * 1000 if to_ami else float("inf")
    p99_page = pct(to_page, 0.99) * 1000 if to_page else float("inf")
    rows = [
        ("agents connected (WebSockets)", f"{args.agents}"),
        ("pause/ready clicks (answered 200)", f"{len(clicks)} ({ok_clicks})"),
        ("QueuePause read by the fake AMI", f"{len(reads)}"),
        ("agent.state messages pushed", f"{r['pushed']}"),
        ("baseline: GET /healthz round trip", figures(r["health"])),
        ("baseline: GET /api/me round trip", figures(r["me"])),
        ("baseline: WebSocket ping -> pong", figures(r["pongs"])),
        ("click -> QueuePause at AMI", figures(to_ami)),
        ("QueueMemberPause -> agent's page", figures(to_page)),
        ("this process's CPU during the run", f"{r['cpu']:.1f} s in {r['elapsed']:.1f} s"),
        ("target p99 < 50 ms (click -> AMI)", "met" if p99_ami < 50 else "NOT met"),
        ("target p99 < 50 ms (AMI -> page)", "met" if p99_page < 50 else "NOT met"),
    ]
    width = max(len(k) for k, _ in rows)
    print("Agent-state benchmark (bench/agent_state_bench.py)")
    print("-" * (width + 60))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
