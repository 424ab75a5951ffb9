"""The simulator against real Asterisk: replay each recorded session byte for byte.

asterisk-traces/fastagi-*.txt were recorded by hand on Asterisk 20; agi-fidelity/ holds the
sessions the integration suite records on each Asterisk version (agi_fidelity.py).
"""

from __future__ import annotations

import asyncio

import pytest
from agi_fidelity import (
    BY_NAME,
    MISSING_SOUND,
    SCENARIOS,
    Scenario,
    normalise_replies,
    read_recording,
    recorded_versions,
    recordings,
)
from agi_traces import FASTAGI_TRACES, Transcript, read_transcript

from agi.protocol import AgiConnection, AgiRequest, Hangup, Reply
from agi.testing import Caller, CallResult, SimulatedChannel, place_call, reads_keys

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


# -- sessions recorded by the integration suite on each Asterisk (fixtures/agi-fidelity) ---------


def fidelity_caller(scenario: Scenario, trace: Transcript) -> Caller:
    """The scenario's caller as a simulator script: one entry per command that reads keys."""
    hangup_at = next((i for i, step in enumerate(scenario.steps) if step.hangup), None)
    live = scenario.steps if hangup_at is None else scenario.steps[: hangup_at + 1]
    return Caller(
        script=trace.header("agi_network_script"),
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
        answered=True,  # Answer() runs before AGI() in [centralita-test-agi]
        keys=[step.press for step in live if reads_keys(step.command)],
        keys_per_prompt=True,
        hangup_at=hangup_at,
        missing_sounds=[MISSING_SOUND],
    )


def test_every_scenario_is_recorded_on_each_version() -> None:
    versions = recorded_versions()
    assert versions, "no recordings in fixtures/agi-fidelity"
    assert sorted(recordings()) == sorted(
        (version, scenario.name) for version in versions for scenario in SCENARIOS
    )


@pytest.mark.parametrize(("version", "name"), recordings())
async def test_simulator_answers_like_the_recording(version: str, name: str) -> None:
    scenario = BY_NAME[name]
    trace = read_recording(version, name)
    assert [e.command for e in trace.exchanges] == [s.command for s in scenario.steps]
    seen: dict[str, object] = {}
    server = await replay_server(trace, seen)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await place_call("127.0.0.1", port, fidelity_caller(scenario, trace))
    assert result.error is None
    assert seen["headers"] == trace.headers
    answers = seen["answers"]
    assert isinstance(answers, list)
    recorded = [e.replies for e in trace.exchanges]
    # Byte for byte, but for the sample offset where a key or a hangup stopped a prompt.
    assert normalise_replies(scenario, answers) == normalise_replies(scenario, recorded)
    assert result.closed_by_server
    assert result.caller_hung_up == scenario.hangs_up


@pytest.mark.parametrize(("version", "name"), recordings())
def test_parser_parses_every_recorded_line(version: str, name: str) -> None:
    trace = read_recording(version, name)
    conn = AgiConnection()
    block = "".join(line + "\n" for line in trace.headers) + "\n"
    (request,) = conn.receive_data(block.encode())
    assert isinstance(request, AgiRequest)
    assert request.args == ("first arg", "second")
    for exchange in trace.exchanges:
        events = conn.receive_data("".join(r + "\n" for r in exchange.replies).encode())
        replies = [e for e in events if isinstance(e, Reply)]
        assert [r.text for r in replies] == [exchange.replies[-1]]
        assert sum(isinstance(e, Hangup) for e in events) == exchange.replies.count("HANGUP")


def test_keys_per_prompt_plays_keys_as_asterisk_does() -> None:
    def channel(exact: bool) -> SimulatedChannel:
        caller = Caller(keys=["95", None, "38"], keys_per_prompt=exact, answered=True)
        return SimulatedChannel(caller, CallResult())

    exact = channel(True)
    # 9 is not an escape digit: dropped; 5 stops the prompt (unescaped-key.txt, keys.txt).
    assert exact.handle('STREAM FILE beep "5"') == ["200 result=53 endpos=1760"]
    assert exact.handle('STREAM FILE beep ""') == ["200 result=0 endpos=3520"]  # no entry
    assert exact.handle("WAIT FOR DIGIT 1000") == ["200 result=0"]
    assert exact.handle('SAY DIGITS 12 "3"') == ["200 result=51"]
    assert exact.handle("GET DATA beep 1000 4") == ["200 result=8 (timeout)"]  # typed on
    # The default: a key that is not an escape digit waits for the next listening command.
    default = channel(False)
    assert default.handle('STREAM FILE beep "5"') == ["200 result=0 endpos=3520"]
    assert default.handle("WAIT FOR DIGIT 1000") == ["200 result=57"]
