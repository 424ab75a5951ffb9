"""The typed async session a flow talks to: one method per AGI command.

Every command goes through `protocol.encode_command`, waits for exactly one reply (Asterisk
must not be sent a second command while one is running: docs/asterisk-protocol.md#agi-command-lines)
and is bounded by the server's reply timeout. The caller hanging up, whichever way Asterisk says
it (a `HANGUP` line, a `511`, EOF: docs/asterisk-protocol.md#agi-hangup), raises `CallerHangup`,
which the server handles quietly.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
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

    def send(self, data: bytes, convert: Callable[[Reply], Any] | None = None) -> Awaitable[Any]:
        """Write one command line; the awaitable gives its reply, checked by `settle`, and
        `convert`ed when a function is given (the awaitable then gives what it returns)."""
        ...

    def command(
        self, convert: Callable[[Reply], Any] | None, name: str, *args: str | int
    ) -> Awaitable[Any]:
        """`send` the line of `name` and `args`, encoded by `protocol.encode_command`
        (CallerHangup once Asterisk has said HANGUP)."""
        ...


def _refuse(convert: object, name: str, *args: object) -> Awaitable[Any]:
    """A finished session's `_command`: no command may follow."""
    raise CallerHangup("the caller has hung up")


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


@dataclass(slots=True)
class DataResult:
    """What GET DATA gave: the digits (maybe empty) and whether input ended by timeout."""

    digits: str
    timed_out: bool


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# twice the cost of the result's whole making, once for nearly every command.
@dataclass(slots=True)
class StreamResult:
    """STREAM FILE / GET OPTION: the key that interrupted (or None) and the end offset."""

    digit: str | None
    endpos: int
    failed: bool  # the file was missing (result=-1 endpos=0 on a live channel)


def _digit_from_ascii(result: int) -> str | None:
    # STREAM FILE, GET OPTION, WAIT FOR DIGIT, SAY * report the key as its ASCII code
    # (docs/asterisk-protocol.md#agi-commands).
    return chr(result) if result > 0 else None


# What the session's methods give for a 200 reply, applied by the reply's awaitable itself
# (`ReplyWaiter.rearm`): a method that only sends and converts is a plain function returning
# that awaitable, without a coroutine of its own to make, enter and leave for every command.
# Pure functions of the reply: asyncio.wait_for may ask for the result twice.


def _stream_result(reply: Reply) -> StreamResult:
    code = reply.result_int
    # _digit_from_ascii(code), inlined here and below: a frame less per command.
    return StreamResult(chr(code) if code > 0 else None, reply.endpos or 0, code < 0)


def _key_pressed(reply: Reply) -> str | None:
    code = reply.result_int
    return chr(code) if code > 0 else None


def _entered_digits(request: AgiRequest, filename: str, reply: Reply) -> DataResult:
    """GET DATA's result (`AgiSession.get_data`, with the call's request and the prompt)."""
    if reply.result == "-1" and reply.data is None:
        # Hangup or a missing prompt (indistinguishable on the wire,
        # docs/asterisk-protocol.md#get-data). The next command tells: a hangup makes it fail; a
        # missing prompt is a timeout for us.
        warning = "GET DATA %s returned -1 (missing prompt or hangup)"
        CallLog(log, request).warning(warning, filename)
        return DataResult("", timed_out=True)
    return DataResult(reply.result, timed_out=reply.data == "timeout")


def _nothing(reply: Reply) -> None:
    return None


def _result_int(reply: Reply) -> int:
    return reply.result_int


def _value_if_set(reply: Reply) -> str | None:
    # GET VARIABLE and DATABASE GET: `200 result=1 (value)`, or result=0 when unset.
    return reply.data if reply.result == "1" else None


def _full_value(reply: Reply) -> str:
    return reply.data or "" if reply.result == "1" else ""


def _succeeded(reply: Reply) -> bool:
    return reply.result == "1"


