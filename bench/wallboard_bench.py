"""Wallboard benchmark: 20 supervisors' wallboards, 1,000 agents in 50 queues, 200 calls/s.

    .venv/bin/python bench/wallboard_bench.py [--supervisors 20] [--agents 1000]
        [--queues 50] [--rate 200] [--seconds 10]

The whole app (store, FastAGI, console, AMI listener, wallboard) runs in this process on
loopback. The fake AMI (`ami.testing.FakeAmiServer`) runs in a child process and streams,
over a real AMI socket, copies of asterisk-traces/ami-queue-sip-call.txt (a queue call
ringing, answered and ended at one agent: QueueCallerJoin, AgentCalled, QueueCallerLeave,
AgentConnect, AgentComplete among its 86 events), each call renamed (Uniqueids, channels,
caller, agent, queue) and given the two `QueueMemberStatus` events app_queue sends as the
agent's device goes in use and back (`update_status`), its events spread over 3 s, a new
call every 1/rate s. The supervisors' browsers (one /wallboard/ws each) run in another child
process and count what they receive.

Reported: p50/p99 latency from the moment an event's bytes were read from the AMI socket to
the moment the wallboard messages it caused were written to each supervisor's socket (one
sample per event and socket), for the same load with 1 supervisor (the baseline, measured
first in the same run) and with --supervisors. Target: p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("CENTRALITA_BENCH_TREE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

import ami.client  # noqa: E402
from ami.fake_queues import FakeQueues  # noqa: E402
from ami.protocol import AmiMessage, AmiParser  # noqa: E402
from ami.testing import FakeAmiServer, load_trace  # noqa: E402
from centralita.agentstate import MEMBER_EVENTS  # noqa: E402
from centralita.app import create_app  # noqa: E402
from centralita.keys import AMI, AUTH, WALLBOARD  # noqa: E402
from centralita.settings import demo_text, parse_settings  # noqa: E402
from centralita.wallboard import CALL_EVENTS, Wallboard  # noqa: E402
from centralita.web.auth import COOKIE  # noqa: E402
from centralita.web.wallboard import WallboardHub  # noqa: E402

TRACE = ROOT / "tests" / "fixtures" / "asterisk-traces" / "ami-queue-sip-call.txt"
SECRET = "bench-ami-secret"
CALL_SECONDS = 3.0
FIRST_AGENT = 2000
FIRST_SUPERVISOR = 9000
TARGET_P99_MS = 100.0


def queue_name(i: int) -> str:
    return f"bench-q{i:02d}"


def member_status(queue: str, agent: str, *, in_call: bool, status: int) -> AmiMessage:
    """A QueueMemberStatus as app_queue sends it (queue_member_blob_create's fields)."""
    return AmiMessage.build(
        [
            ("Event", "QueueMemberStatus"),
            ("Privilege", "agent,all"),
            ("Queue", queue),
            ("MemberName", f"Bench {agent}"),
            ("Interface", f"SIP/{agent}"),
            ("StateInterface", f"SIP/{agent}"),
            ("Membership", "static"),
            ("Penalty", "0"),
            ("CallsTaken", "0"),
            ("LastCall", "0"),
            ("LastPause", "0"),
            ("LoginTime", "0"),
            ("InCall", "1" if in_call else "0"),
            ("Status", str(status)),
            ("Paused", "0"),
            ("PausedReason", ""),
            ("Ringinuse", "0"),
            ("Wrapuptime", "0"),
        ]
    )


class CallTemplate:
    """The trace's events with, for each header value, the parts a call renames (so that
    making 2,000 calls' worth does not run every replacement over every value)."""

    def __init__(self, base: list[AmiMessage]) -> None:
        bridges = sorted({m.value("BridgeUniqueid") for m in base if m.value("BridgeUniqueid")})
        self.bridges = bridges
        keys = ["1795301086.", "SIP/1001", "-00000000", "+34915550123", "support-sip", *bridges]
        self.events = [
            (
                msg.kind,
                [(name, value, [k for k in keys if k in value]) for name, value in msg.headers],
            )
            for msg in base
        ]

    def call(self, replacements: dict[str, str]) -> list[AmiMessage]:
        out = []
        for kind, headers in self.events:
            fresh = []
            for name, value, hits in headers:
                for key in hits:
                    value = value.replace(key, replacements[key])
                fresh.append((name, value))
            out.append(AmiMessage(kind, tuple(fresh)))
        return out


def call_events(template: CallTemplate, i: int, agents: int, queues: int) -> list[AmiMessage]:
    """The trace's events as call number i, in queue i % queues, at an agent of that queue."""
    queue = i % queues
    per_queue = agents // queues
    agent = str(FIRST_AGENT + queue * per_queue + (i // queues) % per_queue)
    replacements = {
        "1795301086.": f"{1800000000 + i}.",
        "SIP/1001": f"SIP/{agent}",
        "-00000000": f"-{i:08x}",
        "+34915550123": f"+3491{i % 10_000_000:07d}",
        "support-sip": queue_name(queue),
    }
    for n, bridge in enumerate(template.bridges):
        replacements[bridge] = f"bench-{i}-{n}"
    out: list[AmiMessage] = []
    for msg in template.call(replacements):
        out.append(msg)
        if msg.name == "AgentConnect":
            out.append(member_status(queue_name(queue), agent, in_call=True, status=2))
        elif msg.name == "AgentComplete":
            out.append(member_status(queue_name(queue), agent, in_call=False, status=1))
    return out


def timeline(calls: int, rate: float, agents: int, queues: int) -> list[tuple[float, AmiMessage]]:
    template = CallTemplate(load_trace(TRACE))
    out = []
    for i in range(calls):
        events = call_events(template, i, agents, queues)
        step = CALL_SECONDS / len(events)
        for j, msg in enumerate(events):
            out.append((i / rate + j * step, msg))
    out.sort(key=lambda item: item[0])
    return out


# ----------------------------------------------------------------------------- child: fake AMI


def add_queues(queues: FakeQueues, args: argparse.Namespace) -> None:
    per_queue = args.agents // args.queues
    for q in range(args.queues):
        last = args.agents if q == args.queues - 1 else (q + 1) * per_queue
        members = [
            (f"SIP/{FIRST_AGENT + a}", f"Bench {FIRST_AGENT + a}")
            for a in range(q * per_queue, last)
        ]
        queues.add_queue(queue_name(q), members)


def fake_ami_process(conn: Connection, args: argparse.Namespace) -> None:
    asyncio.run(_fake_ami(conn, args))


async def _fake_ami(conn: Connection, args: argparse.Namespace) -> None:
    calls = int(args.rate * args.seconds)
    events = timeline(calls, args.rate, args.agents, args.queues)
    async with FakeAmiServer(username="centralita", secret=SECRET) as fake:
        add_queues(fake.queues, args)  # queues.conf's static members, for QueueStatus
        conn.send(fake.port)
        await fake.wait_for_sessions(1, timeout_s=30)
        await asyncio.to_thread(conn.recv)  # "go"
        started = time.perf_counter()
        sent = 0
        index = 0
        while index < len(events):
            now = time.perf_counter() - started
            batch = []
            while index < len(events) and events[index][0] <= now:
                batch.append(events[index][1])
                index += 1
            if batch:
                sent += await fake.push_events(batch)
            await asyncio.sleep(0.005)
        conn.send((sent, time.perf_counter() - started))
        await asyncio.to_thread(conn.recv)  # "stop"


# ----------------------------------------------------------------------------- child: browsers


def browsers_process(conn: Connection, web_port: int, cookies: list[str]) -> None:
    asyncio.run(_browsers(conn, web_port, cookies))


async def _browsers(conn: Connection, web_port: int, cookies: list[str]) -> None:
    """The supervisors' wallboards: one WebSocket each, counting the messages received."""
    received = 0
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=60),
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=0),
    )
    sockets = [
        await session.ws_connect(
            f"http://127.0.0.1:{web_port}/wallboard/ws",
            headers={"Cookie": f"{COOKIE}={cookie}"},
            max_msg_size=0,
        )
        for cookie in cookies
    ]

    async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal received
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                received += 1

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    conn.send("connected")
    expected = await asyncio.to_thread(conn.recv)  # how many messages the app wrote
    for _ in range(1000):
        if received >= expected:
            break
        await asyncio.sleep(0.01)
    conn.send(received)
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await session.close()


