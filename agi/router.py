"""Flows registered by name (the wazo-agid style): `@flow("language")` on an async function.

Asterisk names the flow in the URL (`agi://host:4573/language?x=1` gives `agi_network_script:
language?x=1`, res_agi.c:2276-2279); the router maps the name without its query to a flow.
A name registered twice is a programming error and fails at import.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from agi.protocol import AgiError
from agi.session import AgiSession

FlowFunc = Callable[[AgiSession, Any], Awaitable[None]]


class DuplicateFlowError(AgiError, RuntimeError):
    """Two flows were registered under one name."""


class FlowRegistry:
    """Name -> flow function."""

    def __init__(self) -> None:
        self._flows: dict[str, FlowFunc] = {}
        # The flow named `name`, or None: the dict's own get, with no Python frame (the
        # server looks a flow up once for every call).
        self.get: Callable[[str], FlowFunc | None] = self._flows.get

    def register(self, name: str, func: FlowFunc) -> None:
        """Register `func` under `name`; a name already taken raises DuplicateFlowError."""
        if name in self._flows:
            existing = self._flows[name]
            raise DuplicateFlowError(
                f"flow {name!r} is already registered by {existing.__module__}."
                f"{existing.__qualname__}"
            )
        self._flows[name] = func

    def flow(self, name: str) -> Callable[[FlowFunc], FlowFunc]:
        """Decorator: `@registry.flow("language")`."""

        def decorate(func: FlowFunc) -> FlowFunc:
            self.register(name, func)
            return func

        return decorate

    def __contains__(self, name: object) -> bool:
        return name in self._flows

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._flows))


# The registry of Centralita's own flows (agi/flows/*). Tests and users may build their own.
FLOWS = FlowRegistry()


def flow(name: str) -> Callable[[FlowFunc], FlowFunc]:
    """Register a flow in Centralita's registry."""
    return FLOWS.flow(name)
