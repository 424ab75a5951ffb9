"""Server CPU per FastAGI call with 1, 2 and 3 `centralita serve` instances on one PostgreSQL.

Each instance is a real `centralita serve` process (the shipped demo config, its store on one
scratch PostgreSQL from tests/pgcluster.py, or CENTRALITA_TEST_POSTGRES_URL's server). The
load generator (this process) plays Asterisk with agi.testing's simulator and spreads the
calls round-robin over the running instances. The figure is the CPU time of every instance
(user + system, read from outside each process) during the run, divided by the calls: with
no coordination cost per call it stays flat from 1 to 3 instances (docs/cluster.md).

Two flows of the demo, each call a new connection:
- `language`: the welcome, key 3, three channel variables: no store access;
- `callback`: a confirmed number stored in the database (one row per call), then thanks.

    python bench/agi_instances.py                 # 600 calls per flow and instance count
    python bench/agi_instances.py --calls 2000 --loop uvloop
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

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import PostgresUnavailable, start_cluster  # noqa: E402

from agi.simulator import Caller  # noqa: E402
from agi.testing import place_call  # noqa: E402
from centralita.settings import demo_text  # noqa: E402

FLOWS = ("language", "callback")
INSTANCE_COUNTS = (1, 2, 3)


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


async def run_calls(instances: list[Instance], flow: str, numbers: range, concurrency: int) -> int:
    """Place one call per number, round-robin over the instances; returns the failures."""
    ports = itertools.cycle([i.agi_port for i in instances])
    todo = iter([(n, next(ports)) for n in numbers])
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for n, port in todo:
            result = await place_call("127.0.0.1", port, caller(flow, n))
            expected = "hangup" if flow == "callback" else "queue:support-fr"
            if result.error or result.route != expected:
                failures += 1
                if failures == 1:
                    print(f"first failure (port {port}): {result.error or result.route!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


@dataclass
class Row:
    flow: str
    instances: int
    calls: int
    cpu_ms_per_call: float
    per_instance_ms: list[float]
    calls_per_s: float
    failures: int
    # The instances' CPU when no call runs (pollers, timers), over the same wall time as
    # the calls, per call: what `cpu_ms_per_call` holds besides the calls themselves.
    idle_ms_per_call: float


def idle_cpu_per_second(instances: list[Instance], seconds: float = 3.0) -> float:
    """CPU seconds the instances spend together per wall second with no call."""
    before = sum(i.cpu_seconds() for i in instances)
    start = time.perf_counter()
    time.sleep(seconds)
    return (sum(i.cpu_seconds() for i in instances) - before) / (time.perf_counter() - start)


def measure(
    instances: list[Instance],
    flow: str,
    calls: int,
    rounds: int,
    concurrency: int,
    first: int,
    idle_per_s: float,
) -> Row:
    """CPU of every instance per call, median over `rounds`."""
    per_round = max(1, calls // rounds)
    cpu_per_call: list[float] = []
    share: list[list[float]] = [[] for _ in instances]
    failures = 0
    wall = 0.0
    numbers = itertools.count(first, per_round)
    for _ in range(rounds):
        before = [i.cpu_seconds() for i in instances]
        start = time.perf_counter()
        base = next(numbers)
        failures += asyncio.run(
            run_calls(instances, flow, range(base, base + per_round), concurrency)
        )
        wall += time.perf_counter() - start
        spent = [i.cpu_seconds() - b for i, b in zip(instances, before, strict=True)]
        cpu_per_call.append(sum(spent) / per_round)
        for column, seconds in zip(share, spent, strict=True):
            column.append(seconds / per_round)
    return Row(
        flow=flow,
        instances=len(instances),
        calls=per_round * rounds,
        cpu_ms_per_call=statistics.median(cpu_per_call) * 1e3,
        per_instance_ms=[statistics.median(c) * 1e3 for c in share],
        calls_per_s=per_round * rounds / wall,
        failures=failures,
        idle_ms_per_call=idle_per_s * wall / (per_round * rounds) * 1e3,
    )


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=600, help="calls per flow and count")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measure (median)")
    parser.add_argument("--concurrency", type=int, default=60, help="calls at once")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    try:
        cluster = start_cluster(durable=True)
    except PostgresUnavailable as exc:
        print(f"FastAGI instances: skipped, no PostgreSQL: {exc}")
        return
    rows: list[Row] = []
    loads: list[str] = [load_average()]
    first_number = itertools.count(0, 10 * args.calls)
    try:
        store_url = cluster.url
        with tempfile.TemporaryDirectory(prefix="agi-instances-") as tmp:
            for count in INSTANCE_COUNTS:
                instances: list[Instance] = []
                try:
                    for k in range(count):
                        folder = Path(tmp) / f"n{count}-{k + 1}"
                        instances.append(start_instance(folder, store_url, args.loop))
                    # Warm up every instance (imports, pools, caches) before measuring.
                    for flow in FLOWS:
                        asyncio.run(
                            run_calls(instances, flow, range(900000, 900000 + 20 * count), 10)
                        )
                    idle_per_s = idle_cpu_per_second(instances)
                    for flow in FLOWS:
                        rows.append(
                            measure(
                                instances,
                                flow,
                                args.calls,
                                args.rounds,
                                args.concurrency,
                                next(first_number),
                                idle_per_s,
                            )
                        )
                finally:
                    for instance in instances:
                        stop_instance(instance)
                loads.append(load_average())
    finally:
        cluster.stop()
    print(
        f"FastAGI CPU per call with 1, 2 and 3 `centralita serve` instances on one PostgreSQL "
        f"({args.loop} loop, {args.concurrency} calls at once spread round-robin; CPU of every "
        f"instance, read from outside, median of {args.rounds} rounds; goal: flat)"
    )
    print(f"load average (1/5/15 min) at each step: {' | '.join(loads)}")
    print(f"{'flow':<9} {'instances':>9} {'calls':>6} {'CPU/call':>9} {'vs 1':>6} "
          f"{'idle part':>9} {'w/o idle':>9} {'vs 1':>6} {'calls/s':>8} {'fail':>5}  "
          "per instance")  # fmt: skip
    for flow in FLOWS:
        one = next(r for r in rows if r.flow == flow and r.instances == 1)
        one_busy = one.cpu_ms_per_call - one.idle_ms_per_call
        for r in (r for r in rows if r.flow == flow):
            shares = " ".join(f"{ms:.2f}" for ms in r.per_instance_ms)
            busy = r.cpu_ms_per_call - r.idle_ms_per_call
            print(
                f"{r.flow:<9} {r.instances:>9} {r.calls:>6} {r.cpu_ms_per_call:>7.2f}ms "
                f"{r.cpu_ms_per_call / one.cpu_ms_per_call:>5.2f}x "
                f"{r.idle_ms_per_call:>7.2f}ms {busy:>7.2f}ms {busy / one_busy:>5.2f}x "
                f"{r.calls_per_s:>8.0f} {r.failures:>5}  {shares} ms"
            )


if __name__ == "__main__":
    main()
