"""The Asterisk simulator: a scripted caller that speaks FastAGI exactly as Asterisk 20 does.

Use it to test your own flows without an Asterisk::

    from agi.testing import Caller, place_call

    result = await place_call("127.0.0.1", 4573, Caller(script="language", keys=["2"]))
    assert result.heard[0] == "centralita/welcome"
    assert result.variables["CENTRALITA_ROUTE"] == "queue:support-en"

A `Caller` connects to the FastAGI port, sends the header block in Asterisk's order
(docs/asterisk-protocol.md#agi-headers) and then answers every command as a real channel would
(docs/asterisk-protocol.md#agi-commands): digit strings for GET DATA, ASCII codes for
keys, `endpos=`, 510/511/520 with Asterisk's exact texts. Its fidelity is tested against the
recordings in `asterisk-traces/` and `agi-fidelity/` (sessions recorded on Asterisk 20 and 22 by the
integration suite).

Keys: `keys` is a list of entries, one per time the flow listens. An entry is what the caller
types at that prompt (`"4321#"`), or `None`/`""` for silence (the command times out). A prompt
played with escape digits (STREAM FILE, GET OPTION, SAY) takes the first key of the next entry
only if it is one of its escape digits; the rest of that entry stays typed ahead for the next
listening command. GET DATA and WAIT FOR DIGIT always take an entry.

That is convenient (a wrong key "typed during the menu" reaches the WAIT FOR DIGIT after it),
but a real Asterisk drops a key that is not an escape digit of the prompt playing
(agi-fidelity/*/unescaped-key.txt). `keys_per_prompt=True` plays it exactly: every command
that reads keys (`reads_keys`: GET DATA, WAIT FOR DIGIT, GET OPTION, and STREAM FILE or SAY
with escape digits) takes an entry of its own, pressed while it runs; during a prompt, keys
that are not escape digits are dropped, the first escape digit interrupts it, and what
follows that digit stays typed ahead.

Hangup: `hangup_at=N` hangs up during command N (0-based). A prompt or listening command then
answers as interrupted (`200 result=-1`); any other command finds the channel already gone.
Either way Asterisk's `HANGUP` line follows, then dead-channel answers: `511` for commands not
allowed on a dead channel (docs/asterisk-protocol.md#agi-replies), `200` for the others.
`hangup_after_s` hangs up on a clock.

Time is simulated: timeouts answer at once, so thousands of calls run in seconds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable

from agi.command_line import parse_args, reads_keys
from agi.simulator import Caller, CallResult, SimulatedChannel

__all__ = [
    "CallResult",
    "Caller",
    "SimulatedChannel",
    "header_lines",
    "parse_args",
    "place_call",
    "place_calls",
    "reads_keys",
]

_ids = itertools.count(1)


def header_lines(caller: Caller, server_address: str) -> list[str]:
    """The header block Asterisk sends, in its order (res_agi.c launch_netscript and setup_env;
    docs/asterisk-protocol.md#agi-headers)."""
    uniqueid = caller.uniqueid or f"1795301017.{next(_ids)}"
    channel = caller.channel or f"{caller.type}/1099-{next(_ids):08x}"
    caller.uniqueid, caller.channel = uniqueid, channel
    lines = ["agi_network: yes"]
    if caller.script:
        lines.append(f"agi_network_script: {caller.script}")
    address = caller.server_address or server_address
    lines += [
        f"agi_request: agi://{address}/{caller.script}"
        if caller.script
        else f"agi_request: agi://{address}",
        f"agi_channel: {channel}",
        f"agi_language: {caller.language}",
        f"agi_type: {caller.type}",
        f"agi_uniqueid: {uniqueid}",
        f"agi_version: {caller.version}",
        f"agi_callerid: {caller.callerid or 'unknown'}",
        f"agi_calleridname: {caller.calleridname or 'unknown'}",
        f"agi_callingpres: {caller.callingpres}",
        f"agi_callingani2: {caller.callingani2}",
        f"agi_callington: {caller.callington}",
        f"agi_callingtns: {caller.callingtns}",
        f"agi_dnid: {caller.dnid}",
        f"agi_rdnis: {caller.rdnis}",
        f"agi_context: {caller.context}",
        f"agi_extension: {caller.extension}",
        f"agi_priority: {caller.priority}",
        "agi_enhanced: 0.0",
        f"agi_accountcode: {caller.accountcode}",
        f"agi_threadid: {caller.threadid}",
    ]
    lines += [f"agi_arg_{i}: {arg}" for i, arg in enumerate(caller.args, start=1)]
    return lines


async def place_call(
    host: str,
    port: int,
    caller: Caller,
    *,
    on_command: Callable[[SimulatedChannel, str], None] | None = None,
) -> CallResult:
    """Connect to a FastAGI server as Asterisk would and play `caller`'s script to the end."""
    result = CallResult()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        result.error = f"connect failed: {exc}"
        return result
    try:
        await asyncio.wait_for(
            _converse(reader, writer, caller, result, on_command), caller.timeout_s
        )
    except TimeoutError:
        result.error = f"the call did not end within {caller.timeout_s} s"
    except (ConnectionError, OSError) as exc:
        result.error = f"connection broke: {exc}"
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return result


async def _converse(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    caller: Caller,
    result: CallResult,
    on_command: Callable[[SimulatedChannel, str], None] | None,
) -> None:
    result.headers = header_lines(caller, _address(writer))
    writer.write(("\n".join(result.headers) + "\n\n").encode("utf-8"))
    channel = SimulatedChannel(caller, result)
    clock: asyncio.TimerHandle | None = None

    def hang_up_now() -> None:
        # Idle hangup: Asterisk writes HANGUP at once (res_agi.c:4362-4375).
        if not channel.dead:
            channel.hang_up()
            for line in channel.take_hangup_notice():
                result.replies.append(line)
                result.transcript.append(("A", line))
                writer.write(line.encode() + b"\n")

    if caller.hangup_after_s is not None:
        clock = asyncio.get_running_loop().call_later(caller.hangup_after_s, hang_up_now)
    watcher: asyncio.Task[None] | None = None
    if caller.hangup_on is not None:
        event = caller.hangup_on

        async def hang_up_on_event() -> None:
            await event.wait()
            hang_up_now()

        watcher = asyncio.get_running_loop().create_task(hang_up_on_event())
    try:
        while True:
            raw = await reader.readline()
            if not raw.endswith(b"\n"):
                result.closed_by_server = True
                return
            # Only `\n` is stripped, never `\r` (res_agi.c:4447-4451).
            line = raw[:-1].decode("utf-8", "surrogateescape")
            result.commands.append(line)
            result.transcript.append(("S", line))
            if on_command is not None:
                on_command(channel, line)
            replies = channel.handle(line)
            result.replies.extend(replies)
            result.transcript.extend(("A", r) for r in replies)
            writer.write(("\n".join(replies) + "\n").encode("utf-8", "surrogateescape"))
    finally:
        if clock is not None:
            clock.cancel()
        if watcher is not None:
            watcher.cancel()


def _address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if not peer:
        return "127.0.0.1"
    host, port = peer[0], peer[1]
    return f"{host}:{port}" if port != 4573 else str(host)


async def place_calls(
    host: str, port: int, callers: Iterable[Caller], *, concurrency: int = 1000
) -> list[CallResult]:
    """Run many callers, at most `concurrency` at once; results in the callers' order."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(caller: Caller) -> CallResult:
        async with semaphore:
            return await place_call(host, port, caller)

    return list(await asyncio.gather(*(one(c) for c in callers)))


class CountingTransport:
    """A transport for driving the server's protocol in-process: what it writes is counted
    and dropped, closing is noted, and the peer is loopback (bench/agi_inproc.py,
    tests/test_agi_cores.py)."""

    __slots__ = ("closed", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default
