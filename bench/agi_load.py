"""FastAGI load benchmark: Centralita's server against panoramisk's and a bare floor.

Each server runs in its own process and serves the same 10-command flow. A load generator (this
process) plays Asterisk: it sends the header block, answers every command with
`200 result=0`, and measures the time from each reply it sends to the next command it gets.
The server's CPU time is read from the server process itself (user + system), so a slow load
generator can neither hide nor inflate it; peak RSS is the server's VmHWM.

    python bench/agi_load.py            # the full table (100 and 1,000 concurrent callers)
    python bench/agi_load.py --calls 2000
    python bench/agi_load.py --baseline HEAD~1   # also the code of a commit, side by side

Servers:
- centralita: agi.server.AgiServer with a registered flow using the typed session, and the
  Prometheus metrics hooks the app gives it (a session counted, every command timed);
- baseline (with --baseline REF): the same, on the code of git commit REF (a change's cost is
  read against it in the same run, on the same machine load);
- panoramisk: panoramisk.fast_agi.Application on asyncio.start_server;
- floor: a bare asyncio.Protocol that writes the next command on each reply and parses nothing;
- bare: the same as an asyncio.BufferedProtocol reading into one shared buffer, as
  Centralita's server does: what any BufferedProtocol server costs on a loop;
- taskfloor: the bare protocol running each call as an `async def` flow in an asyncio Task
  (resumed from the protocol, as agi/driver.py does), parsing nothing: what running a flow
  coroutine per call costs before any parsing, session, bounds or metrics.

Event loops: at 100 concurrent callers, Centralita and the bare BufferedProtocol also run on
uvloop (`[server] event_loop = "uvloop"`), so each loop's figures read against the bare
protocol on that same loop, in the same interleaved rounds (goal: <= 1.30x on each loop).
A server is named KIND or KIND/LOOP (`centralita/uvloop`); KIND alone is asyncio's loop.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import io
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import psutil

if TYPE_CHECKING:
    from agi.server import AgiServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMANDS = [
    b"ANSWER\n",
    b"GET VARIABLE CHANNEL(language)\n",
    b"STREAM FILE centralita/welcome 123\n",
    b"GET DATA centralita/enter-phone-number 5000 10\n",
    b'SAY DIGITS 12345 ""\n',
    b'STREAM FILE centralita/you-entered ""\n',
    b"GET FULL VARIABLE ${CALLERID(num)}\n",
    b"SET VARIABLE CENTRALITA_QUEUE support-en\n",
    b"VERBOSE bench 1\n",
    b"SET VARIABLE CENTRALITA_ROUTE queue:support-en\n",
]

HEADERS = (
    "agi_network: yes\nagi_network_script: bench\nagi_request: agi://127.0.0.1/bench\n"
    "agi_channel: PJSIP/1001-00000001\nagi_language: en\nagi_type: PJSIP\n"
    "agi_uniqueid: 1795301017.{n}\nagi_version: 20.20.1\nagi_callerid: 5551234567\n"
    "agi_calleridname: Alice Example\nagi_callingpres: 0\nagi_callingani2: 0\n"
    "agi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\nagi_rdnis: unknown\n"
    "agi_context: incoming\nagi_extension: s\nagi_priority: 2\nagi_enhanced: 0.0\n"
    "agi_accountcode: \nagi_threadid: 140008372963008\n\n"
)


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the servers (each runs in its own process) ---------------------------------------------


def centralita_server(port: int) -> AgiServer:
    """Centralita's FastAGI server with the bench's 10-command flow and the Prometheus hooks
    the app gives it (not started)."""
    # Imported here, in the server's process: with --code, from the baseline's tree.
    from agi.router import FlowRegistry
    from agi.server import AgiServer, ServerLimits
    from agi.session import AgiSession
    from centralita.metrics import PrometheusAgiMetrics

    registry = FlowRegistry()

    @registry.flow("bench")
    async def bench_flow(session: AgiSession, context: object) -> None:
        await session.answer()
        await session.get_variable("CHANNEL(language)")
        await session.stream_file("centralita/welcome", "123")
        await session.get_data("centralita/enter-phone-number", 5000, 10)
        await session.say_digits("12345")
        await session.stream_file("centralita/you-entered")
        await session.get_full_variable("${CALLERID(num)}")
        await session.set_variable("CENTRALITA_QUEUE", "support-en")
        await session.verbose("bench")
        await session.set_variable("CENTRALITA_ROUTE", "queue:support-en")

    return AgiServer(
        registry,
        port=port,
        limits=ServerLimits(max_sessions=20000, header_timeout_s=60, reply_timeout_s=600),
        metrics=PrometheusAgiMetrics(registry),
    )


async def serve_centralita(port: int) -> None:
    server = centralita_server(port)
    await server.start()
    # What `centralita serve` does to the garbage collector once started.
    try:
        from centralita.app import tune_collector
    except ImportError:  # a baseline commit (--baseline) from before it: what serve did then
        gc.freeze()
    else:
        tune_collector()
    await announce(server.port)


async def serve_panoramisk(port: int) -> None:
    from panoramisk import fast_agi

    app = fast_agi.Application(loop=asyncio.get_running_loop())

    async def bench(request: fast_agi.Request) -> None:
        for command in COMMANDS:
            await request.send_command(command[:-1].decode())

    app.add_route("bench", bench)
    server = await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=4096)
    await announce(server.sockets[0].getsockname()[1])


class FloorProtocol(asyncio.Protocol):
    """Writes the next command whenever a line arrives; parses nothing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.in_headers = True
        self.next = 0

    def data_received(self, data: bytes) -> None:
        if self.in_headers:
            if not data.endswith(b"\n\n"):
                return
            self.in_headers = False
        elif not data.endswith(b"\n"):
            return
        if self.next == len(COMMANDS):
            self.transport.close()
            return
        self.transport.write(COMMANDS[self.next])
        self.next += 1


