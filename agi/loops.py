"""The event loops Centralita runs on: asyncio's own, or uvloop's (the `uvloop` extra).

`[server] event_loop` names one of `EVENT_LOOPS`; `new_event_loop()` makes it. uvloop is
optional: asking for it when it is not installed is a clear error, never a silent fallback to
asyncio (the operator asked for a loop and must get it, or know why not).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Callable

from agi.protocol import AgiError

EVENT_LOOPS = ("asyncio", "uvloop")

UVLOOP_MISSING = (
    "uvloop is not installed: install Centralita with the extra, "
    "pip install 'centralita[uvloop]', or set event_loop = \"asyncio\""
)


class EventLoopUnavailable(AgiError, RuntimeError):
    """The event loop asked for cannot be made here (uvloop not installed)."""


def available(name: str) -> bool:
    """True when loop `name` can be made on this machine."""
    if name == "asyncio":
        return True
    if name == "uvloop":
        return importlib.util.find_spec("uvloop") is not None
    return False


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The function making a new loop of kind `name` (for `asyncio.Runner(loop_factory=)`)."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            raise EventLoopUnavailable(UVLOOP_MISSING) from None
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    raise EventLoopUnavailable(f"unknown event loop {name!r}: one of {', '.join(EVENT_LOOPS)}")


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop of kind `name` ("asyncio" or "uvloop")."""
    return loop_factory(name)()
