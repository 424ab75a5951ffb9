"""Screen-pop benchmark: 1,000 agent consoles, the fake AMI streaming 200 calls per second.

    .venv/bin/python bench/pop_bench.py [--agents 1000] [--rate 200] [--seconds 10]

The whole app (store, FastAGI, console, AMI listener) runs in this process on loopback. The
agents' browsers (one WebSocket each) run in a child process, as they would on the agents'
machines, and the fake AMI (`ami.testing.FakeAmiServer`) in another, so that neither steals
the app's loop; it streams copies of
asterisk-traces/ami-queue-sip-call.txt (86 events a call: a queue call ringing, answered
and ended at one agent, with its two Cdr records), each call renamed (Uniqueids, channels,
bridge, caller number, agent) and its events spread over 3 s, a new call every 1/rate s.

The fake applies the runtime user's `eventfilter` lines of the manager.conf `centralita
render` makes for the config, as Asterisk would, and stamps each event with the moment it
writes it (`Timestamp:`, as manager.conf's `timestampevents`); a tree from before
ami/eventfilter.py (bench/compare.py) gets every event, unstamped, as then.

Reported: the offered event rate (the schedule) against the rates the fake managed to write
and the app to read (a run that fell behind says so, loudly, and exits 1); p50/p99 latency
from the event's emission by the fake (from its read by the app on a tree without stamps)
to the moment its pop was written to the agent's socket (every ringing/answered/ended pop),
with the contact lookup in SQLite on the way; and the events per second parsed and tracked
(our sans-IO parser + CallTracker) against panoramisk's parsing alone (AMIProtocol
.data_received: decode, split, Message.from_line) over the same bytes in the same run.
Target: p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# The code under test: this checkout, or the one CENTRALITA_BENCH_TREE names (bench/compare.py
# runs this same harness against another commit's tree).
ROOT = Path(os.environ.get("CENTRALITA_BENCH_TREE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

import ami.client  # noqa: E402
from ami.protocol import AmiMessage, AmiParser, encode_packet  # noqa: E402
from ami.testing import FakeAmiServer, load_trace, rewrite  # noqa: E402
from ami.tracker import CallTracker  # noqa: E402
from centralita.app import create_app  # noqa: E402
from centralita.settings import demo_text, parse_settings  # noqa: E402
from centralita.web.auth import COOKIE  # noqa: E402

# A tree from before centralita/keys.py and centralita/feed.py keeps these elsewhere
# (bench/compare.py runs this harness on older commits). Decided by the tree's files, not by
# trying the import: the editable install would find the new modules in this checkout.
if (ROOT / "centralita" / "keys.py").exists():
    from centralita.feed import TimedTracker
    from centralita.keys import AMI, AUTH, BRIDGE, HUB, STORE
else:
    from centralita.web.state import AMI, AUTH, BRIDGE, HUB  # type: ignore[no-redef]

    from centralita.app import STORE  # type: ignore[attr-defined]
    from centralita.web import TimedTracker  # type: ignore[attr-defined,no-redef]

# The fake's eventfilter and stamped writes (ami/eventfilter.py, FakeAmiServer.push_encoded).
FILTERED = (ROOT / "ami" / "eventfilter.py").exists()

TRACE = ROOT / "tests" / "fixtures" / "asterisk-traces" / "ami-queue-sip-call.txt"
SECRET = "bench-ami-secret"
CALL_SECONDS = 3.0
FIRST_AGENT = 2000


def agent_of(i: int, agents: int) -> str:
    return str(FIRST_AGENT + i % agents)


def call_events(base: list[AmiMessage], i: int, agents: int) -> list[AmiMessage]:
    """The trace's events as call number i, at agent i % agents, from its own number."""
    bridges = {m.value("BridgeUniqueid") for m in base if m.value("BridgeUniqueid")}
    replacements = {
        "1795301086.": f"{1800000000 + i}.",
        "SIP/1001": f"SIP/{agent_of(i, agents)}",
        "-00000000": f"-{i:08x}",
        "+34915550123": f"+3491{i % 10_000_000:07d}",
    }
    for n, bridge in enumerate(sorted(bridges)):
        replacements[bridge] = f"bench-{i}-{n}"
    return rewrite(base, replacements)


