"""Prometheus metrics (prometheus-client, default registry).

The metrics live in the process-wide default registry, so other modules (the CRM client in
centralita/crm.py) register theirs there and `/metrics` serves them all. Gauges that mirror
app state (active AGI sessions, AMI connected, webhook backlog, open console sockets) are
refreshed from the app at scrape time by the handler, `centralita.web.prometheus`.
"""

from __future__ import annotations

from collections.abc import Container

from prometheus_client import Counter, Gauge, Histogram

from agi.server import AgiMetrics

ACTIVE_CALLS = Gauge("centralita_active_calls", "Calls currently in a FastAGI flow")
AGI_SESSIONS = Counter(
    "centralita_agi_sessions_total",
    "FastAGI sessions ended, by flow and outcome",
    ["flow", "outcome"],
)
AGI_COMMAND_SECONDS = Histogram(
    "centralita_agi_command_seconds",
    "Round trip of one AGI command (sampled)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
AMI_CONNECTED = Gauge("centralita_ami_connected", "1 while the AMI connection is up")
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

    def session_ended(self, script: str, outcome: str, seconds: float) -> None:
        """A flow ended: count it by flow and outcome."""
        flow = script if script in self.flows else "unknown"
        AGI_SESSIONS.labels(
            flow=flow, outcome=outcome if outcome in AGI_OUTCOMES else "other"
        ).inc()

    def command_latency(self, seconds: float) -> None:
        """One command's round trip."""
        AGI_COMMAND_SECONDS.observe(seconds)


def pop_sent(kind: str, seconds: float) -> None:
    """Count one pop message and its latency (the PopBridge `on_sent` hook)."""
    POPS_SENT.labels(type=kind).inc()
    POP_SECONDS.observe(seconds)
