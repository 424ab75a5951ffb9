"""agi/cores.py and agi/_speedups.c: the command path's cores, in C and in Python.

The server's own tests (tests/agi_loops, the flows' tests) run on whichever core is loaded;
`make test` runs them a second time with CENTRALITA_NO_SPEEDUPS=1. These check what the two
must agree on directly, and that the C cores are the ones that run where they can be built.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram

from agi import cores
from agi.driver import ReplyWaiter
from agi.protocol import Reply, encode_command
from agi.router import FlowRegistry
from agi.server import AgiMetrics, AgiServer, ServerLimits, _AgiProtocol
from agi.session import AgiSession
from agi.testing import CountingTransport
from centralita.metrics import LoopHistogram

ROOT = Path(__file__).resolve().parent.parent
BOUNDS = (0.001, 0.01, 0.1, 1.0)


def _c_module() -> Any:
    if not cores.SPEEDUPS:
        pytest.skip("agi._speedups is not loaded (not built, or CENTRALITA_NO_SPEEDUPS=1)")
    return cores._speedups


def _time_counters() -> list[Any]:
    counters: list[Any] = [cores.PyCommandTimes]
    if cores.SPEEDUPS:
        counters.append(cores._speedups.CommandTimes)
    return counters


def test_the_c_cores_run_wherever_a_c_compiler_built_them() -> None:
    """With a C compiler on the machine, `pip install -e .` (make) builds agi/_speedups.c, and
    the server runs on it unless told not to; this fails if the build step went missing."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the pure-Python cores run, as documented")
    code = "import agi.cores as c; print(c.SPEEDUPS, c.ProtocolCore.__module__)"
    env = {k: v for k, v in os.environ.items() if k != "CENTRALITA_NO_SPEEDUPS"}
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ran.stdout.split() == ["True", "agi._speedups"], ran.stderr
    env["CENTRALITA_NO_SPEEDUPS"] = "1"
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ran.stdout.split() == ["False", "agi.cores"], ran.stderr


@pytest.mark.parametrize("counter", _time_counters())
def test_command_times_count_as_prometheus_own_histogram(counter: Any) -> None:
    # A time on a bound counts in that bucket (`le`); the last bucket is above every bound.
    times = counter(BOUNDS)
    registry = CollectorRegistry()
    theirs = Histogram("h", "h", buckets=BOUNDS, registry=registry)
    values = (0.0, 0.001, 0.0011, 0.01, 0.5, 1.0, 3.0, 3.0)
    for value in values:
        times.add(value)
        theirs.observe(value)
    counts, total = times.take()
    cumulative = [sum(counts[: n + 1]) for n in range(len(counts))]
    expected = [s.value for m in registry.collect() for s in m.samples if s.name == "h_bucket"]
    assert cumulative == expected == [2, 4, 4, 6, 8]
    assert total == pytest.approx(sum(values))
    assert tuple(times.bounds) == BOUNDS
    assert times.take() == ([0] * 5, 0.0)  # taken: counting starts again from zero


@pytest.mark.parametrize("counter", _time_counters())
def test_command_times_refuse_bounds_out_of_order(counter: Any) -> None:
    with pytest.raises(ValueError, match="increasing"):
        counter((0.1, 0.01))
    with pytest.raises(ValueError, match="at most 32"):
        counter([float(n) for n in range(1, 34)])


def test_the_loop_histogram_adds_the_servers_counts() -> None:
    registry = CollectorRegistry()
    histogram = LoopHistogram("h", "h", AgiMetrics.command_buckets, registry=registry)
    times = cores.CommandTimes(AgiMetrics.command_buckets)
    for value in (0.0005, 0.002, 0.002, 7.0):
        times.add(value)
    histogram.add_counts(*times.take())
    samples = {
        (s.name, s.labels.get("le", "")): s.value for m in registry.collect() for s in m.samples
    }
    assert samples[("h_bucket", "0.001")] == 1
    assert samples[("h_bucket", "0.0025")] == 3
    assert samples[("h_bucket", "5.0")] == 3 and samples[("h_bucket", "+Inf")] == 4
    assert samples[("h_count", "")] == 4
    with pytest.raises(ValueError, match="3 counts for 13 buckets"):
        histogram.add_counts([1, 2, 3], 1.0)


