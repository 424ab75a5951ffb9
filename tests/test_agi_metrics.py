"""The FastAGI metrics as Prometheus reads them: a served call moves them."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram
from test_web_support import console_env

from agi.testing import Caller, place_call
from centralita.keys import AGI_SERVER
from centralita.metrics import LoopCounter, LoopHistogram

COUNT = "centralita_agi_command_seconds_count"
SUM = "centralita_agi_command_seconds_sum"
ALL = 'centralita_agi_command_seconds_bucket{le="+Inf"}'
FAST = 'centralita_agi_command_seconds_bucket{le="0.25"}'
LANGUAGE_OK = 'centralita_agi_sessions_total{flow="language",outcome="ok"}'


async def scrape(client: aiohttp.ClientSession) -> dict[str, float]:
    """`GET /metrics` as name{labels} -> value."""
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def test_a_served_call_moves_the_agi_command_histogram(tmp_path: Path) -> None:
    # The app's own FastAGI server, on a loopback socket, with the metrics it was built with.
    async with console_env(tmp_path) as env, env.session() as client:
        before = await scrape(client)
        port = env.app[AGI_SERVER].port
        result = await place_call("127.0.0.1", port, Caller(script="language", keys=["2"]))
        after = await scrape(client)
    assert result.error is None and result.route == "queue:support-en"
    commands = len(result.commands)
    assert commands >= 5  # answer, prompts, variables, the route
    assert after[COUNT] - before.get(COUNT, 0.0) == commands
    assert after[ALL] == after[COUNT]
    assert after[SUM] > before.get(SUM, 0.0)
    # Loopback round trips: every one is well under the 0.25 s bucket's bound.
    assert after[FAST] - before.get(FAST, 0.0) == commands
    assert after[LANGUAGE_OK] - before.get(LANGUAGE_OK, 0.0) == 1


def test_loop_histogram_reads_like_prometheus_own() -> None:
    # Same observations, same exposition: buckets are `le` (a value on a bound counts in
    # it), cumulative, with +Inf, sum and count.
    buckets = (0.001, 0.01, 0.1, 1.0)
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = LoopHistogram("h", "h", buckets, registry=ours_registry)
    theirs = Histogram("h", "h", buckets=buckets, registry=theirs_registry)
    for value in (0.0, 0.001, 0.0011, 0.01, 0.5, 1.0, 3.0, 3.0):
        ours.observe(value)
        theirs.observe(value)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    expected = samples(theirs_registry)
    assert expected[("h_bucket", "0.001")] == 2  # 0.0 and 0.001 itself
    assert expected[("h_count", "")] == 8
    assert samples(ours_registry) == expected


def test_loop_counter_reads_like_prometheus_own() -> None:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = LoopCounter("c_total", "c", ["flow", "outcome"], registry=ours_registry)
    theirs = Counter("c_total", "c", ["flow", "outcome"], registry=theirs_registry)
    for labels in [("language", "ok"), ("language", "ok"), ("unknown", "unknown-flow")]:
        ours.inc(labels)
        theirs.labels(*labels).inc()

    def samples(registry: CollectorRegistry) -> dict[tuple[str, object], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    expected = samples(theirs_registry)
    assert expected[("c_total", (("flow", "language"), ("outcome", "ok")))] == 2
    assert samples(ours_registry) == expected
