"""The AMI listener: one managed connection to Asterisk's manager port feeding the call tracker.

    tracker = CallTracker(["1001", "1002"], ("PJSIP",))
    listener = AmiListener("127.0.0.1", 5038, "centralita", secret, tracker=tracker,
                           on_change=push_to_agent, on_cdr=store_cdr)
    await listener.start()     # returns at once; connects and retries in the background
    ...
    await listener.stop()

What it does, per connection (docs/asterisk-protocol.md#ami-login): read the banner, `Login`
(MD5 challenge: `Challenge`, then `AuthType: MD5` with `Key` = md5(challenge + secret)) with an
`Events:` mask limited to the classes the tracker reads (the server filters the events,
docs/asterisk-protocol.md#ami-events: nothing else reaches us), rebuild the state
(`DeviceStateList`, then `CoreShowChannels`, each applied at the point of the stream where its
list completes, so no event is applied twice or lost: a response arrives in one piece),
then read events into the tracker and `Ping` every `ping_s`. A Ping unanswered within
`ping_timeout_s` while nothing at all was read meanwhile (a Pong queued behind a backlog of
events is late, not lost: dropping a busy link would lose the backlog too), EOF, a framing
error or a refused login ends the connection; the next attempt
comes after a capped, jittered exponential backoff (0.5 s doubling to 5 s by default: AMI is on
the same machine or LAN, a refused connect costs nothing, and every second without AMI is a
screen pop lost; the real-Asterisk suite restarts Asterisk under a running Centralita).

The connection is written on our own sans-IO parser (`ami.protocol`) rather than panoramisk's
Manager because panoramisk decodes each TCP read on its own with errors ignored (a UTF-8 name
split across reads loses characters), splits packets on CRLF only (the traces and Asterisk's
reader accept LF), buffers without bound, never notices a Ping left unanswered, retries at a
fixed interval and builds header lines without refusing CR/LF.

Callbacks run in order on a separate task, so a slow consumer never stalls the socket
(Asterisk drops readers slower than its write timeout, docs/asterisk-protocol.md#ami-connection);
each call is bounded by `callback_timeout_s` and its exceptions are logged, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ami.calls import CallChange
from ami.cdr import CallRecord, CdrError, parse_cdr

# AmiError is the package's base (ami/protocol.py); named here too, as the client's errors'.
from ami.protocol import AmiError as AmiError
from ami.protocol import (
    AmiMessage,
    AmiParser,
    AmiProtocolError,
    HeadersArg,
    encode_action,
    md5_key,
)
from ami.tracker import CallTracker

log = logging.getLogger(__name__)

# The classes the tracker needs (docs/asterisk-protocol.md#ami-call-events): call (channels, dials,
# bridges, transfers, device states, OriginateResponse), agent (queue events), dialplan (VarSet of
# CENTRALITA_*), cdr.
DEFAULT_EVENTS = ("call", "agent", "dialplan", "cdr")

MAX_LIST_ITEMS = 100_000

ChangeCallback = Callable[[CallChange], Awaitable[None]]
CdrCallback = Callable[[CallRecord], Awaitable[None]]
# Called in the reader's order, synchronously: must be quick and must not raise for long.
EventHook = Callable[[AmiMessage], object]
ListHook = Callable[[list[AmiMessage]], object]
LinkHook = Callable[[bool], object]


class AmiNotConnected(AmiError):
    """There is no logged-in AMI connection (or it was lost while waiting)."""


class AmiAuthError(AmiError):
    """Asterisk refused the login (wrong user or secret, ACL)."""


class AmiTimeout(AmiError, TimeoutError):
    """Asterisk did not answer an action within its bound."""


@dataclass
class ListenerStats:
    """Counters for metrics and tests."""

    connects: int = 0  # logins that succeeded
    attempts: int = 0  # connection attempts
    events: int = 0  # events read
    changes: int = 0  # call changes queued for on_change
    cdrs: int = 0  # Cdr records queued for on_cdr
    duplicate_cdrs: int = 0
    unreadable_cdrs: int = 0  # Cdr events that are not a call record (logged)
    dropped: int = 0  # changes/records lost because the callback queue was full
    ping_failures: int = 0


@dataclass
class _ListAction:
    future: asyncio.Future[tuple[AmiMessage, list[AmiMessage]]]
    on_complete: Callable[[list[AmiMessage]], object] | None
    response: AmiMessage | None = None
    items: list[AmiMessage] = field(default_factory=list)


@dataclass
class _EventWaiter:
    name: str
    future: asyncio.Future[AmiMessage]


class AmiListener:
    """A self-healing AMI session that turns events into `CallChange`s and `CallRecord`s."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        tracker: CallTracker,
        on_change: ChangeCallback | None = None,
        on_cdr: CdrCallback | None = None,
        events: Sequence[str] = DEFAULT_EVENTS,
        ping_s: float = 20.0,
        ping_timeout_s: float = 5.0,
        action_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 5.0,
        callback_timeout_s: float = 30.0,
        queue_max: int = 100_000,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
        on_link: LinkHook | None = None,
        resync: Sequence[tuple[str, ListHook]] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.tracker = tracker
        self.on_change = on_change
        self.on_cdr = on_cdr
        self.events = tuple(events)
        self.ping_s = ping_s
        self.ping_timeout_s = ping_timeout_s
        self.action_timeout_s = action_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.callback_timeout_s = callback_timeout_s
        # Besides the tracker: `on_event` sees every event (the agent-state mirror), `resync`
        # lists (e.g. QueueStatus) are asked for after each login and applied in stream
        # order, and `on_link(True/False)` is told when the link is ready or lost.
        self.on_event = on_event
        self.on_link = on_link
        self.resync = tuple(resync)
        self.stats = ListenerStats()
        self.last_error: str | None = None
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._queue: asyncio.Queue[CallChange | CallRecord] = asyncio.Queue(queue_max)
        self._ids = itertools.count(1)
        self._connected = False
        self._ready = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._lists: dict[str, _ListAction] = {}
        self._waiters: dict[str, _EventWaiter] = {}
        self._banner: asyncio.Future[str] | None = None
        self._recent_cdrs: dict[bytes, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_read = 0.0  # loop time of the latest read: the link is alive

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while logged in to Asterisk."""
        return self._connected

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._task is not None:
            return
        self._stopping = False
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="ami-dispatch")
        self._task = asyncio.create_task(self._run(), name="ami-listener")

    async def stop(self) -> None:
        """Log off (briefly), close the connection and stop retrying."""
        self._stopping = True
        if self._connected:
            with contextlib.suppress(AmiError, OSError, ValueError):
                await self._request("Logoff", [], min(1.0, self.action_timeout_s))
        for task in (self._task, self._dispatcher):
            if task is not None:
                task.cancel()
        for task in (self._task, self._dispatcher):
            if task is not None:
                # Python 3.11's wait_for drops a cancellation that arrives as its future
                # completes (gh-86296): a stop during the login round trips was lost and the
                # session lived on. Cancel again until the task is really done.
                while not task.done():
                    await asyncio.wait({task}, timeout=0.2)
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._dispatcher = None
        self._teardown("listener stopped")

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Wait until logged in and the state is rebuilt (AmiTimeout otherwise)."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            raise AmiTimeout(
                f"not connected to AMI within {timeout_s} s: {self.last_error or 'no answer'}"
            ) from None

    # -- actions ----------------------------------------------------------------------------

    async def action(
        self, name: str, headers: HeadersArg = (), timeout_s: float | None = None
    ) -> AmiMessage:
        """Send an action and return its Response (matched by ActionID), within `timeout_s`.

        The headers are encoded (CR/LF refused with ValueError) before anything is checked or
        sent. A `Response: Error` is returned, not raised; check `msg.is_success`.
        """
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        encode_action(name, items)  # refuse bad values even while disconnected
        if not self._connected:
            raise AmiNotConnected(f"not connected to AMI: {self.last_error or 'connecting'}")
        return await self._request(name, items, timeout_s or self.action_timeout_s)

    async def list_action(
        self,
        name: str,
        headers: HeadersArg = (),
        timeout_s: float | None = None,
        on_complete: ListHook | None = None,
    ) -> tuple[AmiMessage, list[AmiMessage]]:
        """Send a list action (QueueStatus, CoreShowChannels ...): its ack and its items;
        `on_complete(items)` runs in stream order, before any event that follows the list."""
        if not self._connected:
            raise AmiNotConnected(f"not connected to AMI: {self.last_error or 'connecting'}")
        return await self._list(name, headers, timeout_s or self.action_timeout_s, on_complete)

    async def relist(self) -> None:
        """Ask for the `resync` lists (QueueStatus ...), each applied by its hook where it
        completes in the stream: at login, and again when what the hooks derive from the
        config changed (CoreShowChannels is not asked again). Not logged in: nothing to do,
        the next login asks. Raises as `list_action` if the link goes meanwhile."""
        if not self._connected:
            return
        for action, apply in self.resync:
            ack, _ = await self._list(action, (), self.action_timeout_s, apply)
            if not ack.is_success:
                log.warning("AMI %s refused: %s", action, ack.value("Message"))

    def expect_event(self, action_id: str, name: str) -> asyncio.Future[AmiMessage]:
        """A future for the event `name` carrying `action_id` (e.g. OriginateResponse).

        Register it before sending the action; call `cancel_expect()` when done with it.
        """
        future: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._waiters[action_id] = _EventWaiter(name, future)
        return future

    def cancel_expect(self, action_id: str) -> None:
        """Forget a waiter registered with `expect_event()`."""
        waiter = self._waiters.pop(action_id, None)
        if waiter is not None and not waiter.future.done():
            waiter.future.cancel()

    def _next_id(self) -> str:
        return f"centralita-{next(self._ids)}"

    async def _write(self, data: bytes, timeout_s: float) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiNotConnected("the AMI connection is closed")
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), timeout_s)
        except TimeoutError:
            raise AmiTimeout(f"AMI did not take our data within {timeout_s} s") from None
        except ConnectionError as exc:
            raise AmiNotConnected(f"AMI connection lost: {exc}") from None

    async def _request(self, name: str, headers: HeadersArg, timeout_s: float) -> AmiMessage:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        action_id = next((v for n, v in items if n.lower() == "actionid"), None)
        if action_id is None:
            action_id = self._next_id()
            items.insert(0, ("ActionID", action_id))
        if not action_id or action_id in self._pending or action_id in self._lists:
            raise ValueError(f"ActionID {action_id!r} is empty or already in use")
        data = encode_action(name, items)
        future: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = future
        try:
            await self._write(data, timeout_s)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise AmiTimeout(f"no response to {name} within {timeout_s} s") from None
        finally:
            self._pending.pop(action_id, None)

    async def _list(
        self,
        name: str,
        headers: HeadersArg,
        timeout_s: float,
        on_complete: ListHook | None = None,
    ) -> tuple[AmiMessage, list[AmiMessage]]:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        action_id = self._next_id()
        data = encode_action(name, [("ActionID", action_id), *items])
        future: asyncio.Future[tuple[AmiMessage, list[AmiMessage]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._lists[action_id] = _ListAction(future, on_complete)
        try:
            await self._write(data, timeout_s)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise AmiTimeout(f"no complete {name} list within {timeout_s} s") from None
        finally:
            self._lists.pop(action_id, None)

    # -- the connection ---------------------------------------------------------------------

    def backoff_delay(self, failures: int) -> float:
        """Seconds to wait before attempt `failures` + 1: capped doubling, jittered to 50-100 %."""
        delay: float = min(self.backoff_max_s, self.backoff_min_s * 2.0 ** min(failures, 30))
        return delay * self._rng.uniform(0.5, 1.0)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self.stats.attempts += 1
            try:
                await self._session()
            except AmiAuthError as exc:
                self.last_error = f"login refused: {exc}"
                log.error("AMI %s:%s %s", self.host, self.port, self.last_error)
            except (OSError, AmiError, AmiProtocolError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)
                log.warning("AMI %s:%s connection: %s", self.host, self.port, self.last_error)
            except Exception as exc:  # a bug must not end the retries: Centralita needs AMI back
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("AMI %s:%s unexpected error", self.host, self.port)
            was_up = self._connected
            self._teardown(self.last_error or "connection ended")
            if self._stopping:
                break
            failures = 0 if was_up else failures + 1
            await asyncio.sleep(self.backoff_delay(failures))

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout_s
        )
        self._writer = writer
        loop = asyncio.get_running_loop()
        self._banner = loop.create_future()
        read_task = asyncio.create_task(self._read_loop(reader), name="ami-read")
        ping_task: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(asyncio.shield(self._banner), self.connect_timeout_s)
            # MD5 challenge login (docs/asterisk-protocol.md#ami-login): the secret itself is never
            # sent.
            challenge = await self._request(
                "Challenge", [("AuthType", "MD5")], self.action_timeout_s
            )
            if not challenge.is_success or not challenge.value("Challenge"):
                raise AmiAuthError(challenge.value("Message") or "Challenge refused")
            login = await self._request(
                "Login",
                [
                    ("Username", self.username),
                    ("AuthType", "MD5"),
                    ("Key", md5_key(challenge.value("Challenge"), self._secret)),
                    ("Events", ",".join(self.events) or "off"),
                ],
                self.action_timeout_s,
            )
            if not login.is_success:
                raise AmiAuthError(login.value("Message") or "Authentication failed")
            self._connected = True
            self.stats.connects += 1
            self.last_error = None
            log.info("AMI %s:%s logged in as %s", self.host, self.port, self.username)
            # Rebuild: device states (optional module,
            # docs/asterisk-protocol.md#device-state-lists-and-getvar), then the live channels.
            dev_ack, _ = await self._list(
                "DeviceStateList", (), self.action_timeout_s, self.tracker.set_device_states
            )
            if not dev_ack.is_success:
                log.info("AMI DeviceStateList unavailable: %s", dev_ack.value("Message"))
            chan_ack, _ = await self._list(
                "CoreShowChannels", (), self.action_timeout_s, self._resync
            )
            if not chan_ack.is_success:
                raise AmiError(f"CoreShowChannels refused: {chan_ack.value('Message')}")
            await self.relist()
            self._ready.set()
            self._tell_link(True)
            ping_task = asyncio.create_task(self._pinger(), name="ami-ping")
            done, _ = await asyncio.wait(
                {read_task, ping_task}, return_when=asyncio.FIRST_COMPLETED
            )
            for finished in done:
                finished.result()  # re-raise what ended the connection
            raise AmiNotConnected("AMI connection ended")
        finally:
            for task in (read_task, ping_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if read_task.done() and not read_task.cancelled():
                read_task.exception()  # retrieved, so asyncio does not warn about it

    async def _pinger(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.ping_s)
            sent_at = loop.time()
            try:
                await self._request("Ping", [], self.ping_timeout_s)
            except AmiTimeout:
                if self._last_read > sent_at:
                    continue  # the Pong waits behind events still being read: alive
                self.stats.ping_failures += 1
                raise AmiTimeout(
                    f"no answer to Ping within {self.ping_timeout_s} s: connection dead"
                ) from None

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        parser = AmiParser()
        reason = "AMI closed the connection"
        try:
            loop = asyncio.get_running_loop()
            while True:
                data = await reader.read(65536)
                self._last_read = loop.time()
                if not data:
                    parser.receive_eof()
                    raise AmiNotConnected(reason)
                for msg in parser.receive_data(data):
                    self._on_message(msg)
        except (OSError, AmiProtocolError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            # Whoever waits for an answer learns now, not at its timeout.
            self._fail_waiting(reason)

    def _fail_waiting(self, reason: str) -> None:
        error = AmiNotConnected(f"AMI connection lost: {reason}")
        futures: list[asyncio.Future[Any]] = [
            *self._pending.values(),
            *(lst.future for lst in self._lists.values()),
            *(w.future for w in self._waiters.values()),
        ]
        if self._banner is not None:
            futures.append(self._banner)
        for future in futures:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: no "never retrieved" log if nobody awaits
        self._pending.clear()
        self._lists.clear()
        self._waiters.clear()

    def _tell_link(self, up: bool) -> None:
        if self.on_link is not None:
            try:
                self.on_link(up)
            except Exception:
                log.exception("AMI link hook failed")

    def _teardown(self, reason: str) -> None:
        if self._ready.is_set():
            self._tell_link(False)
        self._connected = False
        self._ready.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.transport.abort()
        self._fail_waiting(reason)

    # -- reading ----------------------------------------------------------------------------

    def _on_message(self, msg: AmiMessage) -> None:
        kind = msg.kind
        if kind == "event":
            self._on_event(msg)
        elif kind == "response":
            self._on_response(msg)
        elif kind == "banner" and self._banner is not None and not self._banner.done():
            self._banner.set_result(msg.name)

    def _on_response(self, msg: AmiMessage) -> None:
        action_id = msg.action_id or ""
        lst = self._lists.get(action_id)
        if lst is not None:
            lst.response = msg
            if not msg.is_success or msg.value("EventList").lower() != "start":
                del self._lists[action_id]
                if not lst.future.done():
                    lst.future.set_result((msg, []))
            return
        future = self._pending.get(action_id)
        if future is not None and not future.done():
            future.set_result(msg)

    def _on_event(self, msg: AmiMessage) -> None:
        action_id = msg.action_id
        if action_id is not None:
            lst = self._lists.get(action_id)
            if lst is not None and "Privilege" not in msg:
                # A list item or the list's end (docs/asterisk-protocol.md#ami-lists); applied right
                # here, in stream order.
                if msg.value("EventList").lower() == "complete":
                    del self._lists[action_id]
                    if lst.on_complete is not None:
                        lst.on_complete(lst.items)
                    if not lst.future.done():
                        lst.future.set_result((lst.response or msg, lst.items))
                elif len(lst.items) < MAX_LIST_ITEMS:
                    lst.items.append(msg)
                return
            waiter = self._waiters.get(action_id)
            if waiter is not None and waiter.name == msg.name and not waiter.future.done():
                waiter.future.set_result(msg)
        self.stats.events += 1
        if self.on_event is not None:
            try:
                self.on_event(msg)
            except Exception:  # as for the tracker: one odd event must not cost the link
                log.exception("AMI event hook failed on %s", msg.name)
        try:
            changes = self.tracker.handle(msg)
        except Exception:  # one odd event must not cost the connection (DESIGN principle 5)
            log.exception("AMI tracker failed on %s (Uniqueid %s)", msg.name, msg.get("Uniqueid"))
            changes = []
        for change in changes:
            self._emit(change)
        if msg.name == "Cdr":
            try:
                cdr = parse_cdr(msg)
            except CdrError as exc:
                self.stats.unreadable_cdrs += 1
                log.warning("Cdr event for %s is not a call record: %s", msg.get("UniqueID"), exc)
            else:
                if cdr is not None:
                    self._emit_cdr(cdr)

    def _resync(self, items: list[AmiMessage]) -> None:
        changes = self.tracker.resync(items)
        if changes:
            log.info("AMI resync: %d change(s) after reconnect", len(changes))
        for change in changes:
            self._emit(change)

    def _emit_cdr(self, cdr: CallRecord) -> None:
        key = cdr.key
        if key in self._recent_cdrs:
            self.stats.duplicate_cdrs += 1
            return
        self._recent_cdrs[key] = None
        if len(self._recent_cdrs) > 10_000:
            del self._recent_cdrs[next(iter(self._recent_cdrs))]
        self.stats.cdrs += 1
        self._put(cdr)

    def _emit(self, change: CallChange) -> None:
        self.stats.changes += 1
        self._put(change)

    def _put(self, item: CallChange | CallRecord) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.error("AMI callback queue full: dropped %r", item)

    async def _dispatch_loop(self) -> None:
        while True:
            item = await self._queue.get()
            # asyncio.timeout, not wait_for: 3.11's wait_for wraps each callback in a Task of
            # its own, and can lose a stop's cancellation that lands as its timeout fires
            # (CPython gh-86296), leaving this loop running.
            try:
                async with asyncio.timeout(self.callback_timeout_s):
                    if isinstance(item, CallChange):
                        if self.on_change is not None:
                            await self.on_change(item)
                    elif self.on_cdr is not None:
                        await self.on_cdr(item)
            except Exception:
                log.exception("AMI callback failed for %r", item)
            finally:
                self._queue.task_done()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued change and record went through its callback."""
        await asyncio.wait_for(self._queue.join(), timeout_s)


# -- one-shot actions (`centralita render --reload`) ------------------------------------------


async def run_commands(
    host: str,
    port: int,
    username: str,
    secret: str,
    commands: Sequence[str],
    *,
    timeout_s: float,
) -> list[tuple[str, AmiMessage]]:
    """Log in (MD5 challenge, no events), run each CLI command with `Action: Command`
    (docs/asterisk-protocol.md#ami-command), log off; returns each command with its response. Every
    single wait (connect, one read, one drain) is bounded by `timeout_s`. Raises AmiAuthError when
    the login is refused, AmiError or AmiProtocolError when the stream breaks, OSError/TimeoutError
    when Asterisk cannot be reached.

    The same parser and encoder as the listener (`ami.protocol`): one encoder for every
    value that crosses the protocol (principle 2 in docs/design.md#principles).
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    parser = AmiParser()
    pending: list[AmiMessage] = []
    ids = itertools.count(1)

    async def read_more() -> None:
        data = await asyncio.wait_for(reader.read(65536), timeout_s)
        if not data:
            parser.receive_eof()
            raise AmiError("Asterisk closed the connection")
        pending.extend(parser.receive_data(data))

    async def request(action: str, headers: list[tuple[str, str]]) -> AmiMessage:
        action_id = f"centralita-cli-{next(ids)}"
        writer.write(encode_action(action, [("ActionID", action_id), *headers]))
        await asyncio.wait_for(writer.drain(), timeout_s)
        while True:
            # Events may come before and after a response (docs/asterisk-protocol.md#ami-login):
            # skip them.
            while pending:
                msg = pending.pop(0)
                if msg.kind == "response" and msg.action_id == action_id:
                    return msg
            await read_more()

    try:
        # The banner, one line on connect (docs/asterisk-protocol.md#ami-connection).
        while not pending:
            await read_more()
        if pending.pop(0).kind != "banner":
            raise AmiError("not an Asterisk manager port (no banner)")
        challenge = await request("Challenge", [("AuthType", "MD5")])
        if not challenge.is_success or not challenge.value("Challenge"):
            raise AmiAuthError(challenge.value("Message") or "Challenge refused")
        login = await request(
            "Login",
            [
                ("Username", username),
                ("AuthType", "MD5"),
                ("Key", md5_key(challenge.value("Challenge"), secret)),
                ("Events", "off"),
            ],
        )
        if not login.is_success:
            raise AmiAuthError(login.value("Message") or "Authentication failed")
        results = [
            (command, await request("Command", [("Command", command)])) for command in commands
        ]
        with contextlib.suppress(AmiError, OSError, TimeoutError):
            await request("Logoff", [])
        return results
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout_s)
