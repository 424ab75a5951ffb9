"""CallMyWay webhooks: call start/end events to each `[[webhooks]]` URL, through the outbox.

The shape (issue 6, item 7) is CallMyWay's:

    {"action": "callStart"|"callEnd",
     "data": {"callid", "account_id", "endpoint_id", "ani", "dnis", "detect_time",
              "connect_time", "disconnect_time", "duration", "type": "in"|"out"|"internal",
              "cost"}}

with times as `YYYY-MM-DD HH:MM:SS` (local wall clock, as Asterisk's CDR writes them). The
receiver answers `{"ack": "ok"}`; anything else is a failure, retried with exponential backoff.
Every event is written to the store's outbox before anything is sent (principle 4 in
docs/design.md#principles), so a restart loses none: the sender picks up whatever is due when it
starts again.

How calls map to events: `CallEvents` follows the tracker's per-agent changes and emits one
`callStart` when a call (Linkedid) first rings an agent and one `callEnd` when its last agent
pop ends. `endpoint_id` is the agent extension (the one who answered, else the last rung);
`ani`/`dnis` are caller/callee: customer -> agent for inbound, agent -> customer for outbound;
`duration` is the seconds from connect to disconnect (0 if never answered); `cost` is 0
(Centralita does not rate calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from centralita import metrics
from centralita.pop import Change
from centralita.settings import Webhook
from centralita.store import OutboxEvent, StoreBackend

log = logging.getLogger("centralita.webhooks")

ACTIONS = ("callStart", "callEnd")
TYPES = ("in", "out", "internal")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATA_FIELDS = (
    "callid",
    "account_id",
    "endpoint_id",
    "ani",
    "dnis",
    "detect_time",
    "connect_time",
    "disconnect_time",
    "duration",
    "type",
    "cost",
)
MAX_OPEN_CALLS = 100_000
# Outbox events claimed (and then posted) at a time: one, so a claim covers one post. An
# event whose sender was killed after claiming it is taken by another instance once the
# claim lapses: one post's timeout plus CLAIM_MARGIN_S, not a whole batch's.
CLAIM_BATCH = 1
# Past the post's own timeout, for marking it sent (a busy database) before the claim lapses:
# a claim that lapsed before that would let a second sender post the event again.
CLAIM_MARGIN_S = 30.0


def format_time(moment: datetime | None) -> str:
    """`YYYY-MM-DD HH:MM:SS` in local time; "" for no time (never connected)."""
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone().replace(tzinfo=None)
    return moment.strftime(TIME_FORMAT)


def backoff_s(attempts: int, base_s: float = 2.0, cap_s: float = 600.0) -> float:
    """Delay before the next try after `attempts` failures: base * 2^(n-1), capped."""
    return float(min(cap_s, base_s * 2.0 ** max(0, min(attempts - 1, 30))))


@dataclass(slots=True)
class _Call:
    callid: str
    direction: str
    number: str
    endpoint: str
    detect: datetime
    connect: datetime | None = None
    agents: set[str] = field(default_factory=set)


class CallEvents:
    """Per-agent call changes in, CallMyWay `callStart`/`callEnd` data out (sans-IO)."""

    def __init__(self, internal_numbers: Collection[str] = ()) -> None:
        self.internal_numbers = frozenset(internal_numbers)
        self._calls: dict[str, _Call] = {}

    def _type(self, call: _Call) -> str:
        return "internal" if call.number in self.internal_numbers else call.direction

    def data(self, call: _Call, end: datetime | None) -> dict[str, Any]:
        """The `data` object of an event for `call` (without account_id)."""
        if call.direction == "out":
            ani, dnis = call.endpoint, call.number
        else:
            ani, dnis = call.number, call.endpoint
        duration = 0
        if end is not None and call.connect is not None:
            duration = max(0, int((end - call.connect).total_seconds()))
        return {
            "callid": call.callid,
            "endpoint_id": call.endpoint,
            "ani": ani,
            "dnis": dnis,
            "detect_time": format_time(call.detect),
            "connect_time": format_time(call.connect),
            "disconnect_time": format_time(end),
            "duration": duration,
            "type": self._type(call),
            "cost": 0,
        }

    def handle(
        self, change: Change, now: datetime | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Apply one change; returns the (action, data) events it completes."""
        now = now or datetime.now()
        call = self._calls.get(change.call_id)
        events: list[tuple[str, dict[str, Any]]] = []
        if change.kind in ("ringing", "answered"):
            if call is None:
                call = _Call(change.call_id, change.direction, change.number, change.agent, now)
                self._calls[change.call_id] = call
                while len(self._calls) > MAX_OPEN_CALLS:
                    del self._calls[next(iter(self._calls))]
                events.append(("callStart", self.data(call, None)))
            call.agents.add(change.agent)
            if change.kind == "answered":
                if call.connect is None:
                    call.connect = now
                call.endpoint = change.agent
            elif call.connect is None:
                call.endpoint = change.agent  # not answered yet: the last agent rung
        elif change.kind == "ended" and call is not None:
            call.agents.discard(change.agent)
            if not call.agents:
                del self._calls[change.call_id]
                events.append(("callEnd", self.data(call, now)))
        return events