def timeline(calls: int, rate: float, agents: int) -> list[tuple[float, AmiMessage]]:
    """Every event of every call with its send time: calls start 1/rate apart, 3 s long."""
    base = load_trace(TRACE)
    step = CALL_SECONDS / len(base)
    out = []
    for i in range(calls):
        start = i / rate
        for j, msg in enumerate(call_events(base, i, agents)):
            out.append((start + j * step, msg))
    out.sort(key=lambda item: item[0])
    return out


# ----------------------------------------------------------------------------- child: fake AMI


def fake_ami_process(
    conn: Connection, calls: int, rate: float, agents: int, manager_conf: str
) -> None:
    asyncio.run(_fake_ami(conn, calls, rate, agents, manager_conf))


async def _fake_ami(
    conn: Connection, calls: int, rate: float, agents: int, manager_conf: str
) -> None:
    events = timeline(calls, rate, agents)
    options: dict[str, Any] = {}
    if FILTERED:
        from ami.eventfilter import manager_conf_filter

        options["event_filter"] = manager_conf_filter(manager_conf, "centralita")
    # A reader that falls this far behind is dropped (Asterisk: manager.conf's writetimeout,
    # 1 s as rendered); longer here, so that a slow run ends with its figures.
    async with FakeAmiServer(
        username="centralita", secret=SECRET, write_timeout_s=120.0, **options
    ) as fake:
        # Encoded before the run (and filtered as Asterisk would): one write per tick.
        due: list[tuple[float, Any]] = (
            [(at, enc[0]) for at, msg in events if (enc := fake.encode_events([msg]))]
            if FILTERED
            else events
        )
        span = due[-1][0] if due else 0.0
        conn.send((fake.port, len(events), len(due), span))
        await fake.wait_for_sessions(1, timeout_s=30)
        await asyncio.to_thread(conn.recv)  # "go"
        started = time.perf_counter()
        first_emitted = time.time()
        sent = 0
        tick = 0.005
        index = 0
        late: list[float] = []
        while index < len(due):
            now = time.perf_counter() - started
            batch = []
            while index < len(due) and due[index][0] <= now:
                batch.append(due[index][1])
                index += 1
            if batch:
                late.append(now - due[index - len(batch)][0])
                if FILTERED:
                    sent += await fake.push_encoded(batch, time.time())
                else:
                    sent += await fake.push_events(batch)
            await asyncio.sleep(tick)
        elapsed = time.perf_counter() - started
        conn.send((sent, elapsed, first_emitted, late))
        await asyncio.to_thread(conn.recv)  # "stop"


# ----------------------------------------------------------------------------- child: browsers


def browsers_process(conn: Connection, web_port: int, cookies: list[str]) -> None:
    asyncio.run(_browsers(conn, web_port, cookies))


async def _browsers(conn: Connection, web_port: int, cookies: list[str]) -> None:
    """The agents' consoles: one WebSocket each, counting the pops they receive."""
    received = 0
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=60),
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=0),  # each socket holds its connection
    )
    sockets = []
    for cookie in cookies:
        ws = await session.ws_connect(
            f"http://127.0.0.1:{web_port}/ws", headers={"Cookie": f"{COOKIE}={cookie}"}
        )
        sockets.append(ws)

    async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal received
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                received += 1

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    conn.send("connected")
    expected = await asyncio.to_thread(conn.recv)  # how many pops the app sent
    for _ in range(500):
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


# ----------------------------------------------------------------------------- parse speed


def stream_bytes(events: list[AmiMessage]) -> bytes:
    return b"Asterisk Call Manager/9.0.0\r\n" + b"".join(encode_packet(m.headers) for m in events)


def chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours_parse_and_track(data: list[bytes], agents: int) -> tuple[int, float]:
    parser = AmiParser()
    tracker = CallTracker([str(FIRST_AGENT + a) for a in range(agents)], ("SIP",))
    count = 0
    started = time.perf_counter()
    for chunk in data:
        for msg in parser.receive_data(chunk):
            if msg.kind == "event":
                count += 1
                tracker.handle(msg)
    return count, time.perf_counter() - started


