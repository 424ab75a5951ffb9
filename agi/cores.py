"""The cores of the FastAGI command path: what runs once for every command, in one place.

Three base classes hold the fields of the reply waiter, the flow driver and the connection,
and the few methods a command goes through: the waiter's await, the driver's `resume`, and
the connection's `get_buffer`, `buffer_updated`, `send` and `command` (what each session
method calls: encode, then send). The driver's core also holds what its task runs once per
call: its construction, its await, and the future protocol the task uses on it
(`add_done_callback`, `result`, `get_loop` in C), up to waking the task at the flow's end
(`_ended`, `_complete`). A fourth, `CommandTimes`, counts each command's round
trip into the metrics' buckets. The rest of each class is written once, in agi/driver.py and
agi/server.py, on top of whichever core runs:

- `agi._speedups` (agi/_speedups.c), the same four in C, built by setup.py when the machine
  has a C compiler. Python's interpreter was most of a command's cost (`perf`: 43% in
  `_PyEval_EvalFrameDefault`, spread over about ten short Python frames per command), and the C
  cores leave the flow and the session method it calls as the only Python a command runs;
- the pure-Python twins below, when the extension is not built or CENTRALITA_NO_SPEEDUPS=1.

Both take the same paths and hand every uncommon case to the same Python methods
(`data_received`, `ReplyWaiter.set_result` and `result`, `FlowDriver._yielded` and `cancel`),
so the C cores parse nothing a peer sends: a read is resumed in C only when it is exactly one
reply of `agi.protocol._SIMPLE_REPLIES`, found by a dict lookup of the whole read.
`tests/agi_loops` runs on both (`make test` runs them again with CENTRALITA_NO_SPEEDUPS=1).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from asyncio.tasks import _enter_task, _leave_task
from bisect import bisect_left
from collections.abc import Callable, Coroutine, Generator, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from agi import speedups
from agi.protocol import _ENCODED, _SIMPLE_REPLIES, AgiConnection, Reply, encode_command
from agi.session import CallerHangup, ReplyTimeout

# The C cores resume a flow from a table reply without looking at its code.
assert all(reply.code == 200 for reply in _SIMPLE_REPLIES.values())


class PyCommandTimes:
    """Commands' round trips, counted into histogram buckets as each reply arrives: the
    server's (agi/server.py), read by the metrics with `take`. Not a list of the times: one
    count per command is all a histogram keeps, and counting costs no object per command."""

    __slots__ = ("_counts", "_sum", "bounds")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(map(float, bounds))
        if len(self.bounds) > 32:
            raise ValueError("at most 32 bounds")
        if any(b <= a for a, b in pairwise(self.bounds)):
            raise ValueError("the bounds must be increasing")
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self._sum = 0.0

    def add(self, seconds: float) -> None:
        """Count one round trip, into the first bucket whose bound is >= it (`le`)."""
        self._counts[bisect_left(self.bounds, seconds)] += 1
        self._sum += seconds

    def take(self) -> tuple[list[int], float]:
        """The counts per bucket and the sum since the last take, and start again from zero."""
        counts, total = self._counts, self._sum
        self._counts = [0] * len(counts)
        self._sum = 0.0
        return counts, total


class PyWaiterCore:
    """The reply waiter's fields, its construction and its await (agi/driver.py
    ReplyWaiter)."""

    __slots__ = (
        "_asyncio_future_blocking",
        "_callback",
        "_context",
        "_convert",
        "_driver",
        "_exception",
        "_extra",
        "_line",
        "_loop",
        "_result",
        "_state",
    )
    _loop: asyncio.AbstractEventLoop
    _callback: Callable[[Any], object] | None
    _context: contextvars.Context | None
    _extra: list[tuple[Callable[[Any], object], contextvars.Context | None]] | None
    _driver: Any  # the FlowDriver resuming the flow from this reply, or None
    _line: bytes
    _convert: Callable[[Reply], Any] | None
    _result: Reply | None
    _exception: BaseException | None
    _state: int  # 0 pending, 1 done, 2 cancelled
    _asyncio_future_blocking: bool

    def __init__(self, loop: asyncio.AbstractEventLoop, line: bytes = b"") -> None:
        self._loop = loop
        self._line = line
        self._callback = None
        self._context = None
        self._extra = None
        # The flow's driver while the flow awaits this reply directly (agi/driver.py): the
        # reply then resumes the flow through it, with no task step.
        self._driver = None
        self._convert = None
        self._state = 0
        self._result = None
        self._exception = None
        self._asyncio_future_blocking = False

    def result(self) -> Any:
        raise NotImplementedError  # ReplyWaiter's

    def __await__(self) -> Generator[Any, None, Any]:
        if not self._state:
            self._asyncio_future_blocking = True
            yield self
        result = self._result
        if result is None:
            return self.result()  # raises what the reply meant
        convert = self._convert
        if convert is None:
            return result
        return convert(result)

    __iter__ = __await__


class PyDriverCore:
    """The flow driver's fields, its await, its future protocol (for the task that awaits it)
    and `resume` (agi/driver.py FlowDriver, which explains the driver)."""

    __slots__ = (
        "_asyncio_future_blocking",
        "_callback",
        "_context",
        "_coro",
        "_loop",
        "_outcome",
        "_proxied",
        "_state",
        "_task",
        "_throw",
        "_waiter",
    )
    _coro: Any  # the flow's coroutine
    _waiter: Any  # the session's ReplyWaiter
    _loop: asyncio.AbstractEventLoop
    _task: asyncio.Task[Any]
    _callback: Callable[[Any], object] | None  # the task's wake-up, while it waits on us
    _context: contextvars.Context | None
    _outcome: BaseException | None  # how the flow ended while driven here
    _proxied: Any  # what else the flow awaits while the task waits on the driver
    _throw: BaseException | None  # to throw into the flow from the task
    _state: int  # 0 pending, 1 done, 2 cancelled
    _asyncio_future_blocking: bool

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        waiter: Any,
        loop: asyncio.AbstractEventLoop,
        task: asyncio.Task[Any] | None = None,
    ) -> None:
        """`task`: the flow's, the one that awaits the driver (the current task when None)."""
        self._coro = coro
        self._waiter = waiter
        self._loop = loop
        if task is None:
            task = asyncio.current_task(loop)
            if task is None:
                raise RuntimeError("a FlowDriver is made and awaited inside the flow's task")
        self._task = task
        self._callback = None
        self._context = None
        self._outcome = None
        self._proxied = None
        self._throw = None
        self._state = 0
        self._asyncio_future_blocking = False

    def _yielded(self, yielded: object) -> None:
        raise NotImplementedError  # FlowDriver's

    # -- run by the task ---------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        coro, waiter = self._coro, self._waiter
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is None:
                    yielded = coro.send(None)
                else:
                    yielded, thrown = coro.throw(thrown), None
            except StopIteration as stop:
                return stop.value
            if yielded is not waiter or waiter._state:
                # Anything but a pending reply: the task waits on it as usual.
                try:
                    yield yielded
                except BaseException as exc:  # the task throws what the awaited gave
                    thrown = exc
                continue
            # The flow waits for a reply: from now on, replies resume it directly.
            waiter._asyncio_future_blocking = False
            waiter._driver = self
            self._state = 0
            self._asyncio_future_blocking = True
            try:
                yield self
            except BaseException as exc:  # cancelled (see cancel): into the flow
                thrown = exc
                continue
            if self._throw is not None:
                thrown, self._throw = self._throw, None
                continue
            outcome, self._outcome = self._outcome, None
            if isinstance(outcome, StopIteration):
                return outcome.value
            if outcome is not None:
                try:
                    raise outcome
                finally:
                    # The traceback holds this frame: without the local, the exception and
                    # the frame make no reference cycle (a hangup's objects are freed at once).
                    del outcome

    # -- the future protocol, for the task waiting on the driver ----------------------------

    def add_done_callback(
        self, callback: Callable[[Any], object], *, context: contextvars.Context | None = None
    ) -> None:
        if self._state:
            self._loop.call_soon(callback, self, context=context)
            return
        self._callback = callback
        if context is None:
            context = contextvars.copy_context()
        self._context = context

    def result(self) -> None:
        if self._state == 2:
            raise asyncio.CancelledError
        if not self._state:
            raise asyncio.InvalidStateError("the flow is still running")

    def _complete(self, state: int) -> None:
        """Done (1) or cancelled (2): wake the task waiting on the driver."""
        self._state = state
        callback, context = self._callback, self._context
        self._callback = self._context = None
        if callback is None:
            return
        if state == 2:  # a cancel comes from inside some task: wake it on the next turn
            self._loop.call_soon(callback, self, context=context)
        elif context is None:
            callback(self)
        else:
            context.run(callback, self)

    # -- run outside any task ----------------------------------------------------------------

    def _ended(self, outcome: BaseException) -> None:
        """The flow ended (`outcome` a StopIteration) or raised, while driven here."""
        self._outcome = outcome
        self._complete(1)

    def resume(self, _done: object = None) -> None:
        """Send into the flow (its reply, or what else it awaited, is ready)."""
        if self._state:
            return  # cancelled meanwhile: the task throws the cancellation into the flow
        self._proxied = None
        loop, task = self._loop, self._task
        try:
            _enter_task(loop, task)
        except RuntimeError:  # called from inside some task: resume on the next turn
            loop.call_soon(self.resume)
            return
        try:
            yielded = self._context.run(self._coro.send, None)  # type: ignore[union-attr]
        except BaseException as exc:  # the flow ended (StopIteration) or raised
            _leave_task(loop, task)
            self._ended(exc)
            return
        _leave_task(loop, task)
        waiter = self._waiter
        if yielded is waiter and not waiter._state:  # the next command: nearly always
            waiter._asyncio_future_blocking = False
            waiter._driver = self
        else:
            self._yielded(yielded)


