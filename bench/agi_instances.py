"""Server CPU per FastAGI call with 1, 2 and 3 `centralita serve` instances on one PostgreSQL.

Each instance is a real `centralita serve` process (the shipped demo config, its store on one
scratch PostgreSQL from tests/pgcluster.py, or CENTRALITA_TEST_POSTGRES_URL's server). The
load generator (this process) plays Asterisk with agi.testing's simulator. The figure is the
CPU time of every instance (user + system, read from outside each process) during the run,
divided by the calls: with no coordination cost per call it stays flat from 1 to 3 instances
(docs/cluster.md#cpu-per-call-with-1-2-and-3-instances).

What it holds equal, so that what grows is coordination and nothing else:
- the load on each instance: every instance is offered the same paced `--rate` calls/s
  whatever their number (one process's CPU per call falls as its calls/s rise: more calls
  share each wake-up of its event loop; a fixed total load spread over more instances made
  each one's calls dearer, which is not a cost of coordination). The table shows the rate
  each instance reached, and one instance at 2 and 3 times the rate for that effect alone.
- the idle cost: each instance's CPU with no call (timers, pollers, the CSV writer's lease)
  is measured apart over `--idle-s`, printed per instance, and its share per call at the rate
  reached is shown; "busy/call" is the CPU per call less it. Both are in the verdict.

Two flows of the demo, each call a new connection:
- `language`: the welcome, key 3, three channel variables: no store access;
- `callback`: a confirmed number stored in the database (one row per call), then thanks.

    python bench/agi_instances.py                  # 30 calls/s to each instance, 3 x 300
    python bench/agi_instances.py --rate 50 --calls 1000 --loop uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import PostgresUnavailable, start_cluster  # noqa: E402

from agi.simulator import Caller  # noqa: E402
from agi.testing import place_call  # noqa: E402
from centralita.settings import demo_text  # noqa: E402

FLOWS = ("language", "callback")
INSTANCE_COUNTS = (1, 2, 3)
MAX_IN_FLIGHT = 200  # calls at once per instance before the generator waits
FLAT_WITHIN = 1.15  # the goal: CPU per call at 2 and 3 instances within 15% of 1
SLOW_RATE = 0.9


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serves_agi_on(web_port: int) -> int | None:
    """The FastAGI port that the instance answering /healthz on `web_port` listens on."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=2) as r:
            health = json.loads(r.read())
    except (OSError, ValueError):
        return None
    agi = health.get("agi") or {}
    return int(agi["port"]) if agi.get("listening") else None


@dataclass
class Instance:
    process: subprocess.Popen[bytes]
    agi_port: int
    web_port: int
    log: Path

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)


def start_instance(folder: Path, store_url: str, event_loop: str) -> Instance:
    """One `centralita serve` on the demo config, its store at `store_url`; returns once its
    /healthz answers with its own FastAGI port (free ports are picked, then bound by serve:
    another program on this machine may take one in between, so a clash is tried again)."""
    for attempt in range(3):
        try:
            return start_once(folder / f"try{attempt}", store_url, event_loop)
        except PortTaken:
            continue
    raise RuntimeError("could not find free ports for centralita serve")


class PortTaken(Exception):
    pass


def start_once(folder: Path, store_url: str, event_loop: str) -> Instance:
    folder.mkdir(parents=True)
    (folder / "spool" / "outgoing").mkdir(parents=True)
    agi_port, web_port, ami_port = free_port(), free_port(), free_port()
    config = folder / "centralita.toml"
    config.write_text(
        demo_text()
        .replace('event_loop = "asyncio"', f'event_loop = "{event_loop}"')
        .replace("agi_port = 4573", f"agi_port = {agi_port}")
        .replace("web_port = 8080", f"web_port = {web_port}")
        .replace("ami_port = 5038", f"ami_port = {ami_port}")  # no AMI: not what is measured
        .replace('spool_dir = "/var/spool/asterisk"', 'spool_dir = "spool"')
        .replace('log_level = "INFO"', 'log_level = "WARNING"')
        + f'\n[store]\nurl = "{store_url}"\n',
        encoding="utf-8",
    )
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "centralita", "serve", "--config", str(config)],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    for _ in range(600):  # readiness poll
        if process.poll() is not None:
            break
        serving = serves_agi_on(web_port)
        if serving == agi_port:
            return Instance(process, agi_port, web_port, log)
        if serving is not None:  # another program's server answered on our web port
            break
        time.sleep(0.1)
    clash = process.poll() is None  # alive, but another server answered on its web port
    process.kill()
    process.wait()
    output = log.read_text(errors="replace")
    if clash or "address already in use" in output.lower():
        raise PortTaken(output)
    raise RuntimeError(f"centralita serve did not start: {output}")