# ----------------------------------------------------------------------------- timing hooks


class StampingParser(AmiParser):
    """Notes when each chunk of bytes was read, so latency starts at the socket read."""

    read_at = 0.0

    def receive_data(self, data: bytes) -> list[AmiMessage]:
        StampingParser.read_at = time.perf_counter()
        return super().receive_data(data)


class Timing:
    """The read times of the events the model took since its last refresh, and the
    latency samples (one per event and socket the messages it caused were written to)."""

    def __init__(self) -> None:
        self.pending: list[float] = []
        self.batch: list[float] = []
        self.samples: list[float] = []
        self.recording = False

    def install(self) -> None:
        timing = self
        on_event = Wallboard.on_event
        refresh = Wallboard.refresh
        send = WallboardHub.send

        def timed_on_event(self: Wallboard, msg: AmiMessage) -> None:
            if timing.recording and (msg.name in CALL_EVENTS or msg.name in MEMBER_EVENTS):
                timing.pending.append(StampingParser.read_at)
            on_event(self, msg)

        def timed_refresh(self: Wallboard) -> list[str]:
            messages = refresh(self)
            timing.batch, timing.pending = (timing.pending, []) if messages else ([], [])
            return messages

        async def timed_send(
            self: WallboardHub, ws: web.WebSocketResponse, messages: list[str]
        ) -> None:
            batch = timing.batch
            await send(self, ws, messages)
            done = time.perf_counter()
            timing.samples.extend(done - at for at in batch)

        Wallboard.on_event = timed_on_event  # type: ignore[method-assign]
        Wallboard.refresh = timed_refresh  # type: ignore[method-assign]
        WallboardHub.send = timed_send  # type: ignore[method-assign]