class PyProtocolCore:
    """The connection's fields and its reply path (agi/server.py _AgiProtocol)."""

    __slots__ = (
        "_closed",
        "_conn",
        "_pending",
        "_read_buffer",
        "_reply_timeout",
        "_times",
        "_write",
        "deadline",
        "hung_up",
        "sent_at",
        "waiter",
    )
    _pending: Any  # the ReplyWaiter of the command waiting for its reply, or None
    waiter: Any  # the one reply waiter of this session
    _conn: AgiConnection
    _write: Callable[[bytes], object] | None  # the transport's write while connected
    _read_buffer: memoryview  # shared by the whole server
    _times: PyCommandTimes  # the server's: where each command's round trip is counted
    sent_at: float  # when the command waiting for its reply was written
    deadline: float  # of the headers or the reply (0: none)
    _reply_timeout: float
    hung_up: bool
    _closed: bool

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError  # _AgiProtocol's

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self._read_buffer[:nbytes].tobytes()
        pending = self._pending
        if pending is not None:
            # The read of nearly every command: its whole reply, a common `200 result=N`.
            reply = self._conn.receive_reply(data)
            if reply is not None:
                self._pending = None
                self._times.add(time.monotonic() - self.sent_at)
                driver = pending._driver
                if driver is None or self.hung_up or pending._state:
                    pending.set_result(reply, self.hung_up)  # resumes the flow (ReplyWaiter)
                    return
                # pending.set_result(reply) for a 200 reply that the flow's driver awaits,
                # inlined: once for every command. Nothing after the resume (see set_result).
                pending._result = reply
                pending._state = 1
                pending._driver = None
                driver.resume()
                return
        self.data_received(data)

    def command(self, convert: Callable[[Reply], Any] | None, name: str, *args: str | int) -> Any:
        """Encode one command and send it: what every method of the session does."""
        if self.hung_up:
            raise CallerHangup("the caller has hung up")
        try:
            line = _ENCODED.get((name, args))  # encode_command's cache (see there)
        except TypeError:  # an unhashable argument: encode_command refuses it
            line = None
        if line is None:
            line = encode_command(name, *args)
        return self.send(line, convert)

    def send(self, data: bytes, convert: Callable[[Reply], Any] | None = None) -> Any:
        """Write one command and return the awaitable of its reply (`convert`ed: see
        `ReplyWaiter.rearm`)."""
        write = self._write
        if self._closed or write is None:
            raise CallerHangup("the connection is closed")
        pending = self._pending
        if pending is not None:
            if pending._state == 2:
                # A command was given up before its reply (wait_for timed out): the next
                # reply would be the wrong one, so the session cannot go on.
                raise ReplyTimeout("a command was abandoned before its reply")
            # A second command would make the running one answer nothing at all
            # (docs/asterisk-protocol.md#agi-command-lines).
            raise RuntimeError("AGI commands must not be pipelined")
        waiter = self.waiter
        # waiter.rearm(data, convert), inlined: once for every command.
        waiter._line = data
        waiter._convert = convert
        waiter._state = 0
        waiter._result = waiter._exception = None
        waiter._asyncio_future_blocking = False
        self._pending = waiter
        # One clock read gives both the reply deadline and the start of the round trip.
        self.sent_at = now = time.monotonic()
        self.deadline = now + self._reply_timeout
        write(data)
        return waiter