def stop_instance(instance: Instance) -> None:
    instance.process.send_signal(signal.SIGTERM)
    try:
        instance.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        instance.process.wait()


def caller(flow: str, n: int) -> Caller:
    uniqueid = f"1795301017.{n}"
    if flow == "language":
        return Caller(script="language", keys=["3"], uniqueid=uniqueid)
    number = f"6{n % 100000000:08d}"
    return Caller(
        script="callback", args=["support-en"], keys=[f"{number}#", "1", "#"], uniqueid=uniqueid
    )


async def offer_calls(
    instances: list[Instance], flow: str, first: int, per_instance: int, rate: float
) -> tuple[int, float]:
    """Offer `per_instance` calls to each instance at `rate` calls/s each (paced arrivals,
    the same for every instance count, so each instance sees the same load whatever N is);
    returns (failures, wall seconds). A call that would exceed MAX_IN_FLIGHT per instance
    waits: then the rate reached (printed) is below the rate offered."""
    failures = 0
    expected = "hangup" if flow == "callback" else "queue:support-fr"

    async def one(port: int, n: int, slots: asyncio.Semaphore) -> None:
        nonlocal failures
        try:
            result = await place_call("127.0.0.1", port, caller(flow, n))
        finally:
            slots.release()
        if result.error or result.route != expected:
            failures += 1
            if failures == 1:
                print(f"first failure (port {port}): {result.error or result.route!r}")

    async def pace(k: int, instance: Instance, start: float) -> None:
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        calls: list[asyncio.Task[None]] = []
        for i in range(per_instance):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            n = first + i * len(instances) + k
            calls.append(asyncio.create_task(one(instance.agi_port, n, slots)))
        await asyncio.gather(*calls)

    start = time.perf_counter()
    await asyncio.gather(*(pace(k, inst, start) for k, inst in enumerate(instances)))
    return failures, time.perf_counter() - start


@dataclass
class Row:
    flow: str
    instances: int
    calls: int
    rate_per_instance: float  # reached, calls/s
    cpu_ms_per_call: float  # every instance's CPU during the calls, per call
    per_instance_ms: list[float]
    failures: int
    # Every instance's CPU with no call (pollers, timers, the CSV writer's lease), per
    # second, measured apart over IDLE_S, and what it makes per call at the rate reached.
    idle_ms_per_s: list[float]
    batching: bool = False  # one instance at a multiple of the rate

    @property
    def idle_ms_per_call(self) -> float:
        return sum(self.idle_ms_per_s) / (self.rate_per_instance * self.instances)

    @property
    def busy_ms_per_call(self) -> float:
        return self.cpu_ms_per_call - self.idle_ms_per_call


def idle_cpu_per_second(instances: list[Instance], seconds: float) -> list[float]:
    """CPU milliseconds each instance spends per wall second with no call."""
    before = [i.cpu_seconds() for i in instances]
    start = time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - start
    return [(i.cpu_seconds() - b) / wall * 1e3 for i, b in zip(instances, before, strict=True)]


@dataclass
class Setup:
    """One measured configuration: a set of instances and the rate offered to each."""

    instances: list[Instance]
    factor: int  # times args.rate
    idle_ms_per_s: list[float]

    @property
    def batching(self) -> bool:
        return self.factor > 1