@pytest.mark.parametrize("convert", [None, lambda reply: reply.result_int])
def test_an_awaited_waiter_yields_itself_then_gives_its_reply(convert: Any) -> None:
    """On either core: what a flow's `await` sees, pending then done, converted or not."""
    waiter = ReplyWaiter(None, b"ANSWER\n")  # type: ignore[arg-type]
    waiter.rearm(b"ANSWER\n", convert)

    async def flow() -> object:
        return await waiter

    running = flow()
    assert running.send(None) is waiter and waiter._asyncio_future_blocking
    reply = Reply(200, "7", text="200 result=7")
    waiter._result, waiter._state = reply, 1
    with pytest.raises(StopIteration) as stop:
        running.send(None)
    assert stop.value.value == (reply if convert is None else 7)


def test_only_a_python_subclass_of_a_core_is_adopted() -> None:
    speedups = _c_module()
    with pytest.raises(TypeError, match="subclass of WaiterCore"):
        speedups.adopt_waiter(int)
    with pytest.raises(TypeError, match="subclass of WaiterCore"):
        speedups.adopt_waiter(speedups.WaiterCore)  # a static type, not a class statement's
    with pytest.raises(TypeError, match="subclass of DriverCore"):
        speedups.adopt_driver(ReplyWaiter)
    with pytest.raises(TypeError, match="subclass of DriverCore"):
        speedups.adopt_driver(speedups.DriverCore)


def test_the_c_protocol_core_refuses_a_read_beyond_its_buffer() -> None:
    speedups = _c_module()
    core = speedups.ProtocolCore()
    core._read_buffer = memoryview(bytearray(16))
    with pytest.raises(ValueError, match="17 bytes read into a 16-byte buffer"):
        core.buffer_updated(17)
    with pytest.raises(ValueError, match="-1 bytes"):
        core.buffer_updated(-1)
    core._read_buffer = bytearray(16)  # not a memoryview
    with pytest.raises(TypeError, match="memoryview"):
        core.buffer_updated(1)


def _protocol_cores() -> list[Any]:
    found: list[Any] = [cores.PyProtocolCore]
    if cores.SPEEDUPS:
        found.append(cores._speedups.ProtocolCore)
    return found