async def serve_floor(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FloorProtocol, "127.0.0.1", port, backlog=4096)
    await announce(server.sockets[0].getsockname()[1])


# One read buffer for every connection, as agi/server.py has (copied out before the next read).
BARE_BUFFER = memoryview(bytearray(64 * 1024))


class BareBufferedProtocol(asyncio.BufferedProtocol):
    """FloorProtocol as a BufferedProtocol: reads into the shared buffer, parses nothing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.in_headers = True
        self.next = 0

    def get_buffer(self, sizehint: int) -> memoryview:
        return BARE_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        if self.in_headers:
            if nbytes < 2 or BARE_BUFFER[nbytes - 2] != 10 or BARE_BUFFER[nbytes - 1] != 10:
                return
            self.in_headers = False
        elif BARE_BUFFER[nbytes - 1] != 10:  # b"\n"
            return
        if self.next == len(COMMANDS):
            self.transport.close()
            return
        self.transport.write(COMMANDS[self.next])
        self.next += 1


async def serve_bare(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(BareBufferedProtocol, "127.0.0.1", port, backlog=4096)
    await announce(server.sockets[0].getsockname()[1])


class _FloorReply:
    """The awaitable of one command's reply in TaskFloorProtocol: yields itself once."""

    __slots__ = ()

    def __await__(self) -> Generator[_FloorReply, None, None]:
        yield self


