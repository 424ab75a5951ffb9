"""agi/router.py: flows registered by name (moved from test_agi_server.py, which now runs on
every event loop and holds only async tests)."""

from __future__ import annotations

import pytest

from agi.router import DuplicateFlowError, FlowRegistry
from agi.session import AgiSession

registry = FlowRegistry()


@registry.flow("echo")
async def echo_flow(session: AgiSession, context: object) -> None:
    await session.answer()


def test_duplicate_flow_name_fails_loudly() -> None:
    with pytest.raises(DuplicateFlowError, match="echo"):
        registry.register("echo", echo_flow)