class _Lines:
    """What a core's `send` was given, in place of a transport."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def __call__(self, line: bytes) -> None:
        self.sent.append(line)


@pytest.mark.parametrize("core_type", _protocol_cores())
def test_a_command_sends_the_encoders_line_whatever_its_argument_types(core_type: Any) -> None:
    """`command` looks in the encoder's kept lines before calling it (in C, under the typed
    key too, for integer arguments): the line sent is always the encoder's, and 1, True,
    1.0 and "1" never share one, the second time either (a kept line is found then)."""

    class Core(core_type):  # type: ignore[misc]
        pass

    loop = asyncio.new_event_loop()
    try:
        core = Core()
        core.waiter = ReplyWaiter(loop)
        core._write = lines = _Lines()
        core._closed = core.hung_up = False
        core._reply_timeout = 60.0
        for _ in range(2):
            for args in (("x", 1, 10), ("x", "1", "10"), ("x", True, 10), (1, "")):
                core._pending = None
                core.command(None, "GET DATA", *args)
                assert lines.sent[-1] == encode_command("GET DATA", *args)
            core._pending = None
            with pytest.raises(TypeError):
                core.command(None, "GET DATA", "x", 1.0, 10)
        assert lines.sent[:4] == [
            b"GET DATA x 1 10\n",
            b"GET DATA x 1 10\n",
            b"GET DATA x True 10\n",
            b'GET DATA 1 ""\n',
        ]
    finally:
        loop.close()


# -- a call leaves nothing behind, on either core -------------------------------------------

_HEADER_BLOCK = (
    "agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1/{script}\n"
    "agi_channel: PJSIP/1001-{n:08x}\nagi_language: en\nagi_type: PJSIP\n"
    "agi_uniqueid: 1795301017.{n}\nagi_version: 20.20.1\nagi_callerid: 5551234567\n"
    "agi_calleridname: Alice\nagi_callingpres: 0\nagi_callingani2: 0\nagi_callington: 0\n"
    "agi_callingtns: 0\nagi_dnid: unknown\nagi_rdnis: unknown\nagi_context: incoming\n"
    "agi_extension: s\nagi_priority: 2\nagi_enhanced: 0.0\nagi_accountcode: \n"
    "agi_threadid: 1\n\n"
)
OK = b"200 result=0\n"


def _leak_registry() -> FlowRegistry:
    registry = FlowRegistry()

    @registry.flow("steps")
    async def steps(session: AgiSession, context: object) -> None:
        await session.answer()
        data = await session.get_data("centralita/enter-phone-number", 5000, 4)
        await session.stream_file("centralita/welcome", "12")
        await session.set_variable("CENTRALITA_ROUTE", f"queue:q{data.digits}")

    @registry.flow("broken")
    async def broken(session: AgiSession, context: object) -> None:
        await session.answer()
        raise RuntimeError("a bug in a flow")  # the server sets the fallback route

    return registry


# (script, the replies Asterisk sends): a whole flow, a hangup (511) in the middle, a flow
# that raises, a HANGUP line before a reply, and a script that is no flow.
_CALLS = [
    ("steps", [OK, b"200 result=12\n", OK, OK]),
    ("steps", [OK, b"511 Command Not Permitted on a dead channel or intercept routine\n"]),
    ("broken", [OK, OK]),
    ("steps", [OK, b"HANGUP\n200 result=1\n"]),
    ("nothing-here", []),
]


def _read(protocol: _AgiProtocol, data: bytes) -> None:
    """One socket read of `data`, as the event loop makes it: from a plain callback, outside
    any task (a reply wakes its flow's task right there)."""
    protocol._read_buffer[: len(data)] = data
    protocol.buffer_updated(len(data))


async def _serve_calls(server: AgiServer, count: int) -> int:
    """`count` calls through the server's protocol, in-process; how many ended closed."""
    loop = asyncio.get_running_loop()
    closed = 0
    for n in range(count):
        script, replies = _CALLS[n % len(_CALLS)]
        protocol = _AgiProtocol(server)
        transport = CountingTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        for data in (_HEADER_BLOCK.format(script=script, n=n).encode(), *replies):
            loop.call_soon(_read, protocol, data)
            for _ in range(4):  # the read, then the flow's task starts, runs and ends
                await asyncio.sleep(0)
        loop.call_soon(protocol.connection_lost, None)
        await asyncio.sleep(0)
        closed += transport.closed
    return closed


async def test_a_call_leaves_no_object_and_no_cycle_behind() -> None:
    """Every object of a call is freed by reference counting when it ends, on whichever core
    runs: a reference the C forgot to drop, or a cycle, would grow with the calls."""
    server = AgiServer(
        _leak_registry(),
        limits=ServerLimits(header_timeout_s=60, reply_timeout_s=600),
        fallback_route="queue:support-en",
    )
    server.loop = asyncio.get_running_loop()
    # Quiet: a log record of a failed flow keeps its traceback, wherever the test run keeps
    # records.
    calls_log = logging.getLogger("centralita.agi")
    calls_log.disabled = True
    try:
        await _serve_calls(server, 250)  # warm: caches, interned strings
        gc.collect()
        gc.disable()
        blocks = sys.getallocatedblocks()
        closed = await _serve_calls(server, 2500)
        grown = sys.getallocatedblocks() - blocks
        cyclic = gc.collect()
    finally:
        gc.enable()
        calls_log.disabled = False
    assert closed == 2500  # every call was served to its end and closed
    # One object kept per call would be 2,500 blocks or more; the caches that grow with
    # time (the loop's, the encoder's) take a few hundred.
    assert grown < 1000, f"{grown} memory blocks more after 2,500 calls"
    assert cyclic < 50, f"{cyclic} objects in reference cycles after 2,500 calls"
    assert not server.sessions and not server.tasks