class AgiSession:
    """One call's FastAGI session, as a flow sees it."""

    __slots__ = ("_command", "_finished", "_log", "_transport", "context", "request")

    def __init__(
        self, request: AgiRequest, transport: Transport, context: object | None = None
    ) -> None:
        self.request = request
        self._transport = transport
        self.context = context
        self._finished = False
        self._log: CallLog | None = None
        # What every method sends through: `_command(convert, name, *args)` encodes and
        # writes (the connection's core, agi/cores.py), until the session is finished.
        self._command: Callable[..., Awaitable[Any]] = transport.command

    def _finish(self) -> None:
        """No command may follow (the flow hung up, or the caller did)."""
        self._finished = True
        self._command = _refuse

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
        return self._command(None, command, *args)

    # -- channel -----------------------------------------------------------------------------

    def answer(self) -> Awaitable[None]:
        """Answer the channel (a no-op when it is already up)."""
        return self._command(_nothing, "ANSWER")

    async def hangup(self, channel: str | None = None) -> None:
        """Hang up this channel (or another one by name)."""
        if channel is None:
            if not self.ended:
                self._finish()
                # Asterisk answers `200 result=1` and then `HANGUP`
                # (docs/asterisk-protocol.md#agi-hangup); either way we are done.
                with contextlib.suppress(CallerHangup):
                    await self._transport.send(encode_command("HANGUP"))
        else:
            await self._command(None, "HANGUP", channel)

    async def channel_status(self, channel: str | None = None) -> int:
        """The `ast_channel_state` number (6 = Up); -1 for an unknown channel."""
        reply: Reply = await (
            self._command(None, "CHANNEL STATUS", channel)
            if channel
            else self._command(None, "CHANNEL STATUS")
        )
        return reply.result_int

    # -- audio and keys ----------------------------------------------------------------------

    def stream_file(self, filename: str, escape_digits: str = "") -> Awaitable[StreamResult]:
        """Play a prompt; a key in `escape_digits` interrupts it."""
        return self._command(_stream_result, "STREAM FILE", filename, escape_digits)

    def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> Awaitable[DataResult]:
        """Play a prompt and read up to `max_digits` keys; `#` ends the entry
        (docs/asterisk-protocol.md#get-data)."""
        # The request, not the session, goes with the conversion: the reply waiter keeps its
        # conversion, and the session refers to the connection, which refers to the waiter.
        convert = functools.partial(_entered_digits, self.request, filename)
        return self._command(convert, "GET DATA", filename, timeout_ms, max_digits)

    def get_option(
        self, filename: str, escape_digits: str, timeout_ms: int | None = None
    ) -> Awaitable[StreamResult]:
        """Play a prompt, then wait for one key; keys outside `escape_digits` count as none."""
        args: tuple[str | int, ...] = (filename, escape_digits)
        if timeout_ms is not None:
            args += (timeout_ms,)
        return self._command(_stream_result, "GET OPTION", *args)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait for one key; None on timeout. `-1` means the caller hung up."""
        reply: Reply = await self._command(None, "WAIT FOR DIGIT", timeout_ms)
        code = reply.result_int
        if code < 0:
            self._finish()
            raise CallerHangup("caller hung up while waiting for a digit")
        return _digit_from_ascii(code)

    def say_digits(self, digits: str, escape_digits: str = "") -> Awaitable[str | None]:
        """Say a digit string one digit at a time (SAY DIGITS needs an integer:
        docs/asterisk-protocol.md#agi-commands)."""
        if not digits.isdigit():
            raise ValueError(f"SAY DIGITS takes digits only, not {digits!r}")
        return self._command(_key_pressed, "SAY DIGITS", digits, escape_digits)

    def say_number(self, number: int, escape_digits: str = "") -> Awaitable[str | None]:
        """Say a number as a number ("forty-two") in the channel's language."""
        return self._command(_key_pressed, "SAY NUMBER", str(int(number)), escape_digits)

    # -- variables and dialplan --------------------------------------------------------------

    def get_variable(self, name: str) -> Awaitable[str | None]:
        """A channel variable or function (`CHANNEL(language)`); None when unset."""
        return self._command(_value_if_set, "GET VARIABLE", name)

    def get_full_variable(self, expression: str, channel: str | None = None) -> Awaitable[str]:
        """Evaluate a `${...}` expression (an unset variable gives "":
        docs/asterisk-protocol.md#agi-commands)."""
        args = (expression, channel) if channel else (expression,)
        return self._command(_full_value, "GET FULL VARIABLE", *args)

    def set_variable(self, name: str, value: str) -> Awaitable[None]:
        """Set a channel variable or write a function (`CHANNEL(language)`)."""
        return self._command(_nothing, "SET VARIABLE", name, value)

    def exec(self, application: str, data: str = "") -> Awaitable[int]:
        """Run a dialplan application; -2 when it does not exist."""
        return self._command(_result_int, "EXEC", application, data)

    def set_context(self, context: str) -> Awaitable[None]:
        return self._command(_nothing, "SET CONTEXT", context)

    def set_extension(self, extension: str) -> Awaitable[None]:
        return self._command(_nothing, "SET EXTENSION", extension)

    def set_priority(self, priority: int | str) -> Awaitable[None]:
        return self._command(_nothing, "SET PRIORITY", str(priority))

    def database_get(self, family: str, key: str) -> Awaitable[str | None]:
        return self._command(_value_if_set, "DATABASE GET", family, key)

    def database_put(self, family: str, key: str, value: str) -> Awaitable[bool]:
        return self._command(_succeeded, "DATABASE PUT", family, key, value)

    def verbose(self, message: str, level: int = 1) -> Awaitable[None]:
        return self._command(_nothing, "VERBOSE", message, level)