def redact_url(url: str) -> str:
    """A webhook URL fit for a log line: the password and every query value hidden.

    A URL may carry credentials (`https://user:password@host/...?token=...`): logging it
    whole at every retry put them in the logs (issue 10, finding 6).
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None:
        netloc = (
            f"{parts.username}:***@{netloc}"
            if parts.password is not None
            else (f"{parts.username}@{netloc}")
        )
    query = "&".join(
        f"{key}=***" for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def payload(action: str, data: Mapping[str, Any], account_id: str) -> dict[str, Any]:
    """The CallMyWay JSON body for one webhook URL."""
    body = dict(data)
    body["account_id"] = account_id
    return {"action": action, "data": {k: body.get(k, "") for k in DATA_FIELDS}}


def parse_callmyway(body: object) -> tuple[str, dict[str, Any]]:
    """Validate an incoming CallMyWay event; returns (action, data) or raises ValueError."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    action = body.get("action")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise ValueError("data must be an object")
    for name in ("callid", "endpoint_id"):
        value = data.get(name)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise ValueError(f"data.{name} is required")
    clean: dict[str, Any] = {}
    for name in DATA_FIELDS:
        value = data.get(name, "")
        if value is None:
            value = ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"data.{name} must be a string or a number")
        text = str(value)
        if len(text) > 200 or any(c in text for c in "\r\n\0"):
            raise ValueError(f"data.{name} is too long or has control characters")
        clean[name] = text
    if clean["type"] and clean["type"] not in TYPES:
        raise ValueError(f"data.type must be one of {', '.join(TYPES)}")
    for name in ("detect_time", "connect_time", "disconnect_time"):
        if clean[name]:
            try:
                datetime.strptime(clean[name], TIME_FORMAT)
            except ValueError:
                raise ValueError(f"data.{name} must be YYYY-MM-DD HH:MM:SS") from None
    return str(action), clean