class TaskFloorProtocol(BareBufferedProtocol):
    """The bare protocol with what any server pays that runs each call as a flow: an asyncio
    Task per call, alive until the call ends, and an `async def` flow that awaits each of the
    10 commands, resumed straight from `buffer_updated` (as agi/driver.py resumes ours). It
    parses nothing and has no session, no encoding, no bounds and no metrics: the rest of a
    server's cost per call is what it adds to this floor."""

    reply = _FloorReply()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.flow: Coroutine[object, None, None] | None = None
        self.ended: asyncio.Future[None] | None = None

    def buffer_updated(self, nbytes: int) -> None:
        if self.in_headers:
            if nbytes < 2 or BARE_BUFFER[nbytes - 2] != 10 or BARE_BUFFER[nbytes - 1] != 10:
                return
            self.in_headers = False
            asyncio.get_running_loop().create_task(self.call())
        elif BARE_BUFFER[nbytes - 1] == 10:  # b"\n"
            self.resume()

    async def call(self) -> None:
        self.ended = asyncio.get_running_loop().create_future()
        self.flow = self.commands()
        self.resume()
        await self.ended

    async def commands(self) -> None:
        for command in COMMANDS:
            self.transport.write(command)
            await self.reply

    def resume(self) -> None:
        assert self.flow is not None and self.ended is not None
        try:
            self.flow.send(None)
        except StopIteration:
            self.transport.close()
            self.ended.set_result(None)


async def serve_task_floor(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(TaskFloorProtocol, "127.0.0.1", port, backlog=4096)
    await announce(server.sockets[0].getsockname()[1])


async def announce(port: int) -> None:
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


SERVERS = {
    "centralita": serve_centralita,
    "baseline": serve_centralita,  # run with --code: the baseline commit's tree
    "panoramisk": serve_panoramisk,
    "floor": serve_floor,
    "bare": serve_bare,
    "taskfloor": serve_task_floor,
}
LOOPS = ("asyncio", "uvloop")


def split_name(name: str) -> tuple[str, str]:
    """`centralita/uvloop` -> ("centralita", "uvloop"); `floor` -> ("floor", "asyncio")."""
    kind, _, loop = name.partition("/")
    return kind, loop or "asyncio"


def uvloop_missing() -> str | None:
    """Why the uvloop servers cannot run here (None: they can)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "uvloop is not installed (pip install 'centralita[uvloop]')"
    return None


def run_server(name: str, code: str | None) -> None:
    import logging

    if code:
        sys.path.insert(0, code)  # before this checkout: agi/ and centralita/ come from there
    logging.disable(logging.CRITICAL)  # panoramisk logs every request at INFO
    raise_fd_limit()
    kind, loop = split_name(name)
    # The loop is made here, not through agi/loops.py, which a --code tree may not have.
    factory = asyncio.new_event_loop
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(SERVERS[kind](0))


def export_commit(ref: str, into: Path) -> str:
    """Write the tree of git commit `ref` into `into`; returns its short hash."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "archive",
            "--format=tar",
            commit,
            "agi",
            "ami",
            "centralita",
            "dialplan",
        ],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


# -- the load generator ----------------------------------------------------------------------


