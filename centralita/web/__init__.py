"""The agent console and JSON API: login, the `/ws` screen pop, pages, click-to-dial, metrics.

`setup_web(app)` adds the routes and two cleanup contexts to the app built by
`centralita.app.create_app`: `console_ctx` (pop hub and bridge, sessions, the webhook sender)
and `ami_ctx` (the AMI listener feeding the bridge, the webhooks and the call records). The
app serves even when Asterisk's AMI is unreachable: the listener retries in the background
and `/healthz` reports `"ami": {"connected": false, ...}`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jinja2
from aiohttp import web

from ami.client import AmiListener
from ami.protocol import AmiMessage
from ami.tracker import CallChange, CallTracker, CdrEvent
from centralita import metrics
from centralita.app import AGI_SERVER, HEALTH_CHECKS, SETTINGS, STORE
from centralita.pop import FastContacts, PopBridge, PopHub
from centralita.store import Store, cdr_from_ami
from centralita.times import shown
from centralita.web import auth, console
from centralita.web.proxy import setup_proxy
from centralita.web.state import AMI, AUTH, BRIDGE, CDR_WRITER, HUB, TEMPLATES, WEBHOOKS
from centralita.webhooks import WebhookSender
from dialplan.names import OUTBOUND_CONTEXT

log = logging.getLogger("centralita.web")

# How often open console sockets are checked against the store's sessions (a revocation
# made by another process, such as `centralita agent passwd`, reaches them within this).
SESSION_CHECK_S = 2.0

# What the browser may load and run: our own files only, so an injected tag would not run
# even if escaping failed somewhere; no framing (clickjacking of the dial buttons).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class TimedTracker(CallTracker):
    """A CallTracker that notes when the event behind each change arrived.

    The listener hands changes to `on_change` in the order `handle` made them, so a FIFO of
    (change, time) pairs gives each change its event's arrival time (for the pop-latency
    metric: from the event's arrival to the socket send).
    """

    # What "arrived" means: by default the moment the parsed event reaches the tracker; a
    # benchmark may point this at the moment its bytes were read.
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: collections.deque[tuple[CallChange, float]] = collections.deque(
            maxlen=100_000
        )

    def handle(self, msg: AmiMessage) -> list[CallChange]:
        """Apply one message and remember when its changes arrived."""
        arrived = self.clock()
        changes = super().handle(msg)
        for change in changes:
            self.arrivals.append((change, arrived))
        return changes

    def arrival(self, change: CallChange) -> float | None:
        """When the event of `change` arrived (None for changes made by a resync)."""
        if self.arrivals and self.arrivals[0][0] is change:
            return self.arrivals.popleft()[1]
        # Not made by handle() (a resync), or earlier changes were dropped: find it, if at
        # all, and forget whatever precedes it.
        if not any(c is change for c, _ in self.arrivals):
            return None
        while True:
            first, arrived = self.arrivals.popleft()
            if first is change:
                return arrived


class CdrWriter:
    """Writes call records to the store on its own task, in order.

    The listener runs its callbacks one after another; a SQLite commit per `Cdr` awaited
    there would make every pop behind it wait (bench/pop_bench.py: 400 records/s put p99
    in seconds). Records queue here instead (bounded) and pops go straight through.
    """

    def __init__(self, store: Store, maxsize: int = 100_000) -> None:
        self.store = store
        self.queue: asyncio.Queue[CdrEvent] = asyncio.Queue(maxsize)
        self.written = 0
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def put(self, cdr: CdrEvent) -> None:
        """Queue one record (dropped with an error when the queue is full)."""
        try:
            self.queue.put_nowait(cdr)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("call-record queue full: Cdr %s not stored", cdr.unique_id)

    async def _run(self) -> None:
        while True:
            cdr = await self.queue.get()
            try:
                await self.store.upsert_cdr(cdr_from_ami(cdr_headers(cdr)))
                self.written += 1
            except ValueError as exc:
                log.warning("Cdr event for %s not stored: %s", cdr.unique_id, exc)
            except Exception:
                log.exception("Cdr event for %s not stored", cdr.unique_id)
            finally:
                self.queue.task_done()

    def start(self) -> None:
        """Start writing in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="centralita-cdr-writer")

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued record is written."""
        await asyncio.wait_for(self.queue.join(), timeout_s)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (within `timeout_s`), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await self.drain(timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


def cdr_headers(cdr: CdrEvent) -> dict[str, str]:
    """A tracker `CdrEvent` back as `Cdr` event headers, for `store.cdr_from_ami`."""
    headers = {
        "AccountCode": cdr.account_code,
        "Source": cdr.source,
        "Destination": cdr.destination,
        "DestinationContext": cdr.destination_context,
        "CallerID": cdr.caller_id,
        "Channel": cdr.channel,
        "DestinationChannel": cdr.destination_channel,
        "LastApplication": cdr.last_application,
        "LastData": cdr.last_data,
        "StartTime": cdr.start_time,
        "AnswerTime": cdr.answer_time,
        "EndTime": cdr.end_time,
        "Duration": str(cdr.duration),
        "BillableSeconds": str(cdr.billable_seconds),
        "Disposition": cdr.disposition,
        "AMAFlags": cdr.ama_flags,
        "UniqueID": cdr.unique_id,
        "UserField": cdr.user_field,
    }
    linked = cdr.linked_id
    if linked:
        headers["Linkedid"] = linked
    return headers


def templates() -> jinja2.Environment:
    """The console's Jinja2 environment (autoescaped HTML: caller names come from strangers)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("centralita.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["shown"] = shown  # every time on a page: local, with its offset
    return env


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Add the security headers to every answer (not to the WebSocket upgrade)."""
    response = await handler(request)
    if not isinstance(response, web.WebSocketResponse):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith(("/api/", "/calls", "/callbacks", "/complaints")):
            response.headers.setdefault("Cache-Control", "no-store")
    return response


async def console_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sessions, the pop hub and bridge, and the webhook sender for the app's lifetime."""
    settings = app[SETTINGS]
    store = app[STORE]
    app[AUTH] = auth.Auth(auth.load_key(settings.server.secret_key, settings.data_dir))
    hub = PopHub()
    app[HUB] = hub
    fast = FastContacts(store)
    app[BRIDGE] = PopBridge(store, hub, settings.site.crm, on_sent=metrics.pop_sent, fast=fast)
    sender = WebhookSender(
        store,
        settings.webhooks,
        internal_numbers=[a.extension for a in settings.site.agents],
    )
    app[WEBHOOKS] = sender
    if settings.webhooks:
        sender.start()  # also delivers what a previous run left in the outbox
    server = app.get(AGI_SERVER)
    if server is not None:
        server.metrics = metrics.PrometheusAgiMetrics(server.registry)
    watcher = asyncio.create_task(watch_sessions(app), name="centralita-session-watch")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await sender.stop()
        fast.close()