def _stop_requested() -> bool:
    """Has the running task been asked to stop (a cancellation not yet delivered)?"""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class WebhookSender:
    """Writes call events to the outbox and delivers them, retrying with backoff."""

    def __init__(
        self,
        store: StoreBackend,
        webhooks: Collection[Webhook],
        *,
        internal_numbers: Collection[str] = (),
        timeout_s: float = 10.0,
        poll_s: float = 5.0,
        base_backoff_s: float = 2.0,
        max_backoff_s: float = 600.0,
        claim_s: float | None = None,
    ) -> None:
        self.store = store
        # How long a claimed batch is ours: past it, a sender that died mid-send (or hung)
        # is presumed gone and the events are sent again. Longer than one batch of posts.
        self.claim_s = claim_s if claim_s is not None else CLAIM_BATCH * timeout_s + CLAIM_MARGIN_S
        self.webhooks = tuple(webhooks)
        self.events = CallEvents(internal_numbers)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.poll_s = poll_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._event_counts: dict[tuple[str, str], int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def set_webhooks(self, webhooks: Collection[Webhook]) -> None:
        """Queue the call events from now on for `webhooks` (a reload): a URL added gets the
        events of the changes that follow, a URL removed gets no more. What the outbox holds
        already goes out to the URL it was queued for. The first webhooks of a server that
        started with none start the delivery loop."""
        self.webhooks = tuple(webhooks)
        if self.webhooks:
            self.start()

    def set_internal_numbers(self, numbers: Collection[str]) -> None:
        """The numbers whose calls are `internal` (the members' extensions), replaced.

        Kept: the calls under way and the outbox. A call's type is read when each of its
        events is made, so a call under way takes the new numbers from its next event on.
        """
        self.events.internal_numbers = frozenset(numbers)

    def event_key(self, action: str, callid: str) -> str:
        """The identity of a call event: the call, the action and how many times the call
        had that action before (a call that rings, is left, and rings again starts twice).

        Every instance following the same Asterisk reads the same events in the same order
        and so gives each event the same key, whatever its clock says; the store queues one
        row per key and URL, so N instances send each event once (docs/cluster.md).
        """
        seen = self._event_counts.pop((callid, action), 0) + 1
        self._event_counts[(callid, action)] = seen  # re-inserted: the newest last
        while len(self._event_counts) > 2 * MAX_OPEN_CALLS:
            del self._event_counts[next(iter(self._event_counts))]
        return f"{callid}/{action}/{seen}"

    async def on_change(self, change: Change) -> int:
        """Queue the webhook events a call change completes; returns how many were queued
        (not counting those another instance had queued already)."""
        if not self.webhooks:
            return 0
        queued = 0
        for action, data in self.events.handle(change):
            key = self.event_key(action, str(data["callid"]))
            for hook in self.webhooks:
                body = payload(action, data, hook.account_id)
                if await self.store.enqueue_event(hook.url, body, key=key):
                    queued += 1
        if queued:
            self._wake.set()
        return queued

    async def deliver_due(self, now: datetime | None = None) -> tuple[int, int]:
        """Try every due event once; returns (sent, failed)."""
        now = now or datetime.now(UTC)
        sent = failed = 0
        while batch := await self.store.claim_due(now, lease_s=self.claim_s, limit=CLAIM_BATCH):
            s, f = await self._deliver(batch, now)
            sent, failed = sent + s, failed + f
        return sent, failed

    async def _deliver(self, batch: list[OutboxEvent], now: datetime) -> tuple[int, int]:
        sent = failed = 0
        for event in batch:
            error = await self._post(event)
            if error is not None:
                # aiohttp puts the URL in some messages (InvalidURL, ClientResponseError).
                error = error.replace(event.url, redact_url(event.url))
            if error is None:
                await self.store.mark_sent(event.id)
                metrics.WEBHOOKS_SENT.labels(result="ok").inc()
                sent += 1
            else:
                delay = backoff_s(event.attempts + 1, self.base_backoff_s, self.max_backoff_s)
                await self.store.mark_failed(event.id, now + timedelta(seconds=delay), error)
                metrics.WEBHOOKS_SENT.labels(result="failed").inc()
                log.warning(
                    "webhook %s (event %d, try %d) failed: %s; next try in %.0f s",
                    redact_url(event.url),
                    event.id,
                    event.attempts + 1,
                    error,
                    delay,
                )
                failed += 1
        return sent, failed

    async def _post(self, event: OutboxEvent) -> str | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            # No redirects: a 3xx would re-post the call's data to wherever it points and
            # take that host's ack as delivery (issue 10, finding 6). It counts as a failure.
            async with self._session.post(
                event.url, json=event.payload, allow_redirects=False
            ) as response:
                if response.status >= 300:
                    return f"HTTP {response.status}"
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    return "the answer is not JSON"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if not isinstance(answer, dict) or answer.get("ack") != "ok":
            return 'the answer is not {"ack": "ok"}'
        return None

    async def run(self) -> None:
        """Deliver until cancelled: at once when events are queued, else every poll_s."""
        while True:
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:  # a broken store or URL must not stop later deliveries
                # ...but a stop must: a cancellation that reached a PostgreSQL query may
                # surface as the driver's own error on the transaction's rollback.
                if _stop_requested():
                    raise asyncio.CancelledError from None
                log.exception("webhook delivery round failed")
            # ...or be absorbed by it, the round returning as if nothing happened: the task
            # still counts the request (Task.cancelling), and nothing would ever raise it again
            # (test_a_restart_loses_no_event[postgresql] looped here, its stop() waiting).
            if _stop_requested():
                raise asyncio.CancelledError
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose a cancellation
            # that arrives as its timeout fires (CPython gh-86296), and then `stop()` waits
            # for this loop forever (test_a_restart_loses_no_event[postgresql] hung in CI).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()

    def start(self) -> None:
        """Run the delivery loop in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="centralita-webhooks")

    async def stop(self) -> None:
        """Stop delivering (undelivered events stay in the outbox) and close the client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
