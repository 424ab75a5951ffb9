"""The supervisors' live wallboard: `GET /wallboard` (the page) and `GET /wallboard/ws`.

One WebSocket per open wallboard, no polling: on connect the page gets a
`wallboard.snapshot`, then frames of `wallboard.queue` and `wallboard.agent` messages, each
frame a JSON array of what changed since the last one (docs/supervisors.md). The model
(`centralita.wallboard`) reads the AMI stream through `app[AMI_TAPS]`, after the agent-state
mirror; one task pushes its messages at most every `TICK_S`, as one frame encoded once and
written, the same bytes, to every supervisor's socket; the AMI reader never waits for a
socket.

Supervisors only: both routes answer 403 to any other member, checked on every request
(`permissions.is_supervisor`). The agents' action buttons call the supervisor API
(`/api/supervisor/...`), which checks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable

from aiohttp import WSMsgType, web

from centralita.agentstate import MEMBER_EVENTS
from centralita.keys import AGENT_STATES, AMI_TAPS, SETTINGS, STORE, WALLBOARD
from centralita.store import StoreBackend
from centralita.wallboard import CALL_EVENTS, Wallboard
from centralita.web.auth import (
    WS_CLOSE_LOGGED_OUT,
    current_session,
    error,
    require_page,
    same_origin,
)
from centralita.web.console import render_page
from centralita.web.permissions import SUPERVISORS, is_supervisor, require_supervisor

log = logging.getLogger("centralita.wallboard")

HEARTBEAT_S = 25.0
# A stuck socket must not hold the others back: the writes of one frame are bounded
# (WallboardHub.broadcast).
SEND_TIMEOUT_S = 2.0
# Wall screens and supervisors' tabs: dozens, not thousands.
MAX_SOCKETS = 200
# With nothing to push, the loop still wakes this often: the day's counts roll at midnight.
IDLE_WAKE_S = 30.0
SESSION_CHECK_S = 2.0
# At most one frame per socket this often: a burst of events (thousands a second at 200
# calls/s) then costs each socket one write per tick rather than one per message, and the
# model sends each queue or agent once per tick however often it changed within it. Its
# wait adds at most this to a change's way to the screen (bench/wallboard_bench.py).
TICK_S = 0.02


class WallboardHub:
    """The open wallboard sockets and the task that pushes the model's messages to them."""

    def __init__(
        self, model: Wallboard, clock: Callable[[], float], store: StoreBackend | None = None
    ) -> None:
        self.model = model
        self.store = store
        self.clock = clock
        self.sockets: dict[web.WebSocketResponse, tuple[str, str, int]] = {}
        self._wake = asyncio.Event()
        model.changed = self._wake.set
        self.sent = 0  # messages written, every socket counted (bench, tests)
        self.frames = 0  # frames written, every socket counted

    def add(self, ws: web.WebSocketResponse, session: tuple[str, str, int]) -> bool:
        if len(self.sockets) >= MAX_SOCKETS:
            return False
        self.sockets[ws] = session
        return True

    def remove(self, ws: web.WebSocketResponse) -> None:
        self.sockets.pop(ws, None)

    async def run(self) -> None:
        """Push what changed until cancelled; wake up for wrap-ups that end on their own."""
        loop = asyncio.get_running_loop()
        pushed = -TICK_S
        while True:
            deadline = self.model.next_deadline()
            wait = IDLE_WAKE_S if deadline is None else min(IDLE_WAKE_S, deadline - self.clock())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait + 0.01):
                        await self._wake.wait()
            # A change within a tick of the last push waits for the tick's end, with the
            # others that come meanwhile; one after a quiet spell goes at once.
            early = pushed + TICK_S - loop.time()
            if early > 0:
                await asyncio.sleep(early)
            pushed = loop.time()
            self._wake.clear()
            try:
                if self.model.wants_totals and self.store is not None:
                    await self.load_totals(self.store)
                self.model.expire()
                messages = self.model.refresh()
                if messages:
                    await self.broadcast(messages)
            except Exception:  # one bad update must not stop the board
                log.exception("wallboard update failed")

    async def load_totals(self, store: StoreBackend) -> None:
        """The day's counts from the queue-event log (after a start or a reconnect)."""
        self.model.wants_totals = False
        since = self.model.day_start()
        try:
            totals = await store.queue_totals_since(since)
        except Exception:  # the board goes on with its own counts
            log.exception("reading today's queue totals failed")
            return
        self.model.seed_totals(since, totals)

    async def broadcast(self, messages: list[str]) -> None:
        """Write `messages` (JSON texts) to every socket as one frame: their JSON array,
        encoded once.

        A write that waits (a full buffer: aiohttp's send_frame drains past its limit) is
        bounded by one deadline for the whole frame rather than one per socket, which cost
        a timer per socket and tick: a socket still waiting when it passes is dropped, and
        the sockets after it get a new deadline."""
        frame = ("[" + ",".join(messages) + "]").encode()
        count = len(messages)
        sockets = list(self.sockets)
        i = 0
        while i < len(sockets):
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    while i < len(sockets):
                        await self.send(sockets[i], frame, count)
                        i += 1
            except TimeoutError:
                await self.drop(sockets[i], stalled=True)
                i += 1

    async def send(self, ws: web.WebSocketResponse, frame: bytes, count: int) -> None:
        """Write one text frame (UTF-8 bytes, holding `count` messages) to one socket; a
        broken one is dropped (the page reconnects and starts again from a snapshot). A
        slow one is `broadcast`'s to bound."""
        if ws.closed:
            self.remove(ws)
            return
        try:
            await ws.send_frame(frame, WSMsgType.TEXT)
            self.sent += count
            self.frames += 1
        except Exception:
            await self.drop(ws)

    async def drop(self, ws: web.WebSocketResponse, *, stalled: bool = False) -> None:
        """Forget a slow or broken socket and close it. A stalled one (its buffers full) could
        not take a close frame either (the close would wait like the send, and the
        transport's close waits for its buffer to drain): its socket is shut down, which
        ends its connection and its handler."""
        log.info("wallboard socket dropped (slow or closed)")
        self.remove(ws)
        if stalled:
            sock = ws.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
        with contextlib.suppress(Exception):
            await ws.close(code=1011, message=b"too slow")

    async def close_ended_sessions(self, app: web.Application) -> None:
        """Close the sockets of sessions that ended (logout, password change, removal) and
        of members who are no longer supervisors."""
        if not self.sockets:
            return
        ended = await app[STORE].ended_sessions(set(self.sockets.values()))
        site = app[SETTINGS].current.site
        for ws, (extension, sid, _) in list(self.sockets.items()):
            if sid in ended or site.console_permission(extension) not in SUPERVISORS:
                self.remove(ws)
                await ws.close(code=WS_CLOSE_LOGGED_OUT, message=b"session ended")

    async def close_all(self) -> None:
        for ws in list(self.sockets):
            self.remove(ws)
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutdown")


