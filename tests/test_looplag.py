"""The event loop's lag: sampled by a task, shown on /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import REGISTRY
from test_web_support import console_env

from centralita.looplag import sample_lag


def samples() -> float:
    return REGISTRY.get_sample_value("centralita_event_loop_lag_seconds_count") or 0.0


async def test_a_blocked_loop_shows_as_lag() -> None:
    before = samples()
    task = asyncio.create_task(sample_lag(0.01))
    try:
        await asyncio.sleep(0.05)  # a few samples while nothing blocks
        time.sleep(0.3)  # noqa: ASYNC251 - the point: the loop's thread is busy elsewhere
        seen = samples()
        for _ in range(100):  # until the sample taken after the block
            await asyncio.sleep(0.01)
            if samples() > seen:
                break
    finally:
        task.cancel()
    assert samples() > before
    # The sample taken after the block waited at least as long as the block, less one tick.
    last = REGISTRY.get_sample_value("centralita_event_loop_lag_last_seconds")
    assert last is not None and last >= 0.3 - 0.01
    slow = REGISTRY.get_sample_value("centralita_event_loop_lag_seconds_bucket", {"le": "0.1"})
    total = samples()
    assert slow is not None and slow < total  # at least one sample above 100 ms


async def test_metrics_show_the_lag_of_the_running_app(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        before = samples()
        for _ in range(100):  # until the app's own sampler took one
            await asyncio.sleep(0.05)
            if samples() > before:
                break
        assert samples() > before
        async with client.get("/metrics") as resp:
            text = await resp.text()
    assert "centralita_event_loop_lag_seconds_bucket{le=" in text
    assert "centralita_event_loop_lag_last_seconds " in text