def ours_parse_only(data: list[bytes]) -> tuple[int, float]:
    parser = AmiParser()
    count = 0
    started = time.perf_counter()
    for chunk in data:
        count += sum(1 for m in parser.receive_data(chunk) if m.kind == "event")
    return count, time.perf_counter() - started


def panoramisk_parse(data: list[bytes]) -> tuple[int, float]:
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        count = 0

        def dispatch(self, message: Any) -> None:
            self.count += 1

    class Transport:
        def write(self, data: bytes) -> None:
            pass

    protocol = AMIProtocol()
    protocol.connection_made(Transport())
    factory = Factory()
    protocol.factory = factory
    started = time.perf_counter()
    for chunk in data:
        protocol.data_received(chunk)
    return factory.count, time.perf_counter() - started


# ----------------------------------------------------------------------------- the live run


def config_text(data_dir: Path, ami_port: int, agents: int) -> str:
    text = demo_text()
    text = text.replace("agi_port = 4573", "agi_port = 0")
    text = text.replace("ami_port = 5038", f"ami_port = {ami_port}")
    text = text.replace('ami_secret = "change-me-centralita"', f'ami_secret = "{SECRET}"')
    text = text.replace('sip_driver = "pjsip"', 'sip_driver = "sip"')
    text = text.replace('data_dir = "data"', f'data_dir = "{data_dir}"')
    text, found = re.subn(r"^log_level = .*$", 'log_level = "WARNING"', text, flags=re.M)
    if not found:
        text = text.replace('log_format = "text"', 'log_format = "text"\nlog_level = "WARNING"')
    # Staff are [[members]] with a role since the roles config; older trees have [[agents]].
    table, role = ("members", 'role = "agent"\n') if "[[members]]" in text else ("agents", "")
    for a in range(agents):
        ext = FIRST_AGENT + a
        text += (
            f'\n[[{table}]]\nextension = "{ext}"\nname = "Bench {ext}"\n{role}'
            f'queues = ["support-en"]\nsecret = "bench-secret-{ext}"\n'
        )
    return text


class StampingParser(AmiParser):
    """Notes when each chunk of bytes was read, so latency starts at the socket read."""

    read_at = 0.0

    def receive_data(self, data: bytes) -> list[AmiMessage]:
        StampingParser.read_at = time.perf_counter()
        return super().receive_data(data)


class Emission:
    """The emission of the event the tracker handles, on the pop bridge's clock
    (`time.perf_counter`): its `Timestamp` (the fake's `time.time()` as it wrote it) moved
    by this process's offset between the two clocks; the read time when unstamped."""

    at = 0.0
    offset = 0.0

    @classmethod
    def install(cls) -> None:
        cls.offset = time.time() - time.perf_counter()
        handle = TimedTracker.handle

        def stamped_handle(self: TimedTracker, msg: AmiMessage) -> list[Any]:
            stamp = msg.value("Timestamp")
            cls.at = float(stamp) - cls.offset if stamp else StampingParser.read_at
            return handle(self, msg)

        TimedTracker.handle = stamped_handle  # type: ignore[method-assign]
        TimedTracker.clock = staticmethod(lambda: cls.at)


def render_manager_conf(tmp: Path) -> str:
    """manager.conf as `centralita render` writes it (the demo's members: the bench's
    2000... would collide with the phones' voicemail menu, and manager.conf names none)."""
    if not FILTERED:
        return ""
    from centralita.cmd_render import render_files

    config = tmp / "render.toml"
    text = config_text(tmp / "data", 5038, 0)
    config.write_text(text, encoding="utf-8")
    return render_files(parse_settings(text, str(config), tmp, config))["manager.conf"]