class Caller(asyncio.Protocol):
    """Plays Asterisk for one call: headers, then `200 result=0` to every command."""

    def __init__(self, n: int, done: asyncio.Future[None], samples: list[float]) -> None:
        self.n = n
        self.done = done
        self.samples = samples
        self.sent_at = 0.0
        self.buffer = b""
        self.commands = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(HEADERS.format(n=self.n).encode())

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        while b"\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\n", 1)
            if self.commands:
                self.samples.append(now - self.sent_at)
            self.commands += 1
            self.sent_at = time.perf_counter()
            self.transport.write(b"200 result=0\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def drive(port: int, calls: int, concurrency: int) -> tuple[float, list[float], int]:
    """Run `calls` calls, `concurrency` at a time; returns wall time, latencies, failures."""
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    counter = iter(range(calls))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for n in counter:
            done: asyncio.Future[None] = loop.create_future()
            try:
                _transport, proto = await loop.create_connection(
                    functools.partial(Caller, n, done, samples), "127.0.0.1", port
                )
            except OSError:
                failures += 1
                continue
            await done
            if proto.commands != len(COMMANDS):
                failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, samples, failures


@dataclass
class Row:
    server: str
    concurrency: int
    calls: int
    cpu_per_call_us: float
    user_per_call_us: float
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    failures: int


def start_server(kind: str, code: Path | None = None) -> tuple[subprocess.Popen[str], int]:
    extra = ["--code", str(code)] if code is not None else []
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, *extra],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"{kind} server did not start: {line!r}")
    return proc, int(line.split()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    rss: int = psutil.Process(pid).memory_info().rss
    return rss / 1024 / 1024


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user + system, user) CPU seconds of a process so far.

    The total is the scheduler's own count, in nanoseconds (the first field of each thread's
    /proc/PID/task/TID/schedstat), where the kernel keeps it: user and system times come in
    clock ticks of 10 ms, and a round of 3,000 calls at 70 us each is only 21 ticks, which
    moved a server's figure by up to 5% from one run to the next. The user share (only
    shown, never compared against the goal) stays in ticks.
    """
    times = psutil.Process(pid).cpu_times()
    return scheduled_seconds(pid) or times.user + times.system, times.user


def scheduled_seconds(pid: int) -> float:
    """CPU seconds the scheduler has run the threads of `pid` (0.0 where it does not say)."""
    total = 0
    try:
        for thread in Path(f"/proc/{pid}/task").iterdir():
            total += int((thread / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return total / 1e9


def measure_level(
    concurrency: int,
    calls: int,
    rounds: int,
    baseline: Path | None = None,
    extra: tuple[str, ...] = (),
    others: tuple[str, ...] = ("panoramisk", "floor"),
) -> list[Row]:
    """Every server at one concurrency, in interleaved rounds (so a burst of load on the
    machine hits every server alike); CPU/call is the median over the rounds. `extra` adds
    servers (`bare`, `centralita/uvloop`, ...) to the same rounds; `others` are the servers
    compared against besides Centralita (and the baseline)."""
    kinds: tuple[str, ...] = ("centralita", *(("baseline",) if baseline is not None else ()))
    kinds += others + extra
    servers = {
        kind: start_server(kind, baseline if kind.startswith("baseline") else None)
        for kind in kinds
    }
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    user: dict[str, list[float]] = {kind: [] for kind in kinds}
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    wall: dict[str, float] = dict.fromkeys(kinds, 0.0)
    failures: dict[str, int] = dict.fromkeys(kinds, 0)
    per_round = max(1, calls // rounds)
    try:
        for _kind, (_, port) in servers.items():
            asyncio.run(drive(port, min(300, calls), min(100, concurrency)))  # warm up
        for round_no in range(rounds):
            # Each round starts with the next server, so that none always runs first or right
            # after the same one: an order effect would not show up as a difference of code.
            shift = round_no % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                proc, port = servers[kind]
                gc.collect()
                total_before, user_before = cpu_seconds(proc.pid)
                seconds, latencies, failed = asyncio.run(drive(port, per_round, concurrency))
                total_after, user_after = cpu_seconds(proc.pid)
                cpu[kind].append((total_after - total_before) / per_round)
                user[kind].append((user_after - user_before) / per_round)
                samples[kind] += latencies
                wall[kind] += seconds
                failures[kind] += failed
        rows = []
        for kind, (proc, _) in servers.items():
            latencies = sorted(samples[kind])
            rows.append(
                Row(
                    server=kind,
                    concurrency=concurrency,
                    calls=per_round * rounds,
                    cpu_per_call_us=statistics.median(cpu[kind]) * 1e6,
                    user_per_call_us=statistics.median(user[kind]) * 1e6,
                    calls_per_s=per_round * rounds / wall[kind],
                    p50_ms=statistics.median(latencies) * 1e3,
                    p99_ms=latencies[int(len(latencies) * 0.99)] * 1e3,
                    peak_rss_mb=peak_rss_mb(proc.pid),
                    failures=failures[kind],
                )
            )
        return rows
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()


async def hold_idle(port: int, sessions: int) -> list[asyncio.Transport]:
    """Open `sessions` calls that each stop answering after the first command."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    got_first: list[asyncio.Future[None]] = []

    class Idle(asyncio.Protocol):
        def __init__(self, n: int) -> None:
            self.n = n
            self.first: asyncio.Future[None] = loop.create_future()
            got_first.append(self.first)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transport.write(HEADERS.format(n=self.n).encode())

        def data_received(self, data: bytes) -> None:
            if not self.first.done():
                self.first.set_result(None)  # the flow now waits for our reply: idle

    for start in range(0, sessions, 500):
        batch = await asyncio.gather(
            *(
                loop.create_connection(functools.partial(Idle, n), "127.0.0.1", port)
                for n in range(start, min(sessions, start + 500))
            )
        )
        transports += [t for t, _ in batch]
    await asyncio.gather(*got_first)
    return transports


