"""The simulator against real Asterisk: replay each fastagi-*.txt trace byte for byte."""

from __future__ import annotations

import asyncio

import pytest
from agi_traces import FASTAGI_TRACES, Transcript, read_transcript

from agi.protocol import AgiConnection, AgiRequest, Hangup, Reply
from agi.testing import Caller, place_call

# What the recorded callers did (asterisk-traces/README.md), as simulator scripts.
SCRIPTS: dict[str, dict[str, object]] = {
    # pressed `1`, then `4321#`, hung up during WAIT FOR DIGIT (command 21)
    "fastagi-ivr.txt": {
        "keys": ["1", "4321#"],
        "hangup_at": 21,
        "missing_sounds": ["no-such-sound-file"],
        "device_states": {"Local/1001@agents": "NOT_INUSE"},
    },
    # pressed nothing, hung up during the second GET DATA (command 6)
    "fastagi-none.txt": {"keys": [None, None, None], "hangup_at": 6},
    # hung up during the first prompt (command 1)
    "fastagi-early-hangup.txt": {"hangup_at": 1},
}


def caller_for(trace: Transcript, name: str) -> Caller:
    script = trace.header("agi_network_script")
    return Caller(
        script=script,
        args=trace.args,
        server_address=trace.header("agi_request").split("/")[2],
        channel=trace.header("agi_channel"),
        language=trace.header("agi_language"),
        type=trace.header("agi_type"),
        uniqueid=trace.header("agi_uniqueid"),
        version=trace.header("agi_version"),
        callerid=trace.header("agi_callerid"),
        calleridname=trace.header("agi_calleridname"),
        context=trace.header("agi_context"),
        extension=trace.header("agi_extension"),
        priority=int(trace.header("agi_priority")),
        accountcode=trace.header("agi_accountcode"),
        threadid=trace.header("agi_threadid"),
        **SCRIPTS[name],  # type: ignore[arg-type]
    )


async def replay_server(trace: Transcript, seen: dict[str, object]) -> asyncio.Server:
    """A server that sends the trace's commands and records every line it gets back."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers = []
        while (line := await reader.readline()) != b"\n":
            headers.append(line[:-1].decode())
        seen["headers"] = headers
        answers: list[list[str]] = []
        for exchange in trace.exchanges:
            writer.write(exchange.command.encode() + b"\n")
            got = []
            for _ in exchange.replies:
                got.append((await reader.readline())[:-1].decode())
            answers.append(got)
        seen["answers"] = answers
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("name", FASTAGI_TRACES)
async def test_simulator_answers_like_asterisk(name: str) -> None:
    trace = read_transcript(name)
    seen: dict[str, object] = {}
    server = await replay_server(trace, seen)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await place_call("127.0.0.1", port, caller_for(trace, name))
    assert seen["headers"] == trace.headers
    assert seen["answers"] == [e.replies for e in trace.exchanges]
    assert result.closed_by_server
    assert result.caller_hung_up


@pytest.mark.parametrize("name", FASTAGI_TRACES)
def test_parser_parses_every_asterisk_line(name: str) -> None:
    trace = read_transcript(name)
    conn = AgiConnection()
    block = "".join(line + "\n" for line in trace.headers) + "\n"
    (request,) = conn.receive_data(block.encode())
    assert isinstance(request, AgiRequest)
    assert request.network
    assert request.script == "trace"
    assert request.query == (("lang", "en"),)
    assert request.args == ("first arg", "second")
    assert request.uniqueid == trace.header("agi_uniqueid")
    assert request.priority == trace.header("agi_priority")
    assert request.accountcode == ""
    for exchange in trace.exchanges:
        events = conn.receive_data("".join(r + "\n" for r in exchange.replies).encode())
        replies = [e for e in events if isinstance(e, Reply)]
        hangups = [e for e in events if isinstance(e, Hangup)]
        assert len(replies) == 1, exchange
        assert len(hangups) == exchange.replies.count("HANGUP")
        assert replies[0].text == exchange.replies[-1]


def test_parser_reads_each_reply_form() -> None:
    trace = {e.command: e.replies for e in read_transcript("fastagi-ivr.txt").exchanges}
    conn = AgiConnection()
    conn.receive_data(b"agi_network: yes\n\n")

    def reply(command: str) -> Reply:
        (event,) = [
            e
            for e in conn.receive_data("".join(r + "\n" for r in trace[command]).encode())
            if isinstance(e, Reply)
        ]
        return event

    assert reply("GET DATA beep 6000 4") == Reply(200, "4321", None, None, "200 result=4321")
    assert reply("GET VARIABLE CHANNEL(language)").data == "en"
    assert reply('STREAM FILE hello-world "12"').endpos == 11360
    missing = reply('STREAM FILE no-such-sound-file ""')
    assert (missing.result, missing.endpos) == ("-1", 0)
    assert reply("EXEC NoSuchApplication foo").result_int == -2
    assert reply("BOGUS COMMAND here").code == 510
    usage = reply("GET DATA")
    assert usage.code == 520
    assert usage.usage[1] == "Returns the digits received from the channel at the other end."
    assert reply("DATABASE GET cclab nokey").result == "0"
    none = {e.command: e.replies for e in read_transcript("fastagi-none.txt").exchanges}
    (timeout,) = conn.receive_data((none["GET DATA beep 2000 4"][0] + "\n").encode())
    assert isinstance(timeout, Reply)
    assert (timeout.result, timeout.data) == ("", "timeout")
