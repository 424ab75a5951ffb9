"""The app's cost per AMI event, without sockets: what bench/wallboard_bench.py offers, fed
straight into the running app's AMI reader (parser, listener, call tracker, agent-state
mirror, queue-event log, wallboard model and its refreshes, pop bridge).

    .venv/bin/python bench/ami_event_cost.py [--calls 400] [--profile out.pstats]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/ami_event_cost.py --calls 400   # and again with --calls 0

CPU time depends on what else the machine runs; callgrind's instruction count does not:
the count of a run with --calls N minus that of a run with --calls 0 (the same start-up),
divided by the events, is the app's instructions per event. To compare two trees, write the
stream once (`--save-stream FILE`, add `--unfiltered` for all the events) and feed it to
each (`--stream FILE`): nothing but the app's own work differs between the runs. With
`--timestamps` each event has the `Timestamp:` line the wallboard bench's fake writes (one
value per 5 ms write, as there), and with `--calls 2000` the stream is the wallboard bench's
own 10 s: the parser's line cache then sees what it sees there.

The app is the real one (`create_app`, with the wallboard bench's 1,000 agents in 50
queues); the fake AMI runs in this process only for the login and the resync lists, then
the recorded calls' bytes (CRLF framed, as Asterisk writes them) are parsed and handed to
the listener 64 KiB at a time, the loop running its tasks (pops, wallboard refresh) after
each read, as after a socket read.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import wallboard_bench as wb  # noqa: E402
from aiohttp import web  # noqa: E402

from ami.eventfilter import manager_conf_filter  # noqa: E402
from ami.protocol import AmiMessage, AmiParser, encode_packet  # noqa: E402
from ami.testing import FakeAmiServer  # noqa: E402
from centralita.app import create_app  # noqa: E402
from centralita.keys import AMI, WALLBOARD  # noqa: E402
from centralita.settings import parse_settings  # noqa: E402


def stream(calls: int, args: argparse.Namespace, tmp: Path) -> list[bytes]:
    """The bench's events as Asterisk would write them to the runtime user: after the
    eventfilter of the manager.conf rendered for the config (unless --unfiltered)."""
    timed = wb.timeline(calls, args.rate, args.agents, args.queues)
    if not args.unfiltered:
        conf = wb.render_manager_conf(args, tmp).read_text(encoding="utf-8")
        runtime = manager_conf_filter(conf, "centralita")
        timed = [(at, m) for at, m in timed if runtime.passes(m)]
    if args.timestamps:  # as the wallboard bench's fake writes them: one stamp per 5 ms write
        timed = [(at, stamped(m, WRITE_S * (at // WRITE_S))) for at, m in timed]
    data = b"".join(encode_packet(m.headers) for _, m in timed)
    return [data[i : i + 65536] for i in range(0, len(data), 65536)]


WRITE_S = 0.005  # the wallboard bench's fake writes what is due every 5 ms


def stamped(msg: AmiMessage, at: float) -> AmiMessage:
    """`msg` with `Timestamp:` after its Privilege line, as manager.conf's `timestampevents`
    writes it (main/manager.c __manager_event_sessions_va; FakeAmiServer.push_encoded)."""
    headers = list(msg.headers)
    headers.insert(2, ("Timestamp", f"{1_800_000_000 + at:.6f}"))
    return AmiMessage.build(headers)


async def run(args: argparse.Namespace, tmp: Path) -> tuple[int, float, int]:
    if args.stream:  # made beforehand (--save-stream): no building inside the measured run
        data = await asyncio.to_thread(Path(args.stream).read_bytes)
        chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    else:
        chunks = stream(args.calls, args, tmp)
    async with FakeAmiServer(username="centralita", secret=wb.SECRET) as fake:
        wb.add_queues(fake.queues, args)
        config = tmp / "centralita.toml"
        text = wb.config_text(tmp / "data", fake.port, args)
        config.write_text(text, encoding="utf-8")
        app = create_app(parse_settings(text, str(config), tmp, config))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            listener = app[AMI]
            await listener.wait_connected(args.connect_timeout)
            hub = app[WALLBOARD]
            for _ in range(20):
                await asyncio.sleep(0)
            if args.gc == "freeze":
                gc.collect()
                gc.freeze()
            elif args.gc == "off":
                gc.disable()
            parser = AmiParser(expect_banner=False)
            events_before = listener.stats.events
            profile = cProfile.Profile() if args.profile else None
            started = time.process_time()
            if profile is not None:
                profile.enable()
            clock = time.process_time
            parts = [0.0, 0.0, 0.0]
            for chunk in chunks:
                t0 = clock()
                messages = parser.receive_data(chunk)
                t1 = clock()
                for msg in messages:
                    listener._on_message(msg)
                t2 = clock()
                for _ in range(3):  # the dispatcher's pops, the wallboard's refresh
                    await asyncio.sleep(0)
                t3 = clock()
                parts[0] += t1 - t0
                parts[1] += t2 - t1
                parts[2] += t3 - t2
            await listener.drain(60)
            n = max(1, listener.stats.events - events_before)
            print(
                "parse {:.1f}, listener + tracker + taps {:.1f}, loop tasks {:.1f} us/event".format(
                    *(x / n * 1e6 for x in parts)
                )
            )
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile)
            cpu = time.process_time() - started
            return listener.stats.events - events_before, cpu, hub.sent
        finally:
            await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--supervisors", type=int, default=0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument(
        "--connect-timeout", type=float, default=600.0, help="seconds (callgrind is slow)"
    )
    parser.add_argument("--gc", choices=("on", "freeze", "off"), default="on")
    parser.add_argument("--unfiltered", action="store_true", help="without the eventfilter")
    parser.add_argument(
        "--timestamps", action="store_true", help="stamp the events as the wallboard bench does"
    )
    parser.add_argument("--save-stream", help="only write the stream's bytes to this file")
    parser.add_argument("--stream", help="feed the bytes of this file (instead of --calls)")
    parser.add_argument("--profile", help="write a cProfile of the feeding to this file")
    args = parser.parse_args()
    if args.save_stream:
        with tempfile.TemporaryDirectory(prefix="ami-event-cost-") as tmp:
            Path(args.save_stream).write_bytes(b"".join(stream(args.calls, args, Path(tmp))))
        return 0
    with tempfile.TemporaryDirectory(prefix="ami-event-cost-") as tmp:
        events, cpu, _ = asyncio.run(run(args, Path(tmp)))
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    per = cpu / events * 1e6 if events else 0.0
    print(f"{args.calls} calls, {events} events read: {cpu:.2f} s CPU, {per:.1f} us/event")
    print(f"machine load average (1/5/15 min): {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
