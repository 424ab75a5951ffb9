"""agi/server.py and agi/session.py driven by the simulator over real loopback sockets, on
each event loop (asyncio's and uvloop's: see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from agi.router import FlowRegistry
from agi.server import AgiServer, ServerLimits
from agi.session import AgiSession
from agi.testing import Caller, place_call, place_calls

from .conftest import ON_EVERY_LOOP

pytestmark = ON_EVERY_LOOP

registry = FlowRegistry()


@registry.flow("echo")
async def echo_flow(session: AgiSession, context: object) -> None:
    """Answer, read digits, say them back, and route on them."""
    await session.answer()
    await session.stream_file("centralita/welcome")
    data = await session.get_data("centralita/enter-phone-number", 5000, 6)
    if data.digits:
        await session.say_digits(data.digits)
    await session.set_variable("CENTRALITA_ROUTE", f"queue:q{data.digits or 'none'}")


@registry.flow("broken")
async def broken_flow(session: AgiSession, context: object) -> None:
    await session.answer()
    raise RuntimeError("a bug in a flow")


@registry.flow("slow")
async def slow_flow(session: AgiSession, context: object) -> None:
    await session.answer()
    await asyncio.sleep(0.3)
    await session.set_variable("CENTRALITA_ROUTE", "queue:late")


@registry.flow("stuck")
async def stuck_flow(session: AgiSession, context: object) -> None:
    await session.answer()
    await asyncio.Event().wait()  # never set: only the shutdown ends this call
    await session.set_variable("CENTRALITA_ROUTE", "queue:never")


async def flow_running(srv: AgiServer) -> None:
    """Wait until a call's flow has started (bounded, not a time limit)."""
    for _ in range(1000):
        if srv.tasks:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no flow started")


@pytest.fixture
async def server() -> AsyncIterator[AgiServer]:
    srv = AgiServer(
        registry,
        port=0,
        allowed_peers=["127.0.0.1/32"],
        fallback_route="queue:support-en",
        limits=ServerLimits(header_timeout_s=0.5, reply_timeout_s=5.0, shutdown_grace_s=2.0),
    )
    await srv.start()
    yield srv
    await srv.stop()


async def test_a_call_runs_its_flow(server: AgiServer) -> None:
    result = await place_call("127.0.0.1", server.port, Caller(script="echo", keys=["123#"]))
    assert result.heard == ["centralita/welcome", "centralita/enter-phone-number", "digits:123"]
    assert result.route == "queue:q123"
    assert result.closed_by_server and result.error is None


async def test_script_query_is_routed_by_name(server: AgiServer) -> None:
    result = await place_call("127.0.0.1", server.port, Caller(script="echo?lang=fr", keys=[""]))
    assert result.route == "queue:qnone"


async def test_unknown_flow_closes_without_routing(server: AgiServer) -> None:
    result = await place_call("127.0.0.1", server.port, Caller(script="nosuchflow"))
    assert result.commands == []
    assert result.closed_by_server
    assert result.route is None  # the dialplan's CENTRALITA_FALLBACK takes over


