"""The FastAGI server: accepts Asterisk's connections and runs one flow task per call.

Built on `asyncio.Protocol` rather than streams: one call costs one task, and each reply
resumes the waiting flow right where it is read, with no per-command task step, future or
timer (agi/driver.py). Bounds
are kept by one sweeper for the whole server (header deadline, reply deadline), so a command
costs no timer of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from types import CoroutineType
from typing import Any

from agi.cores import CommandTimes, ProtocolCore
from agi.driver import FlowDriver, ReplyWaiter
from agi.protocol import AgiConnection, AgiError, AgiProtocolError, AgiRequest, Hangup, Reply
from agi.router import FLOWS, FlowRegistry
from agi.session import AgiSession, CallerHangup, ReplyTimeout
from dialplan.names import ROUTE_VAR

log = logging.getLogger("centralita.agi")

# One read: a header block (16 KiB cap) and more fit; Asterisk's own line buffer is 8 KiB.
READ_BUFFER = 64 * 1024

# Refused connections are logged once per peer per this many seconds, with a count.
REFUSED_LOG_S = 60.0
MAX_REFUSAL_PEERS = 1024


@dataclass(frozen=True)
class ServerLimits:
    """The bounds of the server (every wait has one: principle 3 in docs/design.md#principles)."""

    max_sessions: int = 5000
    # Sessions one peer address may hold (None: max_sessions). See also `AgiServer.
    # evict_idle`: a full server makes room by closing its oldest idle connection.
    max_sessions_per_peer: int | None = None
    header_timeout_s: float = 5.0
    reply_timeout_s: float = 60.0
    shutdown_grace_s: float = 10.0


class AgiMetrics:
    """Hooks for metrics; the default does nothing (the web app plugs in Prometheus)."""

    # The upper bounds, in seconds, of the buckets each command's round trip is counted in,
    # as its reply arrives (agi/cores.py CommandTimes).
    command_buckets: tuple[float, ...] = (
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    )  # fmt: skip

    def session_ended(self, script: str, outcome: str, seconds: float) -> None:
        """A flow ended: outcome is ok, hangup, error, timeout, unknown-flow."""

    def command_times(self, counts: list[int], total: float) -> None:
        """Commands' round trips since the last call: how many fell in each bucket of
        `command_buckets` (a time on a bound counts in it; the last bucket is above every
        bound), and their sum in seconds. Handed over at each sweep of the server, and
        whenever the metrics are read (`AgiServer.flush_command_times`)."""


class _AgiProtocol(ProtocolCore, asyncio.BufferedProtocol):
    """One FastAGI connection.

    A BufferedProtocol reading into one buffer shared by the whole server: a plain Protocol
    has asyncio `recv()` a fresh 256 KiB bytes object per read, which malloc serves with
    mmap/mremap/munmap, three system calls per read (seen with `strace -c`). The bytes are
    copied out in `buffer_updated` before any other connection reads, so sharing is safe.

    The command path (`get_buffer`, `buffer_updated`, `send`, `command`) and its fields are
    the core's (agi/cores.py): C when built, else Python. Whatever is not a plain reply comes
    back here, to `data_received`.
    """

    # The core holds _closed, _conn, _pending, _read_buffer, _reply_timeout, _times, _write,
    # deadline, hung_up, sent_at and waiter.
    __slots__ = ("_server", "_transport", "counted", "loop", "peer", "request", "task")

    def __init__(self, server: AgiServer) -> None:
        self._server = server
        self._conn = AgiConnection()
        self._transport: asyncio.Transport | None = None
        self._write = None
        self._closed = False
        self._read_buffer = server.read_buffer
        self._times = server.command_times
        self._reply_timeout = server.limits.reply_timeout_s
        self.loop = server.loop
        self.waiter = ReplyWaiter(self.loop)  # the one reply waiter of this session
        self._pending = None
        self.hung_up = False
        self.request: AgiRequest | None = None
        self.task: asyncio.Task[None] | None = None  # the call's, once its headers are read
        self.deadline = 0.0
        self.sent_at = 0.0  # when the command waiting for its reply was written
        self.peer = "?"
        self.counted = False  # in the server's per-peer counts

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # A stream transport, though not always an `asyncio.Transport` instance: uvloop's
        # TCPTransport implements the same methods without deriving from it (agi/loops.py).
        self._transport = transport
        server = self._server
        peername = transport.get_extra_info("peername")
        self.peer = peer = str(peername[0]) if peername else "?"
        allowed = server.peer_verdicts.get(peer)  # peer_allowed's cache, looked at first
        if not (server.peer_allowed(peer) if allowed is None else allowed):
            server.warn_refused(self.peer, "not in allowed_peers")
            transport.abort()
            return
        limits = server.limits
        # Sessions are counted per peer only under a per-peer cap: without one, the total
        # cap alone decides (a peer holding max_sessions holds every session).
        per_peer = limits.max_sessions_per_peer
        if per_peer is not None:
            if server.peer_sessions.get(peer, 0) >= per_peer and not server.evict_idle(peer):
                server.warn_refused(peer, f"{per_peer} sessions from this peer")
                transport.abort()
                return
        if len(server.sessions) >= limits.max_sessions and not server.evict_idle():
            # Closing at once lets Asterisk's dialplan take its fallback (AGISTATUS).
            server.warn_refused(self.peer, f"{len(server.sessions)} sessions")
            transport.abort()
            return
        self._write = transport.write
        self.deadline = server.now() + limits.header_timeout_s
        server.sessions.add(self)
        server.idle[self] = None
        if per_peer is not None:
            server.count_peer(peer, 1)
            self.counted = True

    def data_received(self, data: bytes) -> None:
        if self.request is None:
            request = self._conn.receive_headers(data)  # the first read of nearly every call
            if request is not None:
                self._server.start_flow(self, request)
                return
        try:
            events = self._conn.receive_data(data)
        except AgiProtocolError as exc:
            self._protocol_error(exc)
            return
        if len(events) > 1 and any(type(e) is Hangup for e in events):
            # A HANGUP read together with a reply: let the flow know before it resumes.
            self.hung_up = True
        for event in events:
            if type(event) is Reply:
                pending = self._pending
                if pending is None:
                    log.warning("%s: reply with no command waiting: %r", self._label(), event.text)
                    continue
                self._pending = None
                self._times.add(self._server.now() - self.sent_at)
                if event.code == 511:  # a dead channel (docs/asterisk-protocol.md#agi-hangup)
                    self.hung_up = True
                # Resumes the flow right here (see ReplyWaiter).
                pending.set_result(event, self.hung_up)
            elif type(event) is Hangup:
                self.hung_up = True
            elif type(event) is AgiRequest:
                self._server.start_flow(self, event)

    def eof_received(self) -> bool | None:
        try:
            self._conn.receive_data(b"")
        except AgiProtocolError as exc:
            if self.request is None:
                log.info("FastAGI peer %s closed before the end of its headers", self.peer)
            else:
                log.info("%s: %s", self._label(), exc)
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed:  # closed by the peer, or aborted (close and abort forget)
            self._closed = True
            self._forget()
        # The transport refers to this protocol until its loop lets go: drop our side of the
        # cycle now, so that the call's objects are freed without the garbage collector.
        self._transport = None
        self._write = None
        self.hung_up = True
        pending = self._pending
        if pending is not None and not pending.done():
            self._pending = None
            pending.set_exception(CallerHangup("the connection closed"))

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._forget()
            self._transport.close()

    def abort(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._forget()
            self._transport.abort()

    def _forget(self) -> None:
        """Leave the server's sessions once the connection is closed by either side.

        Also when we close it, not only in connection_lost: uvloop closes the socket at once
        and calls connection_lost on a later turn, so the peer could read its EOF while the
        server still counted the session (test_robust_against_hostile_peers_while_a_call_runs
        [uvloop] saw one left over under load).
        """
        server = self._server
        server.sessions.discard(self)
        server.idle.pop(self, None)
        if self.counted:
            self.counted = False
            server.count_peer(self.peer, -1)

    # -- bounds --------------------------------------------------------------------------------

    def check_deadline(self, now: float) -> None:
        """Called by the sweeper: enforce the header and reply bounds."""
        if not self.deadline or now < self.deadline:
            return
        if self.request is None:
            self._server.warn_refused(self.peer, "no complete headers in time", level=logging.INFO)
            self.deadline = 0.0
            if self._transport is not None:
                self._transport.abort()
            return
        pending = self._pending
        if pending is not None and not pending.done():
            self._pending = None
            self.deadline = 0.0
            # The sweeper is a task: complete the waiter from a plain callback instead.
            self._server.loop.call_soon(
                pending.set_exception, ReplyTimeout("Asterisk did not answer in time")
            )

    def _protocol_error(self, exc: AgiProtocolError) -> None:
        log.warning("%s: protocol error: %s; closing", self._label(), exc)
        pending = self._pending
        if pending is not None and not pending.done():
            self._pending = None
            pending.set_exception(CallerHangup(f"protocol error: {exc}"))
        if self._transport is not None:
            self._transport.abort()

    def _label(self) -> str:
        if self.request is None:
            return f"peer {self.peer}"
        return f"[{self.request.uniqueid} {self.request.channel}]"


class AgiServer:
    """Serves FastAGI on host:port, routing each call to a registered flow."""

    def __init__(
        self,
        registry: FlowRegistry = FLOWS,
        *,
        context: Any = None,
        host: str = "127.0.0.1",
        port: int = 4573,
        allowed_peers: Iterable[str] = ("127.0.0.1/32", "::1/128"),
        limits: ServerLimits | None = None,
        fallback_route: str | None = None,
        metrics: AgiMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.context = context
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self.fallback_route = fallback_route
        self.metrics = metrics or AgiMetrics()
        self._networks = [ipaddress.ip_network(p, strict=False) for p in allowed_peers]
        # Address -> allowed, for each address seen (peer_allowed's cache, bounded).
        self.peer_verdicts: dict[str, bool] = {}
        # Sessions per peer address (kept under a per-peer cap only); connections still
        # waiting for their headers, oldest first.
        self.peer_sessions: dict[str, int] = {}
        self.idle: dict[_AgiProtocol, None] = {}
        # Peer -> (when its last refusal was logged, refusals not logged since).
        self._refusals: dict[str, tuple[float, int]] = {}
        self.sessions: set[_AgiProtocol] = set()
        self.read_buffer = memoryview(bytearray(READ_BUFFER))
        # Commands' round trips, counted as each reply arrives (see flush_command_times).
        self.command_times = CommandTimes(self.metrics.command_buckets)
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.loop = asyncio.get_event_loop_policy().get_event_loop()
        # The clock of the deadlines and of each command's round trip, read twice a command:
        # time.monotonic itself, which asyncio's loop.time() only wraps in a Python call.
        self.now: Callable[[], float] = time.monotonic

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (port 0 picks a free port: see `self.port` afterwards)."""
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(
            functools.partial(_AgiProtocol, self),  # no lambda frame per connection
            self.host,
            self.port,
            backlog=4096,
            reuse_address=True,
        )
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._sweeper = self.loop.create_task(self._sweep())
        log.info("FastAGI listening on %s:%d", self.host, self.port)

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting, let calls in a flow finish for `grace_s`, then close the rest."""
        grace = self.limits.shutdown_grace_s if grace_s is None else grace_s
        if self._server is not None:
            self._server.close()
        if self.tasks:
            log.info("waiting up to %.1f s for %d calls to finish", grace, len(self.tasks))
            _, still_running = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running, timeout=1.0)
        for session in list(self.sessions):
            session.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            await self._server.wait_closed()
        log.info("FastAGI server stopped")

    async def _sweep(self) -> None:
        tick = max(
            0.05, min(1.0, self.limits.header_timeout_s / 4, self.limits.reply_timeout_s / 4)
        )
        while True:
            await asyncio.sleep(tick)
            self.flush_command_times()
            now = self.now()
            for session in list(self.sessions):
                session.check_deadline(now)

    # -- per call --------------------------------------------------------------------------------

    def flush_command_times(self) -> None:
        """Give the commands' round trips counted so far to the metrics: at each sweep, and
        when they are read (centralita/web/prometheus.py), so a scrape sees every command
        whose reply has arrived."""
        counts, total = self.command_times.take()
        if any(counts):
            self.metrics.command_times(counts, total)

    def count_peer(self, peer: str, delta: int) -> None:
        """Move a peer's session count (forgetting peers at zero)."""
        left = self.peer_sessions.get(peer, 0) + delta
        if left > 0:
            self.peer_sessions[peer] = left
        else:
            self.peer_sessions.pop(peer, None)

    def evict_idle(self, peer: str | None = None) -> bool:
        """Close the oldest connection (of `peer`, or of anyone) that has not sent its
        headers, to make room for a new one; False when there is none.

        5,000 idle connections from an allowed peer filled max_sessions, and a real call
        was refused or waited out the header window (issue 10, finding 11). Asterisk sends
        its headers as soon as it connects (docs/asterisk-protocol.md#agi-headers), so the oldest
        idle connection is the least likely to be a call.
        """
        oldest = next((p for p in self.idle if peer is None or p.peer == peer), None)
        if oldest is None:
            return False
        del self.idle[oldest]
        self.sessions.discard(oldest)
        if oldest.counted:
            oldest.counted = False
            self.count_peer(oldest.peer, -1)
        self.warn_refused(oldest.peer, "idle while the server is full", level=logging.INFO)
        oldest.abort()
        return True

    def warn_refused(self, peer: str, reason: str, *, level: int = logging.WARNING) -> None:
        """Log a refused or closed connection: once per peer per REFUSED_LOG_S, then how many
        more there were (10,000 refused connections wrote 10,000 lines: finding 11)."""
        now = self.now()
        last, quiet = self._refusals.get(peer, (None, 0))
        if last is not None and now - last < REFUSED_LOG_S:
            self._refusals[peer] = (last, quiet + 1)
            return
        if len(self._refusals) >= MAX_REFUSAL_PEERS and peer not in self._refusals:
            # Many addresses (a spoofing flood): forget the oldest, keep memory bounded.
            del self._refusals[next(iter(self._refusals))]
        self._refusals[peer] = (now, 0)
        more = f" ({quiet} more since the last line)" if quiet else ""
        log.log(level, "FastAGI connection from %s closed: %s%s", peer, reason, more)

    def peer_allowed(self, address: str) -> bool:
        allowed = self.peer_verdicts.get(address)
        if allowed is None:
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                allowed = False
            else:
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                allowed = any(ip in network for network in self._networks)
            if len(self.peer_verdicts) < 4096:
                self.peer_verdicts[address] = allowed
        return allowed

    def start_flow(self, proto: _AgiProtocol, request: AgiRequest) -> asyncio.Task[None]:
        """The header block of `proto` is read: run the call's flow."""
        proto.request = request
        self.idle.pop(proto, None)
        proto.deadline = 0.0
        # The Task made here, named after the call: uvloop's create_task formats a default
        # name ("Task-N") before setting the one given, once for every call.
        proto.task = task = asyncio.Task(
            self._run(proto, request),
            loop=self.loop,
            name="agi " + request.fields.get("uniqueid", ""),
        )
        self.tasks.add(task)
        return task

    async def _run(self, proto: _AgiProtocol, request: AgiRequest) -> None:
        task = proto.task  # this one's (asyncio.current_task(), without its Python call)
        assert task is not None
        session = AgiSession(request, proto, self.context)
        flow = self.registry.get(request.script)
        started = self.now()
        outcome = "ok"
        if flow is None:
            # Closing leaves the channel variables unset, so the dialplan takes its fallback.
            session.log.warning(
                "no flow named %r; closing so the dialplan falls back", request.script
            )
            self.metrics.session_ended(request.script, "unknown-flow", 0.0)
            proto.close()
            self.tasks.discard(task)
            return
        try:
            running = flow(session, self.context)
            # The exact type first: an ABC's isinstance is a Python call (once for every call).
            if type(running) is CoroutineType or isinstance(running, Coroutine):
                # Replies resume the flow without a task step each (agi/driver.py).
                await FlowDriver(running, proto.waiter, self.loop, task)
            else:
                await running
        except CallerHangup:
            outcome = "hangup"
            session.log.debug("caller hung up")
        except ReplyTimeout:
            outcome = "timeout"
            session.log.warning("Asterisk did not answer a command in time; ending the session")
        except asyncio.CancelledError:
            outcome = "cancelled"
            session.log.warning("flow cancelled (server shutting down)")
            raise
        except Exception:
            outcome = "error"
            session.log.exception(
                "flow %r failed; sending the call to the fallback route", request.script
            )
            await self._fallback(session, proto)
        finally:
            self.metrics.session_ended(request.script, outcome, self.now() - started)
            proto.close()
            proto.waiter.release()
            self.tasks.discard(task)

    async def _fallback(self, session: AgiSession, proto: _AgiProtocol) -> None:
        """After a flow error the caller must not hear silence: route them to the fallback."""
        if self.fallback_route is None or proto.hung_up or session.ended:
            return
        try:
            await session.set_variable(ROUTE_VAR, self.fallback_route)
        except AgiError as exc:  # hung up, refused, no reply in time: nothing more to do
            session.log.warning("could not set the fallback route: %s", exc)