async def live(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    calls = int(args.rate * args.seconds)
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(
        target=fake_ami_process,
        args=(child, calls, args.rate, args.agents, render_manager_conf(tmp)),
        daemon=True,
    )
    proc.start()
    port, scheduled, offered, span = await asyncio.to_thread(parent.recv)
    config = tmp / "centralita.toml"
    text = config_text(tmp / "data", port, args.agents)
    config.write_text(text, encoding="utf-8")
    settings = parse_settings(text, str(config), tmp, config)

    ami.client.AmiParser = StampingParser  # type: ignore[attr-defined]
    Emission.install()

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    web_port = runner.addresses[0][1]
    latencies: list[float] = []
    bridge = app[BRIDGE]
    bridge.on_sent = lambda kind, seconds: latencies.append(seconds)
    await app[AMI].wait_connected(30)
    # Some callers are known contacts (so lookups find rows), most are not.
    store = app[STORE]
    for i in range(0, calls, 10):
        await store.create_contact(name=f"Customer {i}", numbers=[f"+3491{i % 10_000_000:07d}"])

    # The browsers run in a process of their own, as they would on the agents' machines, so
    # that their 1,000 sockets' reading does not steal the app's loop.
    auth = app[AUTH]
    cookies = [auth.issue(str(FIRST_AGENT + a))[0] for a in range(args.agents)]
    browsers_conn, browsers_child = multiprocessing.Pipe()
    browsers = multiprocessing.Process(
        target=browsers_process, args=(browsers_child, web_port, cookies), daemon=True
    )
    browsers.start()
    assert await asyncio.to_thread(browsers_conn.recv) == "connected"
    for _ in range(500):
        if app[HUB].count() == args.agents:
            break
        await asyncio.sleep(0.01)
    assert app[HUB].count() == args.agents
    # What a long-running server should do once started (see docs/console.md): move the
    # startup objects out of the collector's way, so full collections stay short.
    gc.collect()
    gc.freeze()
    lags: list[float] = []

    async def lag_monitor() -> None:
        # How late a 1 ms sleep wakes: the loop's own stalls (GC, CPU taken by others).
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - before - 0.001)

    monitor = asyncio.create_task(lag_monitor())
    cpu_before = time.process_time()
    events_before = app[AMI].stats.events
    parent.send("go")
    started = time.perf_counter()
    sent_events, child_elapsed, first_emitted, late = await asyncio.to_thread(parent.recv)
    for _ in range(60_000):  # read all when the count reaches what the fake wrote
        if app[AMI].stats.events - events_before >= sent_events:
            break
        await asyncio.sleep(0.001)
    read_done = time.time()
    await app[AMI].drain(60)
    elapsed = time.perf_counter() - started
    tracked = app[AMI].stats.events - events_before
    cpu = time.process_time() - cpu_before
    monitor.cancel()
    browsers_conn.send(len(latencies))
    received = await asyncio.to_thread(browsers_conn.recv)
    browsers.join(30)
    await runner.cleanup()
    parent.send("stop")
    proc.join(10)
    return {
        "calls": calls,
        "scheduled": scheduled,
        "offered": offered,
        "offered_per_s": offered / span if span else 0.0,
        "late_max": max(late, default=0.0) * 1000,
        "read_per_s": tracked / max(read_done - first_emitted, 1e-9),
        "sent_events": sent_events,
        "tracked": tracked,
        "elapsed": elapsed,
        "child_elapsed": child_elapsed,
        "latencies": latencies,
        "received": received,
        "lags": lags,
        "cpu": cpu,
    }