TIMING = Timing()
TIMING.install()

# ----------------------------------------------------------------------------- the live run


def config_text(data_dir: Path, ami_port: int, args: argparse.Namespace) -> str:
    text = demo_text()
    text = text.replace("agi_port = 4573", "agi_port = 0")
    text = text.replace("ami_port = 5038", f"ami_port = {ami_port}")
    text = text.replace('ami_secret = "change-me-centralita"', f'ami_secret = "{SECRET}"')
    text = text.replace('sip_driver = "pjsip"', 'sip_driver = "sip"')
    text = text.replace('data_dir = "data"', f'data_dir = "{data_dir}"')
    text, found = re.subn(r"^log_level = .*$", 'log_level = "WARNING"', text, flags=re.M)
    if not found:
        text = text.replace('log_format = "text"', 'log_format = "text"\nlog_level = "WARNING"')
    for q in range(args.queues):
        text += f'\n[[queues]]\nname = "{queue_name(q)}"\nid = {100 + q}\nstrategy = "ringall"\n'
    per_queue = args.agents // args.queues
    for a in range(args.agents):
        ext = FIRST_AGENT + a
        text += (
            f'\n[[members]]\nextension = "{ext}"\nname = "Bench {ext}"\nrole = "agent"\n'
            f'queues = ["{queue_name(min(a // per_queue, args.queues - 1))}"]\n'
            f'secret = "bench-secret-{ext}"\n'
        )
    for s in range(args.supervisors):
        ext = FIRST_SUPERVISOR + s
        text += (
            f'\n[[members]]\nextension = "{ext}"\nname = "Supervisor {ext}"\n'
            f'role = "supervisor"\nsecret = "bench-secret-{ext}"\n'
        )
    return text


async def live(args: argparse.Namespace, supervisors: int, tmp: Path) -> dict[str, Any]:
    timing = TIMING
    timing.pending, timing.batch, timing.samples = [], [], []
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=fake_ami_process, args=(child, args), daemon=True)
    proc.start()
    port = await asyncio.to_thread(parent.recv)
    config = tmp / "centralita.toml"
    text = config_text(tmp / "data", port, args)
    config.write_text(text, encoding="utf-8")
    settings = parse_settings(text, str(config), tmp, config)
    ami.client.AmiParser = StampingParser  # type: ignore[attr-defined]

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    web_port = runner.addresses[0][1]
    await app[AMI].wait_connected(30)
    auth = app[AUTH]
    cookies = [auth.issue(str(FIRST_SUPERVISOR + s))[0] for s in range(supervisors)]
    browsers_conn, browsers_child = multiprocessing.Pipe()
    browsers = multiprocessing.Process(
        target=browsers_process, args=(browsers_child, web_port, cookies), daemon=True
    )
    browsers.start()
    assert await asyncio.to_thread(browsers_conn.recv) == "connected"
    hub = app[WALLBOARD]
    for _ in range(1000):
        if len(hub.sockets) == supervisors:
            break
        await asyncio.sleep(0.01)
    assert len(hub.sockets) == supervisors, len(hub.sockets)
    gc.collect()
    gc.freeze()
    sent_before = hub.sent
    cpu_before = time.process_time()
    timing.recording = True
    parent.send("go")
    started = time.perf_counter()
    sent_events, child_elapsed = await asyncio.to_thread(parent.recv)
    await app[AMI].drain(60)
    await asyncio.sleep(0.2)  # the last flush
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    timing.recording = False
    written = hub.sent - sent_before
    browsers_conn.send(hub.sent)  # the snapshots too
    received = await asyncio.to_thread(browsers_conn.recv)
    browsers.join(30)
    await runner.cleanup()
    parent.send("stop")
    proc.join(10)
    gc.unfreeze()
    return {
        "supervisors": supervisors,
        "sent_events": sent_events,
        "events_per_s": sent_events / child_elapsed,
        "written": written,
        "received": received,
        "expected": hub.sent,
        "samples": [x * 1000 for x in timing.samples],
        "cpu": cpu,
        "elapsed": elapsed,
    }