def measure_idle(sessions: int) -> tuple[float, float]:
    """RSS per idle session of the Centralita server, in KiB (and the total in MiB)."""
    proc, port = start_server("centralita")
    try:
        asyncio.run(drive(port, 200, 50))  # warm up
        time.sleep(0.2)
        before = psutil.Process(proc.pid).memory_info().rss

        async def hold() -> int:
            transports = await hold_idle(port, sessions)
            await asyncio.sleep(0.5)
            rss: int = psutil.Process(proc.pid).memory_info().rss
            for t in transports:
                t.abort()
            return rss

        after = asyncio.run(hold())
        return (after - before) / sessions / 1024, after / 1024 / 1024
    finally:
        proc.kill()
        proc.wait()


def print_loops(rows: list[Row], missing: str | None) -> None:
    """The event loops side by side: Centralita and the bare BufferedProtocol on each."""
    by = {r.server: r for r in rows if r.concurrency == 100}
    print()
    print(
        "Event loops, 100 callers, the same 10-command flow: server CPU/call, and Centralita "
        "against the bare BufferedProtocol on the same loop (goal <= 1.30x)"
    )
    print(
        f"{'loop':<8} {'centralita':>11} {'bare':>8} {'ratio':>6} {'user ratio':>11} "
        f"{'task floor':>11} {'floor ratio':>12}"
    )
    for loop in LOOPS:
        suffix = "" if loop == "asyncio" else f"/{loop}"
        ours, bare = by.get(f"centralita{suffix}"), by.get(f"bare{suffix}")
        floor = by.get(f"taskfloor{suffix}")
        if ours is None or bare is None or floor is None:
            print(f"{loop:<8} not measured: {missing}")
            continue
        print(
            f"{loop:<8} {ours.cpu_per_call_us:>9.0f}us {bare.cpu_per_call_us:>6.0f}us "
            f"{ours.cpu_per_call_us / bare.cpu_per_call_us:>5.2f}x "
            f"{ours.user_per_call_us / bare.user_per_call_us:>10.2f}x "
            f"{floor.cpu_per_call_us:>9.0f}us "
            f"{floor.cpu_per_call_us / bare.cpu_per_call_us:>11.2f}x"
        )
    print(
        "task floor: the bare protocol running each call as a flow coroutine in a Task, parsing "
        "nothing; its ratio is what that alone costs of the 1.30x"
    )
    print()