def adopt_driver(cls: type[PyDriverCore]) -> None:
    """As `adopt_waiter`, for the class that derives from DriverCore (agi/driver.py
    FlowDriver)."""
    if SPEEDUPS:
        _speedups.adopt_driver(cls)


def adopt_waiter(cls: type[PyWaiterCore]) -> None:
    """Called on the class that derives from WaiterCore (agi/driver.py ReplyWaiter): with the
    C core, gives it the core's `am_send`, which CPython 3.11 does not pass on to a subclass
    (agi/_speedups.c explains); nothing to do for the Python core."""
    if SPEEDUPS:
        _speedups.adopt_waiter(cls)


_speedups: Any = speedups.load("_speedups")
SPEEDUPS = _speedups is not None  # True when the C cores run

if TYPE_CHECKING:
    WaiterCore = PyWaiterCore
    DriverCore = PyDriverCore
    ProtocolCore = PyProtocolCore
    CommandTimes = PyCommandTimes
elif SPEEDUPS:
    WaiterCore = _speedups.WaiterCore
    DriverCore = _speedups.DriverCore
    ProtocolCore = _speedups.ProtocolCore
    CommandTimes = _speedups.CommandTimes
else:
    WaiterCore, DriverCore, ProtocolCore = PyWaiterCore, PyDriverCore, PyProtocolCore
    CommandTimes = PyCommandTimes