async def test_a_failing_flow_sends_the_call_to_the_fallback(
    server: AgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    result = await place_call("127.0.0.1", server.port, Caller(script="broken"))
    assert result.route == "queue:support-en"
    assert "a bug in a flow" in caplog.text


async def test_get_data_answered_minus_one_is_a_timeout_and_a_warning(
    server: AgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing prompt and a hangup both answer GET DATA with `200 result=-1`
    (docs/asterisk-protocol.md#get-data): the flow sees no digits, timed out, and the call's
    log names the prompt."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\nagi_network_script: echo\nagi_uniqueid: 1795.7\n\n")
    for expected in (b"ANSWER\n", b'STREAM FILE centralita/welcome ""\n'):
        assert await reader.readline() == expected
        writer.write(b"200 result=0\n")
    assert await reader.readline() == b"GET DATA centralita/enter-phone-number 5000 6\n"
    writer.write(b"200 result=-1\n")
    assert await reader.readline() == b"SET VARIABLE CENTRALITA_ROUTE queue:qnone\n"
    writer.write(b"200 result=1\n")
    assert await reader.read() == b""
    writer.close()
    (warning,) = [r for r in caplog.records if "returned -1" in r.getMessage()]
    assert warning.getMessage() == (
        "[1795.7 ] GET DATA centralita/enter-phone-number returned -1 (missing prompt or hangup)"
    )


@pytest.mark.parametrize("index", range(5))
async def test_hangup_at_every_command(
    server: AgiServer, index: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await place_call(
        "127.0.0.1", server.port, Caller(script="echo", keys=["42#"], hangup_at=index)
    )
    assert result.caller_hung_up
    assert result.closed_by_server
    # The flow stops at the first command after Asterisk said HANGUP.
    assert len(result.commands) <= index + 2
    assert "HANGUP" in result.replies
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_idle_hangup_ends_the_flow(server: AgiServer) -> None:
    # The caller hangs up once the flow has answered and idles (its sleep): a moment set by
    # the ANSWER, not by a clock started at the connection (under load, a 50 ms clock fired
    # before the ANSWER came, and HANGUP was the first reply).
    answered = asyncio.Event()

    def on_command(channel: object, line: str) -> None:
        if line == "ANSWER":
            answered.set()  # the hangup follows the ANSWER's reply, written in this step

    result = await place_call(
        "127.0.0.1",
        server.port,
        Caller(script="slow", hangup_on=answered),
        on_command=on_command,
    )
    assert result.replies[:2] == ["200 result=0", "HANGUP"]
    assert result.route is None and result.closed_by_server


async def test_robust_against_hostile_peers_while_a_call_runs(server: AgiServer) -> None:
    normal = asyncio.create_task(place_call("127.0.0.1", server.port, Caller(script="slow")))

    async def half_headers() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\nagi_network_scr")
        await writer.drain()
        writer.close()

    async def huge_line() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"agi_network: yes\nagi_calleridname: " + b"x" * (1 << 20))
            await writer.drain()
        except ConnectionError:
            pass
        data = await reader.read()
        writer.close()
        return data

    async def outsider() -> bytes:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=("127.0.0.2", 0)
        )
        data = await reader.read()
        writer.close()
        return data

    results = await asyncio.gather(
        *(half_headers() for _ in range(200)), huge_line(), outsider(), return_exceptions=True
    )
    # The server sent nothing to the hostile peers and closed them.
    assert all(r is None for r in results[:200])
    assert results[200] in (b"",) or isinstance(results[200], ConnectionError)
    assert results[201] in (b"",) or isinstance(results[201], ConnectionError)
    done = await normal
    assert done.route == "queue:late"
    after = await place_call("127.0.0.1", server.port, Caller(script="echo", keys=["7#"]))
    assert after.route == "queue:q7"
    assert server.sessions == set()


async def test_a_silent_peer_is_closed_after_the_header_bound(server: AgiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await reader.read() == b""  # closed by the server, not by us
    writer.close()


async def test_no_reply_is_bounded() -> None:
    srv = AgiServer(
        registry, port=0, limits=ServerLimits(reply_timeout_s=0.2), fallback_route="hangup"
    )
    await srv.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"agi_network: yes\nagi_network_script: echo\n\n")
        assert await reader.readline() == b"ANSWER\n"
        # Never answer: the server gives up on its own and closes.
        assert await reader.read() == b""
        writer.close()
    finally:
        await srv.stop()


async def test_session_limit_refuses_extra_calls() -> None:
    srv = AgiServer(registry, port=0, limits=ServerLimits(max_sessions=1))
    await srv.start()
    try:
        first = asyncio.create_task(place_call("127.0.0.1", srv.port, Caller(script="slow")))
        await flow_running(srv)
        second = await place_call("127.0.0.1", srv.port, Caller(script="echo"))
        assert second.commands == [] and second.closed_by_server
        assert (await first).route == "queue:late"
    finally:
        await srv.stop()


async def test_graceful_shutdown_lets_calls_finish() -> None:
    srv = AgiServer(registry, port=0, limits=ServerLimits(shutdown_grace_s=5.0))
    await srv.start()
    call = asyncio.create_task(place_call("127.0.0.1", srv.port, Caller(script="slow")))
    await flow_running(srv)
    await srv.stop()
    assert (await call).route == "queue:late"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", srv.port)


async def test_shutdown_grace_expires() -> None:
    srv = AgiServer(registry, port=0, limits=ServerLimits(shutdown_grace_s=0.05))
    await srv.start()
    call = asyncio.create_task(place_call("127.0.0.1", srv.port, Caller(script="stuck")))
    await flow_running(srv)
    await srv.stop()
    result = await call
    assert result.route is None and result.closed_by_server


async def test_thousands_of_callers_at_once(server: AgiServer) -> None:
    server.limits = ServerLimits(max_sessions=5000, reply_timeout_s=30, header_timeout_s=30)
    callers = [Caller(script="echo", keys=[f"{i % 1000}#"]) for i in range(2000)]
    results = await place_calls("127.0.0.1", server.port, callers, concurrency=1000)
    assert [r.route for r in results] == [f"queue:q{i % 1000}" for i in range(2000)]


@registry.flow("impatient")
async def impatient_flow(session: AgiSession, context: object) -> None:
    """Awaits replies through asyncio helpers, then gives up on one."""
    reply = await asyncio.wait_for(session.command("ANSWER"), 5)
    first, second = await asyncio.gather(asyncio.sleep(0, "x"), session.command("NOOP"))
    await session.set_variable("CENTRALITA_ROUTE", f"queue:{reply.result}{second.result}{first}")
    try:
        await asyncio.wait_for(session.command("WAIT FOR DIGIT", 1000), 0.05)
    except TimeoutError:
        await session.command("NOOP")  # the stream is out of step now: refused


async def _dialog(
    port: int, script: str, steps: list[tuple[bytes, bytes]]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Play Asterisk for `script`: each expected command line is answered with its reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"agi_network: yes\nagi_network_script: {script}\n\n".encode())
    for expected, reply in steps:
        assert await reader.readline() == expected
        writer.write(reply)
    return reader, writer


async def test_replies_can_be_awaited_through_asyncio_helpers(
    server: AgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    steps = [
        (b"ANSWER\n", b"200 result=0\n"),
        (b"NOOP\n", b"200 result=0\n"),
        (b"SET VARIABLE CENTRALITA_ROUTE queue:00x\n", b"200 result=1\n"),
    ]
    reader, writer = await _dialog(server.port, "impatient", steps)
    assert await reader.readline() == b"WAIT FOR DIGIT 1000\n"
    # No answer: wait_for gives up; the next command is refused and the server closes.
    assert await reader.read() == b""
    writer.close()
    assert "did not answer a command in time" in caplog.text


@registry.flow("converting")
async def converting_flow(session: AgiSession, context: object) -> None:
    """Awaits the session's results (not raw replies) directly and through asyncio helpers."""
    played = await asyncio.wait_for(session.stream_file("hello", "12"), 5)
    (value,) = await asyncio.gather(session.get_variable("X"))
    direct = await session.stream_file("again")
    unset = await session.get_variable("Y")
    route = f"{played.digit}-{played.endpos}-{value}-{direct.failed}-{unset}"
    await session.set_variable("CENTRALITA_ROUTE", f"queue:{route}")


async def test_a_method_gives_its_result_however_it_is_awaited(server: AgiServer) -> None:
    """The reply's awaitable converts it: awaited directly, through wait_for (which takes the
    future's result()) and through gather, each gives the method's result."""
    steps = [
        (b"STREAM FILE hello 12\n", b"200 result=49 endpos=8000\n"),
        (b"GET VARIABLE X\n", b"200 result=1 (a value)\n"),
        (b'STREAM FILE again ""\n', b"200 result=-1 endpos=0\n"),
        (b"GET VARIABLE Y\n", b"200 result=0\n"),
        (b'SET VARIABLE CENTRALITA_ROUTE "queue:1-8000-a value-True-None"\n', b"200 result=1\n"),
    ]
    reader, writer = await _dialog(server.port, "converting", steps)
    assert await reader.read() == b""
    writer.close()


# ------------------------------------------------------------------ issue 10, finding 11


async def _idle_connections(port: int, count: int, source: str) -> list[asyncio.StreamWriter]:
    """`count` connections that never send their headers."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writers.append(writer)
    return writers


async def _close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_refused_peers_are_logged_once_not_per_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    srv = AgiServer(registry, port=0, allowed_peers=["127.0.0.2/32"])
    await srv.start()
    try:
        with caplog.at_level(logging.INFO, logger="centralita.agi"):
            for _ in range(300):
                reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
                await reader.read()  # aborted at once
                writer.close()
    finally:
        await srv.stop()
    lines = [r for r in caplog.records if "not in allowed_peers" in r.getMessage()]
    assert len(lines) == 1


async def test_idle_connections_from_one_peer_cannot_fill_the_server() -> None:
    srv = AgiServer(
        registry,
        port=0,
        allowed_peers=["127.0.0.0/8"],
        limits=ServerLimits(max_sessions=100, header_timeout_s=60.0),
    )
    await srv.start()
    try:
        idle = await _idle_connections(srv.port, 150, "127.0.0.1")
        try:
            result = await place_call("127.0.0.1", srv.port, Caller(script="echo", keys=["7#"]))
            assert result.route == "queue:q7"
        finally:
            await _close_all(idle)
    finally:
        await srv.stop()


async def test_one_peer_cannot_take_every_session() -> None:
    srv = AgiServer(
        registry,
        port=0,
        allowed_peers=["127.0.0.0/8"],
        limits=ServerLimits(max_sessions=20, max_sessions_per_peer=10, header_timeout_s=60.0),
    )
    await srv.start()
    try:
        idle = await _idle_connections(srv.port, 30, "127.0.0.2")
        try:
            assert srv.peer_sessions.get("127.0.0.2", 0) <= 10
            result = await place_call("127.0.0.1", srv.port, Caller(script="echo", keys=["8#"]))
            assert result.route == "queue:q8"
        finally:
            await _close_all(idle)
    finally:
        await srv.stop()
