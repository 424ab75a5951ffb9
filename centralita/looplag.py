"""Event-loop lag, sampled by a small task and shown on `/metrics`.

Every FastAGI reply, pop and console request waits for the one event-loop thread. When that
thread waits (a blocking call, or no CPU because Asterisk's channel threads have it: on 2
cores at 600 callers, 47 s of waiting for 4.8 s of running, docs/deploy.md), every caller
waits with it. The sampler sleeps `interval_s` and measures how late it wakes up; the lateness
is what any callback queued at that moment waited too, so it is visible before callers notice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge, Histogram

LOOP_LAG = Histogram(
    "centralita_event_loop_lag_seconds",
    "How late the event loop ran a timer due now (sampled every 0.25 s)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LOOP_LAG_LAST = Gauge(
    "centralita_event_loop_lag_last_seconds", "The event loop's lag at the last sample"
)
INTERVAL_S = 0.25


async def sample_lag(interval_s: float = INTERVAL_S) -> None:
    """Measure the loop's lag every `interval_s` until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        lag = max(0.0, loop.time() - due)
        LOOP_LAG.observe(lag)
        LOOP_LAG_LAST.set(lag)


async def lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sample the lag while the app runs (an aiohttp cleanup context)."""
    task = asyncio.create_task(sample_lag(), name="centralita-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