@dataclass
class Tally:
    """The rounds of one flow on one setup so far."""

    setup: Setup
    flow: str
    cpu_per_call: list[float]
    share: list[list[float]]
    calls: int = 0
    wall: float = 0.0
    failures: int = 0

    def row(self) -> Row:
        count = len(self.setup.instances)
        return Row(
            flow=self.flow,
            instances=count,
            calls=self.calls,
            rate_per_instance=self.calls / count / self.wall,
            cpu_ms_per_call=statistics.median(self.cpu_per_call) * 1e3,
            per_instance_ms=[statistics.median(c) * 1e3 for c in self.share],
            failures=self.failures,
            idle_ms_per_s=self.setup.idle_ms_per_s,
            batching=self.setup.batching,
        )


def one_round(tally: Tally, calls: int, rate: float, first: int) -> None:
    """`calls` to each instance of the setup at `rate` calls/s each; every instance's CPU."""
    instances = tally.setup.instances
    per_round = calls * len(instances)
    before = [i.cpu_seconds() for i in instances]
    failed, seconds = asyncio.run(offer_calls(instances, tally.flow, first, calls, rate))
    spent = [i.cpu_seconds() - b for i, b in zip(instances, before, strict=True)]
    tally.failures += failed
    tally.wall += seconds
    tally.calls += per_round
    tally.cpu_per_call.append(sum(spent) / per_round)
    for column, cpu in zip(tally.share, spent, strict=True):
        column.append(cpu / per_round)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def own_schema(cluster_url: str, name: str) -> str:
    """A URL on `name`, a fresh schema: each set of instances has its own tables and its own
    CSV writer's lease, so the sets run side by side without touching each other."""
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in cluster_url else "?"
    return f"{cluster_url}{sep}options={quote(f'-c search_path={name}')}"


def run_sets(cluster_url: str, tmp: Path, args: argparse.Namespace) -> tuple[list[Row], str]:
    """Start a set of 1, one of 2 and one of 3 instances, each on its own schema, all at
    once; measure their idle CPU together, then run the rounds interleaved (1, 2, 3, then the
    one instance at 2 and 3 times the rate, in a turning order), so that a change in the
    machine's load while the benchmark runs reaches every configuration alike."""
    sets: dict[int, list[Instance]] = {}
    try:
        for count in INSTANCE_COUNTS:
            url = own_schema(cluster_url, f"agi_instances_{count}")
            sets[count] = [
                start_instance(tmp / f"n{count}-{k + 1}", url, args.loop) for k in range(count)
            ]
        for count, instances in sets.items():  # warm-up: imports, pools, caches
            for flow in FLOWS:
                asyncio.run(offer_calls(instances, flow, 9_000_000 + count * 1000, 20, args.rate))
        everyone = [i for count in INSTANCE_COUNTS for i in sets[count]]
        idle = iter(idle_cpu_per_second(everyone, args.idle_s))
        setups = [
            Setup(sets[count], 1, [next(idle) for _ in sets[count]]) for count in INSTANCE_COUNTS
        ]
        if args.batching:
            setups += [Setup(sets[1], factor, setups[0].idle_ms_per_s) for factor in (2, 3)]
        tallies = [
            Tally(setup, flow, [], [[] for _ in setup.instances])
            for flow in FLOWS
            for setup in setups
        ]
        first = itertools.count(0, 100_000)
        loads = [load_average()]
        for r in range(args.rounds):
            for flow in FLOWS:
                turn = [t for t in tallies if t.flow == flow]
                turn = turn[r % len(turn) :] + turn[: r % len(turn)]
                for tally in turn:
                    factor = tally.setup.factor
                    one_round(tally, args.calls * factor, args.rate * factor, next(first))
            loads.append(load_average())
        return [t.row() for t in tallies], " | ".join(loads)
    finally:
        for instances in sets.values():
            for instance in instances:
                stop_instance(instance)
        with psycopg.connect(cluster_url, autocommit=True) as conn:
            for count in sets:
                conn.execute(f"DROP SCHEMA IF EXISTS agi_instances_{count} CASCADE")


def baseline(rows: list[Row], flow: str) -> Row:
    """The 1-instance row of `flow` at the offered rate."""
    return next(r for r in rows if r.flow == flow and r.instances == 1 and not r.batching)