def model_alone(args: argparse.Namespace, tmp: Path) -> tuple[int, float, int]:
    """The model with the agent-state mirror, fed the same events without sockets:
    (events, seconds, messages), refreshing after every 10 events (a busy flush)."""
    from centralita.agentstate import AgentStates
    from centralita.pop import PopHub

    config = tmp / "centralita.toml"
    text = config_text(tmp / "data", 5038, args)
    config.write_text(text, encoding="utf-8")
    site = parse_settings(text, str(config), tmp, config).site
    states = AgentStates(site, PopHub())
    model = Wallboard(site, states)
    fake = FakeQueues()
    add_queues(fake, args)
    status = fake.status_items(AmiMessage.build([("Action", "QueueStatus")]))
    states.rebuild(status)
    model.rebuild_status(status)
    model.refresh()
    calls = min(2000, int(args.rate * args.seconds))
    events = [m for _, m in timeline(calls, args.rate, args.agents, args.queues)]
    messages = 0
    started = time.perf_counter()
    for n, msg in enumerate(events):
        states.handle(msg)
        model.on_event(msg)
        if n % 10 == 9:
            messages += len(model.refresh())
    return len(events), time.perf_counter() - started, messages


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supervisors", type=int, default=20)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0, help="new calls per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long calls start")
    args = parser.parse_args()
    if args.agents < args.queues:
        parser.error("--agents must be at least --queues")

    runs = []
    for supervisors in (1, args.supervisors):  # the baseline first, in the same run
        with tempfile.TemporaryDirectory(prefix="wallboard-bench-") as tmp:
            runs.append(asyncio.run(live(args, supervisors, Path(tmp))))
        done = runs[-1]
        print(
            f"  ({supervisors} supervisor(s): p99 {pct(done['samples'], 0.99):.1f} ms, "
            f"{done['events_per_s']:.0f} events/s)",
            file=sys.stderr,
            flush=True,
        )
    base, full = runs
    with tempfile.TemporaryDirectory(prefix="wallboard-bench-") as tmp:
        n_events, seconds, n_messages = model_alone(args, Path(tmp))
    ok = pct(full["samples"], 0.99) < TARGET_P99_MS
    print("Wallboard benchmark (bench/wallboard_bench.py)")
    print(
        f"{args.agents} agents in {args.queues} queues, {args.rate:g} calls/s for "
        f"{args.seconds:g} s over a real AMI socket"
    )
    header = f"{'':<44}{'baseline: 1 supervisor':>24}{f'{args.supervisors} supervisors':>22}"
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("AMI events sent by the fake", lambda r: f"{r['sent_events']}"),
        ("live AMI events/s", lambda r: f"{r['events_per_s']:.0f}"),
        ("wallboard messages written (all sockets)", lambda r: f"{r['written']}"),
        ("messages received by the browsers", lambda r: f"{r['received']} / {r['expected']}"),
        ("latency samples (event x socket)", lambda r: f"{len(r['samples'])}"),
        ("AMI read -> ws write p50", lambda r: f"{pct(r['samples'], 0.50):.2f} ms"),
        ("AMI read -> ws write p99", lambda r: f"{pct(r['samples'], 0.99):.2f} ms"),
        ("AMI read -> ws write max", lambda r: f"{max(r['samples'], default=0):.2f} ms"),
        ("mean", lambda r: f"{statistics.fmean(r['samples']) if r['samples'] else 0:.2f} ms"),
        ("app CPU / wall time", lambda r: f"{r['cpu']:.1f} s / {r['elapsed']:.1f} s"),
    ]
    for label, show in rows:
        print(f"{label:<44}{show(base):>24}{show(full):>22}")
    ratio = pct(full["samples"], 0.99) / max(pct(base["samples"], 0.99), 1e-9)
    print(f"{'p99 with ' + str(args.supervisors) + ' / with 1 supervisor':<44}{ratio:>46.2f}x")
    print(
        f"{'model alone (no sockets), events/s':<44}"
        f"{f'{n_events / seconds:,.0f} ({n_events} events, {n_messages} messages)':>46}"
    )
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{'machine load average (1/5/15 min)':<44}{load:>46}")
    print(f"{'target p99 < 100 ms':<44}{'met' if ok else 'NOT met':>46}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