def print_table(rows: list[Row], args: argparse.Namespace, commit: str | None) -> None:
    """Every server's row."""
    print(
        "FastAGI load: a 10-command flow over loopback, each server in its own process; "
        f"CPU/call is the server's own CPU time, median of {args.rounds} interleaved rounds"
    )
    if commit is not None:
        print(f"baseline: the same server on commit {commit} ({args.baseline})")
    print(
        f"{'server':<17} {'conc':>5} {'calls':>6} {'CPU/call':>9} {'user':>7} {'calls/s':>8} "
        f"{'p50':>8} {'p99':>8} {'peak RSS':>9} {'fail':>5}"
    )
    for r in rows:
        print(
            f"{r.server:<17} {r.concurrency:>5} {r.calls:>6} {r.cpu_per_call_us:>7.0f}us "
            f"{r.user_per_call_us:>5.0f}us "
            f"{r.calls_per_s:>8.0f} {r.p50_ms:>6.2f}ms {r.p99_ms:>6.2f}ms "
            f"{r.peak_rss_mb:>7.1f}MB {r.failures:>5}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--serve",
        choices=sorted(f"{kind}/{loop}" for kind in SERVERS for loop in LOOPS) + sorted(SERVERS),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--calls", type=int, default=6000, help="calls per server and level")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds per level")
    parser.add_argument("--idle", type=int, default=10000, help="idle sessions to hold")
    parser.add_argument(
        "--baseline", metavar="REF", help="also serve the code of git commit REF, side by side"
    )
    parser.add_argument(
        "--loops",
        action="store_true",
        help="only the event loops side by side (Centralita and the bare protocol, 100 callers)",
    )
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.serve, args.code)
        return
    raise_fd_limit()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="agi-load-") as tmp:
        baseline = None
        commit: str | None = None
        if args.baseline:
            baseline = Path(tmp)
            commit = export_commit(args.baseline, baseline)
        missing = uvloop_missing()
        # The event loops side by side at 100 callers: each loop's Centralita against the bare
        # BufferedProtocol on the same loop, in the same rounds.
        loop_servers = ("bare", "taskfloor") + (
            "centralita/uvloop",
            "bare/uvloop",
            "taskfloor/uvloop",
        ) * (missing is None)
        if args.loops:
            if baseline is not None and missing is None:
                loop_servers += ("baseline/uvloop",)
            rows = measure_level(100, args.calls, args.rounds, baseline, loop_servers, others=())
            print_table(rows, args, commit)
            print_loops(rows, missing)
            return
        for concurrency in (100, 1000):
            extra = loop_servers if concurrency == 100 else ()
            rows += measure_level(concurrency, args.calls, args.rounds, baseline, extra)
    print_table(rows, args, commit)
    print()
    for concurrency in (100, 1000):
        by = {r.server: r for r in rows if r.concurrency == concurrency}
        ours = by["centralita"].cpu_per_call_us
        vs_pano = ours / by["panoramisk"].cpu_per_call_us
        vs_floor = ours / by["floor"].cpu_per_call_us
        pano_floor = by["panoramisk"].cpu_per_call_us / by["floor"].cpu_per_call_us
        user_pano = by["centralita"].user_per_call_us / by["panoramisk"].user_per_call_us
        user_floor = by["centralita"].user_per_call_us / by["floor"].user_per_call_us
        print(
            f"{concurrency:>5} callers: centralita CPU/call = {vs_pano:.2f}x panoramisk "
            f"(target <= 0.85), {vs_floor:.2f}x floor (target <= 1.20); "
            f"panoramisk = {pano_floor:.2f}x floor; user CPU only: {user_pano:.2f}x panoramisk, "
            f"{user_floor:.2f}x floor"
        )
        if "baseline" in by:
            print(
                f"{concurrency:>5} callers: centralita CPU/call = "
                f"{ours / by['baseline'].cpu_per_call_us:.3f}x baseline "
                f"({ours:.0f} us vs {by['baseline'].cpu_per_call_us:.0f} us), user CPU "
                f"{by['centralita'].user_per_call_us / by['baseline'].user_per_call_us:.3f}x"
            )
    print_loops(rows, missing)
    per_session, total = measure_idle(args.idle)
    print(
        f"{args.idle} idle sessions: {per_session:.1f} KiB RSS each "
        f"(target < 20 KiB), server RSS {total:.0f} MB"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