def print_rows(rows: list[Row], args: argparse.Namespace, loads: str) -> None:
    print(
        f"FastAGI CPU per call with 1, 2 and 3 `centralita serve` instances on one PostgreSQL "
        f"({args.loop} loop; {args.rate:g} calls/s offered to each instance, paced; the sets "
        f"of 1, 2 and 3 instances run side by side, each on its own schema, their rounds "
        f"interleaved; CPU of every instance read from outside, median of {args.rounds} "
        f"rounds of {args.calls} calls per instance; idle: each instance's CPU with no call, "
        f"over {args.idle_s:g} s)"
    )
    print(f"load average (1/5/15 min) before and after each round: {loads}")
    print(f"{'flow':<9} {'N':>2} {'calls':>6} {'calls/s/inst':>12} {'CPU/call':>9} "
          f"{'idle ms/s/inst':>16} {'idle/call':>9} {'busy/call':>9} {'vs 1':>6} "
          f"{'fail':>5}  busy per instance")  # fmt: skip
    verdicts: list[str] = []
    for flow in FLOWS:
        one = baseline(rows, flow)
        for r in (r for r in rows if r.flow == flow and not r.batching):
            idle = " ".join(f"{ms:.1f}" for ms in r.idle_ms_per_s)
            shares = " ".join(
                f"{ms - idle_s / r.rate_per_instance:.2f}"
                for ms, idle_s in zip(r.per_instance_ms, r.idle_ms_per_s, strict=True)
            )
            print(
                f"{r.flow:<9} {r.instances:>2} {r.calls:>6} {r.rate_per_instance:>12.1f} "
                f"{r.cpu_ms_per_call:>7.2f}ms {idle:>16} {r.idle_ms_per_call:>7.2f}ms "
                f"{r.busy_ms_per_call:>7.2f}ms {r.busy_ms_per_call / one.busy_ms_per_call:>5.2f}x "
                f"{r.failures:>5}  {shares} ms"
            )
        worst = max(
            (r for r in rows if r.flow == flow and r.instances > 1 and not r.batching),
            key=lambda r: r.busy_ms_per_call,
        )
        ratio = worst.busy_ms_per_call / one.busy_ms_per_call
        total_ratio = worst.cpu_ms_per_call / one.cpu_ms_per_call
        verdicts.append(
            f"{flow}: {'FLAT' if ratio <= FLAT_WITHIN else 'NOT FLAT'} (worst {ratio:.2f}x "
            f"the 1-instance CPU per call without idle, {total_ratio:.2f}x with it, at "
            f"{worst.instances} instances; goal <= {FLAT_WITHIN:.2f}x)"
        )
    batching = [r for r in rows if r.batching]
    if batching:
        print("one instance at 1, 2 and 3 times that rate (CPU per call against calls/s in one")
        print("process: the loop's wake-ups shared by more calls, not coordination):")
        for flow in FLOWS:
            for r in [baseline(rows, flow)] + [r for r in batching if r.flow == flow]:
                print(
                    f"{r.flow:<9}  1 {r.calls:>6} {r.rate_per_instance:>12.1f} "
                    f"{r.cpu_ms_per_call:>7.2f}ms {'':>16} {r.idle_ms_per_call:>7.2f}ms "
                    f"{r.busy_ms_per_call:>7.2f}ms {'':>6} {r.failures:>5}"
                )
    for verdict in verdicts:
        print(f"verdict: {verdict}")
    slow = [r for r in rows if r.rate_per_instance < SLOW_RATE * args.rate and not r.batching]
    if slow:
        print(
            "warning: the load generator fell behind (calls/s per instance below "
            f"{SLOW_RATE:.0%} of the {args.rate:g} offered): a busy machine; compare with care"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per instance and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measure (median)")
    parser.add_argument("--rate", type=float, default=30.0, help="calls/s to each instance")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU measured over")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--batching",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also one instance at 2 and 3 times the rate",
    )
    args = parser.parse_args()
    try:
        cluster = start_cluster(durable=True)
    except PostgresUnavailable as exc:
        print(f"FastAGI instances: skipped, no PostgreSQL: {exc}")
        return
    try:
        with tempfile.TemporaryDirectory(prefix="agi-instances-") as tmp:
            rows, loads = run_sets(cluster.url, Path(tmp), args)
    finally:
        cluster.stop()
    print_rows(rows, args, loads)


if __name__ == "__main__":
    main()
