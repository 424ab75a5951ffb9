"""FastAGI server Python CPU per call, in-process: what bench/agi_load.py cannot resolve.

bench/agi_load.py reads each server's CPU from outside, over real sockets; the kernel's share
(about half of a call) and psutil's 10 ms ticks leave its figures 5 us apart at best. This
one drives each server's protocol object in this process through a transport that only
counts writes: a plain callback feeds the header block, and after the flow's task started,
the 10 replies, as socket reads would (so Centralita's flow driver resumes the flow from
each reply, as live). What it measures is the Python (and C) each server runs per call,
with no socket and no kernel:

- centralita: agi.server with the bench's flow and Prometheus hooks (agi_load.centralita_server);
- taskfloor: the bare protocol running each call as a flow coroutine in a Task;
- bare: the BufferedProtocol that parses nothing.

Each is run `--rounds` times on each loop, interleaved; the best round is printed (the
least disturbed by the machine), and Centralita's figure less the task floor's: what
Centralita adds to a coroutine in a task, the part that the 1.3x goal of issue 14 bounds
(docs/cluster.md, "The floor under the goal").

    python bench/agi_inproc.py
    python bench/agi_inproc.py --calls 50000 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from agi_load import (  # noqa: E402
    HEADERS,
    LOOPS,
    BareBufferedProtocol,
    TaskFloorProtocol,
    centralita_server,
)

from agi.testing import CountingTransport  # noqa: E402
from centralita.app import tune_collector  # noqa: E402

REPLY = b"200 result=0\n"
COMMANDS = 10


def protocol_factory(kind: str) -> Callable[[], asyncio.BufferedProtocol]:
    if kind == "centralita":
        from agi.server import _AgiProtocol

        server = centralita_server(0)
        server.loop = asyncio.get_running_loop()
        return functools.partial(_AgiProtocol, server)  # as AgiServer.start makes them
    return TaskFloorProtocol if kind == "taskfloor" else BareBufferedProtocol


def feed(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """One socket read of `data`."""
    buffer = memoryview(protocol.get_buffer(-1))
    buffer[: len(data)] = data
    protocol.buffer_updated(len(data))


class Calls:
    """`count` calls one after the other, each step in a callback of its own, as reads come."""

    def __init__(self, make: Callable[[], asyncio.BufferedProtocol], count: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.make = make
        self.headers = [HEADERS.format(n=n).encode() for n in range(count)]
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.n = 0
        self.protocol: asyncio.BufferedProtocol | None = None
        self.transport = CountingTransport()

    def connect(self) -> None:
        if self.n == len(self.headers):
            self.done.set_result(None)
            return
        self.protocol, self.transport = self.make(), CountingTransport()
        self.protocol.connection_made(cast(asyncio.Transport, self.transport))
        feed(self.protocol, self.headers[self.n])
        self.loop.call_soon(self.replies)  # after the flow's task has started

    def replies(self) -> None:
        assert self.protocol is not None
        for _ in range(COMMANDS):
            feed(self.protocol, REPLY)
        self.loop.call_soon(self.hang_up)  # after the task has seen the flow end

    def hang_up(self) -> None:
        assert self.protocol is not None
        transport = self.transport
        if transport.writes != COMMANDS or not transport.closed:
            wrong = f"{transport.writes} commands written, closed: {transport.closed}"
            self.done.set_exception(AssertionError(wrong))
            return
        self.protocol.connection_lost(None)
        self.n += 1
        self.connect()


async def one_round(make: Callable[[], asyncio.BufferedProtocol], count: int) -> float:
    """CPU seconds per call over `count` calls."""
    calls = Calls(make, count)
    started = time.process_time()
    calls.loop.call_soon(calls.connect)
    await calls.done
    return (time.process_time() - started) / count


async def measure(kinds: tuple[str, ...], calls: int, rounds: int) -> dict[str, float]:
    makers = {kind: protocol_factory(kind) for kind in kinds}
    tune_collector()  # as `centralita serve` does once started
    for make in makers.values():
        await one_round(make, min(calls, 2000))  # warm up
    best = dict.fromkeys(kinds, float("inf"))
    for _ in range(rounds):
        for kind, make in makers.items():
            best[kind] = min(best[kind], await one_round(make, calls))
    return best


def run_on(loop_name: str, calls: int, rounds: int) -> dict[str, float] | None:
    factory = asyncio.new_event_loop
    if loop_name == "uvloop":
        try:
            import uvloop
        except ImportError:
            return None
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(measure(("centralita", "taskfloor", "bare"), calls, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per round and server")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best kept)")
    args = parser.parse_args()
    print(
        f"FastAGI in-process: Python CPU per call of the 10-command flow, no sockets, best of "
        f"{args.rounds} rounds of {args.calls} calls"
    )
    print(
        f"{'loop':<8} {'centralita':>11} {'task floor':>11} {'bare':>8} {'centralita - floor':>19}"
    )
    for loop_name in LOOPS:
        best = run_on(loop_name, args.calls, args.rounds)
        if best is None:
            print(f"{loop_name:<8} not measured: uvloop is not installed")
            continue
        ours, floor, bare = (best[k] * 1e6 for k in ("centralita", "taskfloor", "bare"))
        print(
            f"{loop_name:<8} {ours:>9.1f}us {floor:>9.1f}us {bare:>6.1f}us {ours - floor:>17.1f}us"
        )


if __name__ == "__main__":
    main()
