"""The typed async session a flow talks to: one method per AGI command.

Every command goes through `protocol.encode_command`, waits for exactly one reply (Asterisk
must not be sent a second command while one is running: docs/asterisk-protocol.md#agi-command-lines)
and is bounded by the server's reply timeout. The caller hanging up, whichever way Asterisk says
it (a `HANGUP` line, a `511`, EOF: docs/asterisk-protocol.md#agi-hangup), raises `CallerHangup`,
which the server handles quietly.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from agi.protocol import AgiError, AgiRequest, Reply, encode_command

log = logging.getLogger("centralita.agi")


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every log line of a call with its Uniqueid and channel."""

    def __init__(self, logger: logging.Logger, request: AgiRequest) -> None:
        super().__init__(logger, {"uniqueid": request.uniqueid, "channel": request.channel})
        self._prefix = f"[{request.uniqueid} {request.channel}] "

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs.setdefault("extra", self.extra)
        return self._prefix + str(msg), kwargs


# The line of ANSWER, which takes no argument: encoded once.
_ANSWER = encode_command("ANSWER")


class CallerHangup(AgiError):
    """The caller is gone (HANGUP line, 511 on a dead channel, or the socket closed)."""


class AgiCommandError(AgiError):
    """Asterisk refused a command (510 unknown command, 520 bad usage)."""

    def __init__(self, command: str, reply: Reply) -> None:
        self.command = command
        self.reply = reply
        super().__init__(f"{command.strip()!r} was refused: {reply.text}")


class ReplyTimeout(AgiError):
    """Asterisk did not answer a command within the reply bound."""


class Transport(Protocol):
    """What the session needs from the connection (the server's protocol object)."""

    hung_up: bool

    def send(self, data: bytes) -> Awaitable[Reply]:
        """Write one command line; the awaitable gives its reply, checked by `settle`."""
        ...


def settle(line: bytes, reply: Reply, hung_up: bool) -> Reply:
    """Turn one reply into a result for the flow, or the exception it stands for.

    Once Asterisk has said `HANGUP`, or answers 511 (dead channel,
    docs/asterisk-protocol.md#agi-replies), the flow is over: CallerHangup. 510 and 520 mean we sent
    a bad command: AgiCommandError.
    """
    if reply.code == 200 and not hung_up:
        return reply
    if hung_up or reply.code == 511:
        raise CallerHangup(f"the caller hung up ({line.decode('utf-8', 'replace').strip()})")
    raise AgiCommandError(line.decode("utf-8", "replace"), reply)


@dataclass(frozen=True, slots=True)
class DataResult:
    """What GET DATA gave: the digits (maybe empty) and whether input ended by timeout."""

    digits: str
    timed_out: bool


@dataclass(frozen=True, slots=True)
class StreamResult:
    """STREAM FILE / GET OPTION: the key that interrupted (or None) and the end offset."""

    digit: str | None
    endpos: int
    failed: bool  # the file was missing (result=-1 endpos=0 on a live channel)


def _digit_from_ascii(result: int) -> str | None:
    # STREAM FILE, GET OPTION, WAIT FOR DIGIT, SAY * report the key as its ASCII code
    # (docs/asterisk-protocol.md#agi-commands).
    return chr(result) if result > 0 else None


