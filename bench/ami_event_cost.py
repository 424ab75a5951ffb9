"""The app's cost per AMI event, without sockets: what bench/wallboard_bench.py offers, fed
straight into the running app's AMI reader (parser, listener, call tracker, agent-state
mirror, queue-event log, wallboard model and its refreshes, pop bridge).

    .venv/bin/python bench/ami_event_cost.py [--calls 400] [--profile out.pstats]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/ami_event_cost.py --calls 400   # and again with --calls 0

CPU time depends on what else the machine runs; callgrind's instruction count does not:
the count of a run with --calls N minus that of a run with --calls 0 (the same start-up),
divided by the events, is the app's instructions per event.

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
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import wallboard_bench as wb  # noqa: E402
from aiohttp import web  # noqa: E402

from ami.protocol import AmiParser, encode_packet  # noqa: E402
from ami.testing import FakeAmiServer  # noqa: E402
from centralita.app import create_app  # noqa: E402
from centralita.keys import AMI, WALLBOARD  # noqa: E402
from centralita.settings import parse_settings  # noqa: E402


def stream(calls: int, args: argparse.Namespace) -> list[bytes]:
    data = b"".join(
        encode_packet(m.headers) for _, m in wb.timeline(calls, args.rate, args.agents, args.queues)
    )
    return [data[i : i + 65536] for i in range(0, len(data), 65536)]


async def run(args: argparse.Namespace, tmp: Path) -> tuple[int, float, int]:
    chunks = stream(args.calls, args)
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
            await listener.wait_connected(30)
            hub = app[WALLBOARD]
            for _ in range(20):
                await asyncio.sleep(0)
            parser = AmiParser(expect_banner=False)
            events_before = listener.stats.events
            profile = cProfile.Profile() if args.profile else None
            started = time.process_time()
            if profile is not None:
                profile.enable()
            for chunk in chunks:
                for msg in parser.receive_data(chunk):
                    listener._on_message(msg)
                for _ in range(3):  # the dispatcher's pops, the wallboard's refresh
                    await asyncio.sleep(0)
            await listener.drain(60)
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
    parser.add_argument("--profile", help="write a cProfile of the feeding to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ami-event-cost-") as tmp:
        events, cpu, _ = asyncio.run(run(args, Path(tmp)))
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    per = cpu / events * 1e6 if events else 0.0
    print(f"{args.calls} calls, {events} events read: {cpu:.2f} s CPU, {per:.1f} us/event")
    print(f"machine load average (1/5/15 min): {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