def fell_behind(run: dict[str, Any]) -> str | None:
    """Why a run did not keep the offered rate (None when it did)."""
    written_per_s = run["sent_events"] / run["child_elapsed"]
    if run["tracked"] < run["sent_events"]:
        return f"{run['tracked']} of {run['sent_events']} events written were read"
    if written_per_s < 0.97 * run["offered_per_s"]:
        return f"the fake wrote {written_per_s:.0f} of {run['offered_per_s']:.0f} events/s"
    if run["read_per_s"] < 0.97 * run["offered_per_s"]:
        return f"the app read {run['read_per_s']:.0f} of {run['offered_per_s']:.0f} events/s"
    if run["late_max"] > 250.0:
        return f"the fake's writes fell {run['late_max']:.0f} ms behind its schedule"
    return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="new calls per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long calls start")
    parser.add_argument("--json", action="store_true", help="print the live figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pop-bench-") as tmp:
        result = asyncio.run(live(args, Path(tmp)))
    if args.json:  # one line, for bench/compare.py; the parsing comparison is skipped
        lat = [x * 1000 for x in result["latencies"]]
        figures = {
            "pops": len(lat),
            "received": result["received"],
            "p50_ms": pct(lat, 0.50) if lat else None,
            "p99_ms": pct(lat, 0.99) if lat else None,
            "mean_ms": statistics.fmean(lat) if lat else None,
            "cpu_s": result["cpu"],
            "elapsed_s": result["elapsed"],
            "fell_behind": fell_behind(result),
            "code": str(Path(sys.modules[create_app.__module__].__file__ or "").parent.parent),
        }
        print(json.dumps(figures))
        return 0
    # Parsing speed, offline, over the same stream the fake sent (at most 2,000 calls' worth);
    # after the live run, so its 100k+ messages do not lengthen the live run's GC pauses.
    calls = min(2000, int(args.rate * args.seconds))
    data = chunks(stream_bytes([m for _, m in timeline(calls, args.rate, args.agents)]))
    n_ours, t_ours = ours_parse_and_track(data, args.agents)
    n_parse, t_parse = ours_parse_only(data)
    n_pan, t_pan = panoramisk_parse(data)
    lat = [x * 1000 for x in result["latencies"]]
    behind = fell_behind(result)
    ok = bool(lat) and pct(lat, 0.99) < 20.0 and behind is None
    start = "emitted" if FILTERED else "read"
    rows = [
        ("agents connected (WebSockets)", f"{args.agents}"),
        ("calls (rate x seconds)", f"{result['calls']} ({args.rate:g}/s x {args.seconds:g} s)"),
        ("AMI events in the schedule", f"{result['scheduled']}"),
        ("  after manager.conf's eventfilter", f"{result['offered']}"),
        ("offered events/s (the schedule)", f"{result['offered_per_s']:.0f}"),
        (
            "written events/s by the fake",
            f"{result['sent_events'] / result['child_elapsed']:.0f} (its writes up to "
            f"{result['late_max']:.0f} ms behind schedule)",
        ),
        ("read events/s by the app", f"{result['read_per_s']:.0f}"),
        ("AMI events sent by the fake", f"{result['sent_events']}"),
        ("AMI events tracked by the app", f"{result['tracked']}"),
        ("pops sent / received by browsers", f"{len(lat)} / {result['received']}"),
        (f"pop latency p50 ({start} -> ws send)", f"{pct(lat, 0.50):.2f} ms" if lat else "-"),
        (f"pop latency p99 ({start} -> ws send)", f"{pct(lat, 0.99):.2f} ms" if lat else "-"),
        ("pop latency max", f"{max(lat):.2f} ms" if lat else "-"),
        ("pop latency mean", f"{statistics.fmean(lat):.2f} ms" if lat else "-"),
        (
            "this process's CPU during the run",
            f"{result['cpu']:.1f} s in {result['elapsed']:.1f} s",
        ),
        (
            "event-loop stall p99 / max",
            f"{pct(result['lags'], 0.99) * 1000:.1f} / {max(result['lags']) * 1000:.1f} ms",
        ),
        ("ours: parse + track, events/s", f"{n_ours / t_ours:,.0f} ({n_ours} events)"),
        ("ours: parse only, events/s", f"{n_parse / t_parse:,.0f}"),
        ("panoramisk: parse only, events/s", f"{n_pan / t_pan:,.0f} ({n_pan} events)"),
        ("machine load average (1/5/15 min)", "/".join(f"{x:.1f}" for x in os.getloadavg())),
        ("target: offered rate kept, p99 < 20 ms", "met" if ok else "NOT met"),
    ]
    width = max(len(k) for k, _ in rows)
    print("Screen-pop benchmark (bench/pop_bench.py)")
    print("-" * (width + 30))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if behind is not None:
        print(f"!!! FELL BEHIND: {behind}")
        print("!!! the latencies above are not those of the offered rate")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
