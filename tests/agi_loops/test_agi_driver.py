"""agi/driver.py: a flow resumed straight from its replies still runs as its own task.

Each flow below mixes commands with other awaits (a bare yield, a sleep, a future another task
completes, asyncio.timeout, a cancellation) and reports what it saw through a channel
variable, over real loopback sockets on each event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator

import pytest

from agi.router import FlowRegistry
from agi.server import AgiServer, ServerLimits
from agi.session import AgiSession
from agi.testing import Caller, place_call

from .conftest import ON_EVERY_LOOP

pytestmark = ON_EVERY_LOOP

registry = FlowRegistry()
SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("SEEN", default="unset")
# The flows' own tasks and a future a test completes from its side, by flow.
TASKS: dict[str, asyncio.Task[object] | None] = {}
RELEASE: dict[str, asyncio.Future[str]] = {}
ASKED: dict[str, asyncio.Event] = {}


@registry.flow("mixed")
async def mixed_flow(session: AgiSession, context: object) -> None:
    """Commands between a bare yield, a sleep and a future: one task, one context."""
    task = asyncio.current_task()
    SEEN.set("set before the first command")
    seen = []
    await session.answer()
    seen.append(asyncio.current_task() is task)
    await asyncio.sleep(0)
    await session.stream_file("centralita/welcome")
    seen.append(asyncio.current_task() is task)
    await asyncio.sleep(0.01)
    ASKED["mixed"].set()
    word = await RELEASE["mixed"]
    await session.stream_file("centralita/you-entered")
    seen.append(asyncio.current_task() is task)
    TASKS["mixed"] = task
    same = "same-task" if all(seen) else "another-task"
    await session.set_variable("CENTRALITA_ROUTE", f"queue:{same}:{word}:{SEEN.get()}")


async def _release_when_asked(name: str, word: str) -> None:
    await ASKED[name].wait()  # the flow awaits the future now
    RELEASE[name].set_result(word)


@registry.flow("timeboxed")
async def timeboxed_flow(session: AgiSession, context: object) -> None:
    """asyncio.timeout around a command that gets no reply: the flow sees TimeoutError."""
    await session.answer()
    try:
        async with asyncio.timeout(0.05):
            await session.command("WAIT FOR DIGIT", 1000)
    except TimeoutError:
        TASKS["timeboxed"] = asyncio.current_task()
        await session.command("NOOP")  # the stream is out of step now: refused


@registry.flow("cancelled")
async def cancelled_flow(session: AgiSession, context: object) -> None:
    """Waits for a reply that never comes until the server's shutdown cancels it."""
    await session.answer()
    try:
        await session.command("WAIT FOR DIGIT", 100000)
    except asyncio.CancelledError:
        TASKS["cancelled"] = asyncio.current_task()
        raise


@registry.flow("broken")
async def broken_flow(session: AgiSession, context: object) -> None:
    """Raises right after a reply resumed it: the server's fallback then awaits a reply."""
    TASKS["broken"] = asyncio.current_task()
    await session.answer()
    raise RuntimeError("a bug in a flow")


@registry.flow("awaits-first")
async def awaits_first_flow(session: AgiSession, context: object) -> None:
    """Awaits a future before its first command: the task itself waits on it, through the
    driver's await, until the flow reaches a reply."""
    await asyncio.sleep(0)
    ASKED["awaits-first"].set()
    try:
        word = await RELEASE["awaits-first"]
    except asyncio.CancelledError:
        TASKS["awaits-first"] = asyncio.current_task()
        raise
    await session.set_variable("CENTRALITA_ROUTE", f"queue:{word}")


@pytest.fixture
async def server() -> AsyncIterator[AgiServer]:
    TASKS.clear()
    for name in ("mixed", "awaits-first"):
        RELEASE[name] = asyncio.get_running_loop().create_future()
        ASKED[name] = asyncio.Event()
    srv = AgiServer(
        registry,
        port=0,
        fallback_route="queue:fallback",
        limits=ServerLimits(header_timeout_s=5.0, reply_timeout_s=30.0, shutdown_grace_s=0.05),
    )
    await srv.start()
    yield srv
    await srv.stop()


async def test_a_flow_keeps_its_task_and_context_between_commands(server: AgiServer) -> None:
    call = place_call("127.0.0.1", server.port, Caller(script="mixed"))
    result, _ = await asyncio.gather(call, _release_when_asked("mixed", "hello"))
    assert result.route == "queue:same-task:hello:set before the first command"
    assert result.heard == ["centralita/welcome", "centralita/you-entered"]
    assert TASKS["mixed"] is not None and TASKS["mixed"].done()
    assert server.tasks == set()


async def test_asyncio_timeout_around_a_command_reaches_the_flow(server: AgiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\nagi_network_script: timeboxed\n\n")
    assert await reader.readline() == b"ANSWER\n"
    writer.write(b"200 result=0\n")
    assert await reader.readline() == b"WAIT FOR DIGIT 1000\n"
    # Never answered: the flow's own timeout fires, its NOOP is refused, the server closes.
    assert await reader.read() == b""
    writer.close()
    assert TASKS["timeboxed"] is not None


async def test_cancelling_the_task_reaches_a_flow_waiting_for_a_reply(
    server: AgiServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\nagi_network_script: cancelled\n\n")
    assert await reader.readline() == b"ANSWER\n"
    writer.write(b"200 result=0\n")
    assert await reader.readline() == b"WAIT FOR DIGIT 100000\n"
    (task,) = server.tasks
    await server.stop()  # the grace runs out: the flow's task is cancelled
    assert await reader.read() == b""
    writer.close()
    assert TASKS["cancelled"] is task
    assert task.cancelled()


async def test_a_flow_failing_on_a_reply_gets_the_fallback_from_its_task(
    server: AgiServer,
) -> None:
    result = await place_call("127.0.0.1", server.port, Caller(script="broken"))
    assert result.route == "queue:fallback"
    task = TASKS["broken"]
    assert task is not None
    await asyncio.wait({task})
    # The fallback's SET VARIABLE was awaited by the task itself, after the flow raised
    # inside a reply's resume: the task ended cleanly, not with the waiter's state error.
    assert task.exception() is None


async def test_a_flow_awaiting_before_its_first_command_goes_on_to_its_commands(
    server: AgiServer,
) -> None:
    call = place_call("127.0.0.1", server.port, Caller(script="awaits-first"))
    result, _ = await asyncio.gather(call, _release_when_asked("awaits-first", "early"))
    assert result.route == "queue:early"
    assert server.tasks == set()


async def test_cancelling_the_task_reaches_a_flow_awaiting_before_its_first_command(
    server: AgiServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\nagi_network_script: awaits-first\n\n")
    await ASKED["awaits-first"].wait()
    (task,) = server.tasks
    await server.stop()  # the grace runs out: the task throws the cancellation in
    assert await reader.read() == b""  # no command was sent
    writer.close()
    assert TASKS["awaits-first"] is task
    assert task.cancelled()