async def close_ended_sessions(app: web.Application) -> int:
    """Close the console sockets whose session ended since they opened: logged out, or a
    password change or `agent remove` (possibly by the CLI, another process) moved the
    agent's session version on. Returns how many sessions were closed."""
    hub = app[HUB]
    open_sessions = hub.sessions()
    if not open_sessions:
        return 0
    ended = await app[STORE].ended_sessions(open_sessions)
    for sid in ended:
        await hub.close_session(sid, code=auth.WS_CLOSE_LOGGED_OUT, message=b"session ended")
    return len(ended)


async def watch_sessions(app: web.Application) -> None:
    """Every SESSION_CHECK_S, close the sockets of sessions that ended."""
    while True:
        await asyncio.sleep(SESSION_CHECK_S)
        try:
            await close_ended_sessions(app)
        except Exception:  # a store hiccup must not end the watch
            log.exception("checking console sessions failed")


async def ami_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the AMI listener: changes -> pops and webhooks, Cdr -> call records."""
    settings = app[SETTINGS]
    site = settings.site
    ast = settings.asterisk
    bridge = app[BRIDGE]
    sender = app[WEBHOOKS]
    store = app[STORE]
    prefix = "PJSIP" if site.sip_driver == "pjsip" else "SIP"
    tracker = TimedTracker(
        [a.extension for a in site.agents], (prefix,), outbound_context=OUTBOUND_CONTEXT
    )

    async def on_change(change: CallChange) -> None:
        try:
            await bridge.on_change(change, tracker.arrival(change))
        finally:
            await sender.on_change(change)

    writer = CdrWriter(store)
    app[CDR_WRITER] = writer
    writer.start()

    async def on_cdr(cdr: CdrEvent) -> None:
        writer.put(cdr)

    listener = AmiListener(
        ast.ami_host,
        ast.ami_port,
        ast.ami_user,
        ast.ami_secret or "",
        tracker=tracker,
        on_change=on_change,
        on_cdr=on_cdr,
        ping_s=ast.ami_ping_s,
        ping_timeout_s=ast.ami_timeout_s,
        action_timeout_s=ast.ami_timeout_s,
        connect_timeout_s=ast.ami_timeout_s,
    )
    app[AMI] = listener
    await listener.start()
    try:
        yield
    finally:
        await listener.stop()
        await writer.stop()


def ami_health(app: web.Application) -> dict[str, object]:
    """The AMI part of /healthz: connected or away (and why)."""
    listener = app.get(AMI)
    if listener is None:
        return {"ami": {"connected": False, "error": "not started"}}
    return {
        "ami": {
            "connected": bool(listener.connected),
            "host": listener.host,
            "port": listener.port,
            "error": None if listener.connected else listener.last_error,
        }
    }


async def close_sockets(app: web.Application) -> None:
    """On shutdown: close every console socket (1001 going away) so the app can stop."""
    hub = app.get(HUB)
    if hub is not None:
        await hub.close_all()


def setup_web(app: web.Application) -> None:
    """Add the console, the JSON API, /ws, /metrics and the AMI listener to the app."""
    app[TEMPLATES] = templates()
    setup_proxy(app)  # first: every handler sees the client behind a trusted proxy
    app.middlewares.append(security_headers)
    app.cleanup_ctx.append(console_ctx)
    app.cleanup_ctx.append(ami_ctx)
    app.on_shutdown.append(close_sockets)
    app[HEALTH_CHECKS].append(ami_health)
    r = app.router
    r.add_get("/login", auth.login_page)
    r.add_post("/login", auth.login)
    r.add_post("/logout", auth.logout)
    r.add_get("/", console.console_page)
    r.add_get("/ws", console.websocket)
    r.add_get("/calls", console.calls_page)
    r.add_get("/calls.csv", console.calls_csv)
    r.add_get("/callbacks", console.callbacks_page)
    r.add_get("/complaints", console.complaints_page)
    r.add_get("/api/calls", console.api_calls)
    r.add_get("/api/contacts", console.api_contacts)
    r.add_post("/api/contacts", console.api_create_contact)
    r.add_post("/api/contacts/{contact_id:[0-9]+}/numbers", console.api_link_number)
    r.add_post("/api/outcomes", console.api_outcome)
    r.add_post("/api/dial", console.api_dial)
    r.add_post("/api/pops/dismiss", console.api_dismiss)
    r.add_post("/api/events/callmyway", console.api_callmyway)
    r.add_get("/metrics", metrics.metrics_handler)
    r.add_static("/static", console.STATIC_DIR, append_version=True)