async def _watch_sessions(app: web.Application, hub: WallboardHub) -> None:
    while True:
        await asyncio.sleep(SESSION_CHECK_S)
        try:
            await hub.close_ended_sessions(app)
        except Exception:  # a store hiccup must not end the watch
            log.exception("checking wallboard sessions failed")


async def wallboard_ctx(app: web.Application) -> AsyncIterator[None]:
    """The model and its pusher for the app's lifetime. Appended after `console_ctx` (which
    registers the agent-state mirror) and before the AMI feed: the model reads each event
    and each QueueStatus after the mirror has applied it."""
    model = Wallboard(app[SETTINGS].current.site, app[AGENT_STATES])
    hub = WallboardHub(model, model.clock, app[STORE])
    app[WALLBOARD] = hub
    # Registered after console_ctx's hook: the agents' states are re-derived first.
    # The next refresh sends each open page one `wallboard.snapshot`, from which the page
    # drops the rows no longer there and adds the new ones (Wallboard.configure).
    app[SETTINGS].on_reload("the wallboard", lambda settings: model.configure(settings.site))
    app[AMI_TAPS].add(
        on_event=model.on_event,
        events=CALL_EVENTS | MEMBER_EVENTS,
        on_link=model.set_link,
        resync=(("QueueStatus", model.rebuild_status), ("QueueSummary", model.rebuild_summary)),
    )
    tasks = [
        asyncio.create_task(hub.run(), name="centralita-wallboard"),
        asyncio.create_task(_watch_sessions(app, hub), name="centralita-wallboard-sessions"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def close_sockets(app: web.Application) -> None:
    hub = app.get(WALLBOARD)
    if hub is not None:
        await hub.close_all()


# ----------------------------------------------------------------------------- routes


async def wallboard_page(request: web.Request) -> web.Response:
    """`GET /wallboard` (`?kiosk=1`: the wall screen's view, without the header and the
    agents' actions)."""
    session = await require_page(request)
    require_supervisor(request, session)
    settings = request.app[SETTINGS].current
    return render_page(
        request,
        "wallboard.html",
        session,
        kiosk=request.query.get("kiosk") == "1",
        pause_reasons=settings.console.pause_reasons,
    )


async def wallboard_ws(request: web.Request) -> web.StreamResponse:
    """`GET /wallboard/ws`: the snapshot, then every change (supervisors only)."""
    session = await current_session(request)
    if session is None:
        return error(request, 401, "log in first")
    if not is_supervisor(request, session):
        return error(request, 403, "the wallboard is for supervisors")
    if not same_origin(request):  # cross-site WebSocket hijacking
        return error(request, 403, "WebSocket from another site refused")
    hub = request.app[WALLBOARD]
    # No permessage-deflate: the frames are small, the link a LAN, and compressing would
    # be done again for each socket (the same bytes go to all).
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096, compress=False)
    await ws.prepare(request)
    # What changed so far goes to the sockets already open; this one starts from the
    # snapshot, which is as new (messages computed here are idempotent for the page).
    pending = hub.model.refresh()
    if pending:
        await hub.broadcast(pending)
    if not hub.add(ws, (session.extension, session.sid, session.version)):
        await ws.close(code=1008, message=b"too many open wallboards")
        return ws
    try:
        await ws.send_json(hub.model.snapshot())
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str('{"type":"pong"}')
            # Anything else is ignored: actions go through the supervisor API's POSTs.
    finally:
        hub.remove(ws)
    return ws


def add_routes(router: web.UrlDispatcher) -> None:
    """The wallboard's routes (its model and pusher: `wallboard_ctx`, `close_sockets`)."""
    router.add_get("/wallboard", wallboard_page)
    router.add_get("/wallboard/ws", wallboard_ws)
