"""Every async test in this folder runs once per event loop: asyncio's and uvloop's.

pytest-asyncio asks this hook for the loop factories of the tests in this folder only (a hook
in a folder's conftest.py applies to the items under it). The module marks name both loops,
so a loop that cannot be made here is reported as skipped, with the reason, not left out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from agi import loops


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {name: loops.loop_factory(name) for name in loops.EVENT_LOOPS if loops.available(name)}


# Used as `pytestmark = ON_EVERY_LOOP` by each module of this folder.
ON_EVERY_LOOP = pytest.mark.asyncio(loop_factories=list(loops.EVENT_LOOPS))
