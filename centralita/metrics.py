"""Prometheus metrics (prometheus-client, default registry).

The metrics live in the process-wide default registry, so other modules (the CRM client in
centralita/crm.py) register theirs there and `/metrics` serves them all. Gauges that mirror
app state (active AGI sessions, AMI connected, webhook backlog, open console sockets) are
refreshed from the app at scrape time by the handler, `centralita.web.prometheus`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Container, Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from agi.server import AgiMetrics


class LoopHistogram:
    """A Prometheus histogram for the event loop's hot paths: counted in plain lists, read by
    Prometheus at scrape time (a collector in the default registry).

    Every AGI command is timed. prometheus_client's `Histogram.observe` takes a lock for the
    sum and one for the bucket: 4.8 us per call of it (timeit, 12 buckets). The FastAGI server
    counts its commands into these buckets itself as their replies arrive (agi/cores.py
    CommandTimes) and adds the counts here at each sweep (`add_counts`). Use it from the event
    loop's thread only (no lock: the scrape runs in the same loop).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        registry.register(self)

    def observe(self, amount: float) -> None:
        """Count one observation (into the first bucket whose bound is >= it, as `le`)."""
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def add_counts(self, counts: Sequence[int], total: float) -> None:
        """Add observations counted elsewhere: how many fell in each bucket (the last above
        every bound) and their sum (the FastAGI server counts its commands as their replies
        arrive, agi/cores.py CommandTimes)."""
        if len(counts) != len(self.counts):
            raise ValueError(f"{len(counts)} counts for {len(self.counts)} buckets")
        mine = self.counts
        for at, count in enumerate(counts):
            mine[at] += count
        self.sum += total

    def collect(self) -> Iterator[Metric]:
        """The histogram as Prometheus reads it: cumulative buckets, sum and count."""
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        labels = [*map(floatToGoString, self.bounds), "+Inf"]
        for bound, count in zip(labels, self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self.sum
        )


class LoopCounter:
    """A labelled Prometheus counter for the event loop's hot paths: counted in a plain dict,
    read by Prometheus at scrape time (a collector in the default registry).

    prometheus_client's `Counter.inc` takes a lock, and the FastAGI server counts every call:
    the lock and its calls were about 6% of a call's Python (cProfile, the in-process bench).
    Count from the event loop's thread only; the caller keeps the label values bounded.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.counts: dict[tuple[str, ...], int] = {}
        registry.register(self)

    def inc(self, labels: tuple[str, ...]) -> None:
        """Count one, under `labels` (one value per label name, in order)."""
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + 1

    def collect(self) -> Iterator[Metric]:
        """The counter as Prometheus reads it: `<name>_total{labels} count`."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, count in self.counts.items():
            family.add_metric(labels, count)
        yield family


ACTIVE_CALLS = Gauge("centralita_active_calls", "Calls currently in a FastAGI flow")
AGI_SESSIONS = LoopCounter(
    "centralita_agi_sessions_total",
    "FastAGI sessions ended, by flow and outcome",
    ["flow", "outcome"],
)
AGI_COMMAND_SECONDS = LoopHistogram(
    "centralita_agi_command_seconds",
    "Round trip of one AGI command, from writing it to reading its reply",
    buckets=AgiMetrics.command_buckets,
)
AMI_CONNECTED = Gauge(
    "centralita_ami_connected", "1 while the AMI connection of every Asterisk server is up"
)
ASTERISK_CONNECTED = Gauge(
    "centralita_asterisk_connected",
    "1 while the AMI connection to this Asterisk server is up",
    ["server"],
)
POPS_SENT = Counter("centralita_pops_sent_total", "Screen-pop messages sent to agents", ["type"])
POP_SECONDS = Histogram(
    "centralita_pop_seconds",
    "From the AMI event's arrival to the console socket send",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
CONSOLE_SOCKETS = Gauge("centralita_console_sockets", "Open agent console WebSockets")
WEBHOOK_BACKLOG = Gauge("centralita_webhook_backlog", "Webhook events waiting in the outbox")
WEBHOOKS_SENT = Counter("centralita_webhooks_total", "Webhook deliveries, by result", ["result"])
LOGIN_ATTEMPTS = Counter("centralita_logins_total", "Console logins, by result", ["result"])


# The outcomes agi.server reports (AgiMetrics.session_ended).
AGI_OUTCOMES = frozenset({"ok", "hangup", "error", "timeout", "unknown-flow"})


class PrometheusAgiMetrics(AgiMetrics):
    """The FastAGI server's metrics hooks, recorded in Prometheus.

    Label values are a bounded set: the script name comes from whoever connects, so a name
    that is not a registered flow counts as `unknown` (20,000 distinct names made 20,000
    series, and one with byte 0xff made /metrics fail to encode: issue 10, finding 4).
    """

    def __init__(self, flows: Container[str] = frozenset()) -> None:
        self.flows = flows
        # The labels of each (script, outcome) seen, worked out once. Bounded like the labels:
        # scripts that are not flows share `unknown`.
        self._labels: dict[tuple[str, str], tuple[str, str]] = {}
        # The server counts each command into the histogram's own buckets.
        self.command_buckets = tuple(AGI_COMMAND_SECONDS.bounds)

    def session_ended(self, script: str, outcome: str, seconds: float) -> None:
        """A flow ended: count it by flow and outcome."""
        key = (script, outcome)
        labels = self._labels.get(key)
        if labels is None:
            flow = script if script in self.flows else "unknown"
            labels = (flow, outcome if outcome in AGI_OUTCOMES else "other")
            if len(self._labels) < 4096:
                self._labels[key] = labels
        AGI_SESSIONS.inc(labels)

    def command_times(self, counts: list[int], total: float) -> None:
        """Commands' round trips counted by the server since it last handed them over."""
        AGI_COMMAND_SECONDS.add_counts(counts, total)


def pop_sent(kind: str, seconds: float) -> None:
    """Count one pop message and its latency (the PopBridge `on_sent` hook)."""
    POPS_SENT.labels(type=kind).inc()
    POP_SECONDS.observe(seconds)