class AgiSession:
    """One call's FastAGI session, as a flow sees it."""

    __slots__ = ("_finished", "_log", "_transport", "context", "request")

    def __init__(
        self, request: AgiRequest, transport: Transport, context: object | None = None
    ) -> None:
        self.request = request
        self._transport = transport
        self.context = context
        self._finished = False
        self._log: CallLog | None = None

    @property
    def log(self) -> CallLog:
        """This call's logger: every line carries the Uniqueid and the channel."""
        if self._log is None:
            self._log = CallLog(log, self.request)
        return self._log

    @property
    def uniqueid(self) -> str:
        return self.request.uniqueid

    @property
    def ended(self) -> bool:
        """True once the caller hung up or the flow hung up the call."""
        return self._finished or self._transport.hung_up

    def command(self, command: str, *args: str | int) -> Awaitable[Reply]:
        """Send one command; awaiting gives its 200 reply (see `settle` for the errors).

        `command` is one of our literals (`"STREAM FILE"`); every argument is encoded by
        `protocol.encode_command`, the one encoder for AGI.
        """
        return self._send(encode_command(command, *args))

    def _send(self, line: bytes) -> Awaitable[Reply]:
        """Send one encoded line (the session's methods call it with their line directly)."""
        if self._finished or self._transport.hung_up:
            raise CallerHangup("the caller has hung up")
        return self._transport.send(line)

    # -- channel -----------------------------------------------------------------------------

    async def answer(self) -> None:
        """Answer the channel (a no-op when it is already up)."""
        await self._send(_ANSWER)

    async def hangup(self, channel: str | None = None) -> None:
        """Hang up this channel (or another one by name)."""
        if channel is None:
            if not self.ended:
                self._finished = True
                # Asterisk answers `200 result=1` and then `HANGUP`
                # (docs/asterisk-protocol.md#agi-hangup); either way we are done.
                with contextlib.suppress(CallerHangup):
                    await self._transport.send(encode_command("HANGUP"))
        else:
            await self._send(encode_command("HANGUP", channel))

    async def channel_status(self, channel: str | None = None) -> int:
        """The `ast_channel_state` number (6 = Up); -1 for an unknown channel."""
        reply = await (
            self._send(encode_command("CHANNEL STATUS", channel))
            if channel
            else self._send(encode_command("CHANNEL STATUS"))
        )
        return reply.result_int

    # -- audio and keys ----------------------------------------------------------------------

    async def stream_file(self, filename: str, escape_digits: str = "") -> StreamResult:
        """Play a prompt; a key in `escape_digits` interrupts it."""
        reply = await self._send(encode_command("STREAM FILE", filename, escape_digits))
        code = reply.result_int
        endpos = reply.endpos or 0
        return StreamResult(_digit_from_ascii(code), endpos, failed=code < 0)

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> DataResult:
        """Play a prompt and read up to `max_digits` keys; `#` ends the entry
        (docs/asterisk-protocol.md#get-data)."""
        reply = await self._send(encode_command("GET DATA", filename, timeout_ms, max_digits))
        if reply.result == "-1" and reply.data is None:
            # Hangup or a missing prompt (indistinguishable on the wire,
            # docs/asterisk-protocol.md#get-data). The next command tells: a hangup makes it fail; a
            # missing prompt is a timeout for us.
            self.log.warning("GET DATA %s returned -1 (missing prompt or hangup)", filename)
            return DataResult("", timed_out=True)
        return DataResult(reply.result, timed_out=reply.data == "timeout")

    async def get_option(
        self, filename: str, escape_digits: str, timeout_ms: int | None = None
    ) -> StreamResult:
        """Play a prompt, then wait for one key; keys outside `escape_digits` count as none."""
        args: tuple[str | int, ...] = (filename, escape_digits)
        if timeout_ms is not None:
            args += (timeout_ms,)
        reply = await self._send(encode_command("GET OPTION", *args))
        code = reply.result_int
        return StreamResult(_digit_from_ascii(code), reply.endpos or 0, failed=code < 0)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait for one key; None on timeout. `-1` means the caller hung up."""
        reply = await self._send(encode_command("WAIT FOR DIGIT", timeout_ms))
        code = reply.result_int
        if code < 0:
            self._finished = True
            raise CallerHangup("caller hung up while waiting for a digit")
        return _digit_from_ascii(code)

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        """Say a digit string one digit at a time (SAY DIGITS needs an integer:
        docs/asterisk-protocol.md#agi-commands)."""
        if not digits.isdigit():
            raise ValueError(f"SAY DIGITS takes digits only, not {digits!r}")
        reply = await self._send(encode_command("SAY DIGITS", digits, escape_digits))
        return _digit_from_ascii(reply.result_int)

    async def say_number(self, number: int, escape_digits: str = "") -> str | None:
        """Say a number as a number ("forty-two") in the channel's language."""
        reply = await self.command("SAY NUMBER", str(int(number)), escape_digits)
        return _digit_from_ascii(reply.result_int)

    # -- variables and dialplan --------------------------------------------------------------

    async def get_variable(self, name: str) -> str | None:
        """A channel variable or function (`CHANNEL(language)`); None when unset."""
        reply = await self._send(encode_command("GET VARIABLE", name))
        return reply.data if reply.result == "1" else None

    async def get_full_variable(self, expression: str, channel: str | None = None) -> str:
        """Evaluate a `${...}` expression (an unset variable gives "":
        docs/asterisk-protocol.md#agi-commands)."""
        args = (expression, channel) if channel else (expression,)
        reply = await self._send(encode_command("GET FULL VARIABLE", *args))
        return reply.data or "" if reply.result == "1" else ""

    async def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable or write a function (`CHANNEL(language)`)."""
        await self._send(encode_command("SET VARIABLE", name, value))

    async def exec(self, application: str, data: str = "") -> int:
        """Run a dialplan application; -2 when it does not exist."""
        reply = await self._send(encode_command("EXEC", application, data))
        return reply.result_int

    async def set_context(self, context: str) -> None:
        await self._send(encode_command("SET CONTEXT", context))

    async def set_extension(self, extension: str) -> None:
        await self._send(encode_command("SET EXTENSION", extension))

    async def set_priority(self, priority: int | str) -> None:
        await self.command("SET PRIORITY", str(priority))

    async def database_get(self, family: str, key: str) -> str | None:
        reply = await self._send(encode_command("DATABASE GET", family, key))
        return reply.data if reply.result == "1" else None

    async def database_put(self, family: str, key: str, value: str) -> bool:
        reply = await self._send(encode_command("DATABASE PUT", family, key, value))
        return reply.result == "1"

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._send(encode_command("VERBOSE", message, level))
