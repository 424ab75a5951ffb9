"""A flow resumed straight from the reply it awaits: the reply waiter and the flow driver.

A task resumes its coroutine through a wake-up callback and a step: `task_wakeup` asks the
awaited object for its `result()`, enters the task, sends into the coroutine, checks what it
yielded, and registers the wake-up on it again with `add_done_callback` (CPython
Modules/_asynciomodule.c, task_wakeup and task_step_impl). For a FastAGI flow that is once
per command, and about 2 us of the ~10 us a command costs the server (measured by
bench/agi_load.py against a bare BufferedProtocol).

`FlowDriver` keeps the task and drives the same coroutine itself while it only awaits replies:
the task waits on the driver (a future-like object), and each reply sends into the coroutine
directly, with the task entered as the current one (`asyncio.current_task()`,
`asyncio.timeout` and contextvars see the flow's own task, as before). Whatever else the flow
awaits (a store query, an HTTP request, `asyncio.sleep`) also resumes it directly when done.
The task is woken only when the flow ends, raises, or is cancelled, so a cancellation reaches
the flow through the task exactly as with a plain `await`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from agi.cores import DriverCore, WaiterCore, adopt_driver, adopt_waiter
from agi.protocol import AgiError, Reply
from agi.session import settle


class _Awaited:
    """What a task asks of anything it awaits, beyond the callbacks (asyncio.Future's
    `get_loop`, `done`, `cancelled`), for the driver and the reply waiter alike: each keeps
    its loop and a state, 0 pending, 1 done, 2 cancelled."""

    __slots__ = ()
    _loop: asyncio.AbstractEventLoop
    _state: int

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._state != 0

    def cancelled(self) -> bool:
        return self._state == 2


class FlowDriver(DriverCore, _Awaited):
    """Awaited by the flow's task in place of the flow's coroutine (`await FlowDriver(...)`).

    Its fields, its await, `add_done_callback`, `result` and `resume` are the core's
    (agi/cores.py), C when built: each runs once per call, `resume` once per command. What is
    left here is what the flow's other awaits and a cancellation need.
    """

    __slots__ = ()

    def _yielded(self, yielded: object) -> None:
        """The flow awaits something other than its next reply."""
        loop = self._loop
        if yielded is None:  # a bare yield (asyncio.sleep(0)): the next turn
            loop.call_soon(self.resume)
        elif getattr(yielded, "_asyncio_future_blocking", None):
            # A future (a store query, an HTTP request...): resume when it is done, and
            # pass a cancellation of the task on to it, as a task does.
            future: Any = yielded
            future._asyncio_future_blocking = False
            self._proxied = future
            future.add_done_callback(self.resume)
        else:  # what a task refuses: the task's step throws the error into the flow
            self._throw = RuntimeError(f"Task got bad yield: {yielded!r}")
            self._complete(1)

    # -- the rest of the future protocol, for the task waiting on the driver -----------------

    def remove_done_callback(self, callback: Callable[[Any], object]) -> int:
        if self._callback is not None and self._callback == callback:
            self._callback = None
            return 1
        return 0

    def exception(self) -> BaseException | None:
        if self._state == 2:
            raise asyncio.CancelledError
        return None

    def cancel(self, msg: object = None) -> bool:
        """The task is cancelled: the flow gets CancelledError where it waits."""
        if self._state:
            return False
        proxied = self._proxied
        if proxied is not None:
            # Cancel what the flow awaits: its completion resumes the flow, which raises.
            cancelled: bool = proxied.cancel(msg=msg)
            return cancelled
        waiter = self._waiter
        if waiter._driver is self:
            # Given up before its reply: the next command is refused (ReplyTimeout).
            waiter._driver = None
            waiter._state = 2
        self._complete(2)
        return True


class ReplyWaiter(WaiterCore, _Awaited):
    """The awaitable reply to one command: a minimal future that wakes its task at once.

    Why not `loop.create_future()`: an asyncio Future schedules its task's wake-up with
    `call_soon`, which costs a Handle and an extra turn of the event loop for every command,
    a large share of a command's CPU time in this server. A Task accepts any object with the
    Future protocol (`_asyncio_future_blocking`, `get_loop`, `add_done_callback`, `result`),
    so this one calls the task's wake-up directly from `data_received`: the flow resumes in
    the same turn that read its reply. It must only be completed from protocol callbacks,
    never from inside a running task (the sweeper completes it through `call_soon`).
    The reply is settled when it arrives (`session.settle`): a reply that means CallerHangup
    or AgiCommandError is stored as that exception, which the flow's `await` raises.

    It holds the loop, not the connection: a connection and its waiter referring to each
    other made a reference cycle per call, which only the garbage collector could free, and
    its collections were the largest cost of a call under load.
    """

    # Every field is in the core (agi/cores.py), with the construction (once per call) and
    # the await (once per command).
    __slots__ = ()

    def rearm(self, line: bytes, convert: Callable[[Reply], Any] | None = None) -> None:
        """Wait for the reply to `line` (one waiter per session serves every command: only the
        flow's task awaits it, and only between one command and its reply). The callbacks
        are cleared by the wake-up of the previous command. `convert` turns a 200 reply into
        what the await gives (the session's method's result), else the await gives the Reply."""
        self._line = line
        self._convert = convert
        self._state = 0  # 0 pending, 1 done, 2 cancelled
        self._result = None
        self._exception = None
        self._asyncio_future_blocking = False

    def release(self) -> None:
        """The call is over: drop the last reply or exception. An exception raised to the
        flow holds, in its traceback, frames that refer to this waiter; kept here, it would
        make a reference cycle that only the garbage collector frees."""
        self._result = self._exception = None

    def add_done_callback(
        self, callback: Callable[[Any], object], *, context: contextvars.Context | None = None
    ) -> None:
        if self._state:
            self._loop.call_soon(callback, self, context=context)
        elif self._callback is None:
            self._callback = callback
            self._context = context
        else:  # a second waiter (rare: the flow's task is normally the only one)
            if self._extra is None:
                self._extra = []
            self._extra.append((callback, context))

    def remove_done_callback(self, callback: Callable[[Any], object]) -> int:
        removed = 0
        if self._callback is not None and self._callback == callback:
            self._callback = self._context = None
            removed = 1
        if self._extra:
            before = len(self._extra)
            self._extra = [(cb, ctx) for cb, ctx in self._extra if cb != callback]
            removed += before - len(self._extra)
        return removed

    def result(self) -> Any:
        result = self._result
        if result is not None:
            # Converted here too: asyncio.wait_for and gather take a future's result().
            convert = self._convert
            return result if convert is None else convert(result)
        if self._state == 2:
            raise asyncio.CancelledError
        if self._exception is not None:
            raise self._exception
        raise asyncio.InvalidStateError("the reply has not arrived")

    def exception(self) -> BaseException | None:
        if self._state == 2:
            raise asyncio.CancelledError
        return self._exception

    def set_result(self, reply: Reply, hung_up: bool = False) -> None:
        """The reply arrived; `hung_up`: Asterisk has said HANGUP (the reply then means
        CallerHangup, see `session.settle`)."""
        if self._state:
            return
        if reply.code == 200 and not hung_up:
            self._result = reply  # what `settle` gives, without the call (every command)
        else:
            try:
                self._result = settle(self._line, reply, hung_up)
            except AgiError as exc:
                # Without the traceback of this frame, which refers to this waiter: the flow's
                # await raises it afresh, and the waiter and its exception make no cycle.
                self._exception = exc.with_traceback(None)
        self._state = 1
        driver = self._driver
        if driver is not None:  # nearly every command: the flow resumes right here
            # Nothing after this: the flow may end, its task go on and await this waiter
            # again (re-armed, with the task's callback) before `resume` returns.
            self._driver = None
            driver.resume()
            return
        callback = self._callback
        if callback is None or self._extra is not None:
            self._wake()
            return
        # The one waiting task, woken here: `_wake` without its general case (once for
        # every command).
        context = self._context
        self._callback = self._context = None
        if context is None:
            callback(self)
        else:
            context.run(callback, self)

    def set_exception(self, exc: BaseException) -> None:
        if not self._state:
            self._exception = exc
            self._state = 1
            driver = self._driver
            if driver is not None:  # as in set_result: nothing after the resume
                self._driver = None
                driver.resume()
                return
            self._wake()

    def cancel(self, msg: object = None) -> bool:
        if self._state:
            return False
        self._state = 2
        driver = self._driver
        if driver is not None:  # the flow itself gave up its reply: it raises CancelledError
            self._driver = None
            self._loop.call_soon(driver.resume)
        # A cancel comes from inside some task: wake the waiting ones on the next turn.
        self._wake(later=True)
        return True

    def _wake(self, later: bool = False) -> None:
        callback, context, extra = self._callback, self._context, self._extra
        self._callback = self._context = self._extra = None
        loop = self._loop
        if callback is not None:
            if later:
                loop.call_soon(callback, self, context=context)
            elif context is None:
                callback(self)
            else:
                context.run(callback, self)
        for other, other_context in extra or ():
            loop.call_soon(other, self, context=other_context)


adopt_waiter(ReplyWaiter)
adopt_driver(FlowDriver)
