"""A fake Asterisk manager port: test AMI clients without an Asterisk.

    from ami.testing import FakeAmiServer

    async with FakeAmiServer(username="centralita", secret="s3cret") as fake:
        # point the client at fake.host / fake.port, then:
        await fake.wait_for_sessions(1)
        await fake.replay_trace("ami-queue-sip-call.txt")   # stream a recorded call
        originate = await fake.wait_for_action("Originate")  # what the client sent

It speaks AMI over real TCP on loopback as Asterisk 20 does (docs/asterisk-protocol.md#ami, checked
against `asterisk-traces/ami-*.txt`):

* the banner `Asterisk Call Manager/9.0.0\\r\\n` on connect
  (docs/asterisk-protocol.md#ami-connection); CRLF or LF accepted;
* `Challenge` (`AuthType: MD5`, a random challenge per request) and `Login` with
  `AuthType: MD5` + `Key` or with `Secret` (right one: `Authentication accepted`; wrong
  one: `Authentication failed` after `login_failure_delay` seconds, 1 s as Asterisk, then
  the connection is closed), the `Events:` mask of Login and of the `Events` action, and
  the user's `read` classes: an event reaches a session only if all its classes are allowed
  (docs/asterisk-protocol.md#ami-events, main/manager.c:6448-6450);
* before login only Login/Logoff/Challenge (`Permission denied` otherwise,
  docs/asterisk-protocol.md#ami-login);
* `Ping` (`Ping: Pong` + `Timestamp`), `Logoff` (`Goodbye`, then close), `Command` (`Output:`
  lines, docs/asterisk-protocol.md#ami-command), `Getvar`, `Reload`, unknown actions (Asterisk's
  error text);
* `CoreShowChannels`, `DeviceStateList`, `QueueStatus` as lists (ack `EventList: start`,
  items without Privilege, `...Complete` with `EventList: Complete` and `ListItems`,
  docs/asterisk-protocol.md#ami-lists), answered from the channels and device states of the events
  pushed so far;
* `QueueStatus`, `QueuePause`, `QueueAdd`, `QueueRemove`: app_queue's, see `ami.fake_queues`;
* `Originate`: with `Async: true`, `Originate successfully queued` at once and, after
  `originate_delay`, an `OriginateResponse` with the same ActionID (`Reason: 4` when
  answered, as in ami-click2dial.txt; set `originate_result` for other outcomes). Without
  Async, the response waits and no OriginateResponse follows (docs/asterisk-protocol.md#originate).
  Set `originate_error` to a message (e.g. "Extension does not exist.") to have Originate refused
  instead.

Every action received is recorded in `actions` (parsed `AmiMessage`s, in order). Tests can
drop every connection (`drop_connections()`) and stop answering `Ping` (`answer_ping = False`).

From a shell: `python -m ami.testing --port 5038 --secret S --replay TRACE --rate 20 --loop`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ami.channel_table import ChannelTable as ChannelTable  # re-exported: tests import it here
from ami.eventfilter import EventFilter
from ami.fake_queues import FakeQueues
from ami.protocol import (
    AmiMessage,
    AmiParser,
    AmiProtocolError,
    encode_packet,
    md5_key,
    parse_trace,
)

BANNER = b"Asterisk Call Manager/9.0.0\r\n"

# perms[] of main/manager.c:765-787 (docs/asterisk-protocol.md#ami-events), without "all" and
# "none".
CLASSES = frozenset(
    "system call log verbose command agent user config dtmf reporting cdr dialplan originate "
    "agi cc aoc test security message".split()
)


EventLike = AmiMessage | Mapping[str, str] | Sequence[tuple[str, str]]
OriginateHook = Callable[[AmiMessage], Iterable[EventLike]]


def as_message(event: EventLike) -> AmiMessage:
    """An `AmiMessage` from a message, a mapping or a sequence of (name, value) pairs."""
    return event if isinstance(event, AmiMessage) else AmiMessage.build(event)


def load_trace(path: str | Path) -> list[AmiMessage]:
    """The events of a recorded AMI stream (asterisk-traces format), in order."""
    return [m for m in parse_trace(Path(path).read_bytes()) if m.kind == "event"]


def rewrite(messages: Iterable[AmiMessage], replacements: Mapping[str, str]) -> list[AmiMessage]:
    """Copies of `messages` with substrings of every value replaced (e.g. another number)."""
    out = []
    for msg in messages:
        headers = []
        for name, value in msg.headers:
            for old, new in replacements.items():
                value = value.replace(old, new)
            headers.append((name, value))
        out.append(AmiMessage(msg.kind, tuple(headers)))
    return out


def parse_mask(text: str) -> frozenset[str]:
    """An event mask as the Events action / Login read it (strings_to_mask, 899-925)."""
    text = text.strip().lower()
    if text in ("on", "all", "-1", "yes", "true"):
        return CLASSES
    if text in ("off", "none", "0", "no", "false", ""):
        return frozenset()
    return frozenset(c.strip() for c in text.split(",") if c.strip() in CLASSES)


def event_classes(msg: AmiMessage) -> frozenset[str]:
    """The classes in an event's `Privilege` header, without `all`."""
    return frozenset(c.strip() for c in msg.value("Privilege").split(",") if c.strip() in CLASSES)


def _true(text: str) -> bool:
    # ast_true (main/utils.c): yes, true, y, t, 1, on.
    return text.strip().lower() in ("yes", "true", "y", "t", "1", "on")


def _callerid(text: str) -> tuple[str, str]:
    """(name, number) of a `"Name" <num>` caller id; `<unknown>` for what is missing."""
    text = text.strip()
    name, number = "", text
    if "<" in text and text.endswith(">"):
        name, _, rest = text.partition("<")
        number = rest[:-1]
        name = name.strip().strip('"')
    return name or "<unknown>", number or "<unknown>"


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event's bytes, split after its Privilege line (`FakeAmiServer.encode_events`)."""

    head: bytes
    tail: bytes
    classes: frozenset[str]


class _Session:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.authenticated = False
        self.mask: frozenset[str] = CLASSES
        self.username = ""
        self.challenge = ""  # the last `Challenge` answered on this session


class FakeAmiServer:
    """A fake Asterisk manager port on loopback (see the module docstring)."""

    def __init__(
        self,
        *,
        username: str = "centralita",
        secret: str = "secret",  # noqa: S107 - a test double's default, not a real secret
        read: str = "all",
        write: str = "all",
        host: str = "127.0.0.1",
        port: int = 0,
        login_failure_delay: float = 1.0,
        originate_delay: float = 0.05,
        commands: Mapping[str, Sequence[str]] | None = None,
        write_timeout_s: float = 5.0,
        event_filter: EventFilter | None = None,
    ) -> None:
        self.username = username
        self.secret = secret
        self.read = parse_mask(read)
        self.write = parse_mask(write)
        self.host = host
        self.port = port
        self.login_failure_delay = login_failure_delay
        self.originate_delay = originate_delay
        self.originate_result: tuple[str, int] = ("Success", 4)
        self.originate_error: str | None = None
        self.on_originate: OriginateHook | None = None
        self.commands: dict[str, Sequence[str]] = dict(commands or {})
        self.variables: dict[str, str] = {}
        self.write_timeout_s = write_timeout_s
        # The user's manager.conf `eventfilter` lines (ami.eventfilter): events they drop are
        # never sent, as in Asterisk.
        self.event_filter = event_filter or EventFilter()
        self.answer_ping = True
        self.channels = ChannelTable()
        self.queues = FakeQueues()
        self.actions: list[AmiMessage] = []
        self.logins: list[tuple[str, str]] = []  # (username, "md5" or "plain") per Login
        self.connections = 0  # accepted so far
        self._sessions: set[_Session] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._channel_ids = itertools.count(1)
        self._uniqueids = itertools.count(1)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> FakeAmiServer:
        """Listen (port 0 picks a free port; read it from `port`)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the port and every session."""
        if self._server is not None:
            self._server.close()
        await self.drop_connections()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAmiServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what tests drive -------------------------------------------------------------------

    @property
    def sessions(self) -> int:
        """How many logged-in sessions are connected."""
        return sum(1 for s in self._sessions if s.authenticated)

    async def wait_for_sessions(self, count: int = 1, timeout_s: float = 5.0) -> None:
        """Wait until `count` sessions are logged in."""
        await self._wait(lambda: self.sessions >= count, timeout_s, f"{count} session(s)")

    async def wait_for_action(
        self, name: str, timeout_s: float = 5.0, *, count: int = 1
    ) -> AmiMessage:
        """Wait until `count` actions called `name` arrived; return the last of them."""
        found: list[AmiMessage] = []

        def ready() -> bool:
            found[:] = self.actions_named(name)
            return len(found) >= count

        await self._wait(ready, timeout_s, f"{count} {name} action(s)")
        return found[count - 1]

    def actions_named(self, name: str) -> list[AmiMessage]:
        """The recorded actions called `name` (case-insensitive, as Asterisk matches them)."""
        return [a for a in self.actions if a.name.lower() == name.lower()]

    async def push_events(self, events: Iterable[EventLike]) -> int:
        """Send events to every logged-in session that may read them; return how many sent."""
        sent = 0
        for event in events:
            msg = as_message(event)
            self.channels.apply(msg)
            if not self.event_filter.passes(msg):
                continue
            data = encode_packet(msg.headers)
            classes = event_classes(msg)
            for session in list(self._sessions):
                if session.authenticated and classes <= (session.mask & self.read):
                    session.writer.write(data)
                    sent += 1
            await self._drain_all()
        return sent

    def encode_events(self, events: Iterable[EventLike]) -> list[EncodedEvent]:
        """Events encoded ahead of `push_encoded` (for benchmarks: nothing left to do per
        event but one write), without those the event filter drops."""
        out = []
        for event in events:
            msg = as_message(event)
            if self.event_filter.passes(msg):
                data = encode_packet(msg.headers)
                cut = data.find(b"\r\n", data.find(b"\r\n") + 2) + 2  # after Privilege
                out.append(EncodedEvent(data[:cut], data[cut:], event_classes(msg)))
        return out

    async def push_encoded(self, events: Sequence[EncodedEvent], timestamp: float) -> int:
        """Send encoded events in one write per session, each with `Timestamp: <timestamp>`
        after its Privilege line, as manager.conf's `timestampevents` puts it
        (main/manager.c __manager_event_sessions_va); the channel table is not updated."""
        stamp = f"Timestamp: {timestamp:.6f}\r\n".encode()
        sent = 0
        for session in list(self._sessions):
            if not session.authenticated:
                continue
            allowed = session.mask & self.read
            mine = [e for e in events if e.classes <= allowed]
            session.writer.write(b"".join(b"".join((e.head, stamp, e.tail)) for e in mine))
            sent += len(mine)
        await self._drain_all()
        return sent

    async def replay_trace(
        self, path: str | Path | Sequence[AmiMessage], rate: float | None = None
    ) -> int:
        """Stream the events of a trace file (or of a list of messages).

        rate: events per second (None: as fast as the sockets take them).
        """
        events = load_trace(path) if isinstance(path, str | Path) else list(path)
        sent = 0
        for event in events:
            sent += await self.push_events([event])
            if rate:
                await asyncio.sleep(1.0 / rate)
        return sent

    async def drop_connections(self) -> None:
        """Cut every connection at once, as a crash or a network failure would."""
        for session in list(self._sessions):
            session.writer.transport.abort()
        self._sessions.clear()
        await asyncio.sleep(0)

    # -- internals --------------------------------------------------------------------------

    async def _wait(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        async def loop() -> None:
            while True:
                self._changed.clear()
                if ready():
                    return
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"fake AMI: no {what} within {timeout_s} s") from None

    async def _drain_all(self) -> None:
        for session in list(self._sessions):
            try:
                await asyncio.wait_for(session.writer.drain(), self.write_timeout_s)
            except (TimeoutError, ConnectionError):
                # Asterisk drops a session it cannot write to (writetimeout,
                # docs/asterisk-protocol.md#ami-connection).
                session.writer.transport.abort()
                self._sessions.discard(session)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._sessions.add(session)
        self.connections += 1
        self._changed.set()
        parser = AmiParser(expect_banner=False)
        try:
            writer.write(BANNER)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for msg in parser.receive_data(data):
                    if not await self._dispatch(session, msg):
                        return
        except (AmiProtocolError, ConnectionError):
            pass
        finally:
            self._sessions.discard(session)
            self._changed.set()
            writer.transport.abort()

    def _reply(self, session: _Session, msg: AmiMessage, headers: list[tuple[str, str]]) -> None:
        # Response, then ActionID, then the rest (astman_send_response_full, 1968-1992).
        action_id = msg.value("ActionID")
        if action_id:
            headers.insert(1, ("ActionID", action_id))
        session.writer.write(encode_packet(headers))

    def _error(self, session: _Session, msg: AmiMessage, text: str) -> None:
        self._reply(session, msg, [("Response", "Error"), ("Message", text)])

    async def _dispatch(self, session: _Session, msg: AmiMessage) -> bool:
        """Answer one action; False closes the session."""
        if msg.kind != "action":
            self._error(session, msg, "Missing action in request")
            return True
        self.actions.append(msg)
        self._changed.set()
        action = msg.name.lower()
        if not session.authenticated and action not in ("login", "logoff", "challenge"):
            self._error(session, msg, "Permission denied")
            return True
        handler = ACTION_HANDLERS.get(action)
        if handler is None:
            self._error(
                session,
                msg,
                f"Invalid/unknown command: {msg.name}. "
                "Use Action: ListCommands to show available commands.",
            )
            return True
        keep = await handler(self, session, msg)
        with contextlib.suppress(ConnectionError):
            await session.writer.drain()
        return keep

    async def _action_login(self, session: _Session, msg: AmiMessage) -> bool:
        if session.authenticated:
            self._reply(
                session, msg, [("Response", "Success"), ("Message", "Already authenticated")]
            )
            return True
        user_ok = msg.value("Username").lower() == self.username.lower()
        if msg.value("AuthType").lower() == "md5":
            # Key = md5hex(challenge + secret), against this session's challenge (2372-2395).
            how = "md5"
            secret_ok = bool(session.challenge) and msg.value("Key") == md5_key(
                session.challenge, self.secret
            )
        else:
            how = "plain"
            secret_ok = msg.value("Secret") == self.secret
        self.logins.append((msg.value("Username"), how))
        if not user_ok or not secret_ok:
            # Same answer for every cause, after a 1 s sleep, then close (3385-3389).
            await asyncio.sleep(self.login_failure_delay)
            self._error(session, msg, "Authentication failed")
            with contextlib.suppress(ConnectionError):
                await session.writer.drain()
            return False
        session.authenticated = True
        session.username = msg.value("Username")
        if "Events" in msg:
            session.mask = parse_mask(msg.value("Events"))
        self._reply(session, msg, [("Response", "Success"), ("Message", "Authentication accepted")])
        if "system" in (session.mask & self.read):
            session.writer.write(
                encode_packet(
                    [
                        ("Event", "FullyBooted"),
                        ("Privilege", "system,all"),
                        ("Uptime", "4"),
                        ("LastReload", "4"),
                        ("Status", "Fully Booted"),
                    ]
                )
            )
        self._changed.set()
        return True

    async def _action_logoff(self, session: _Session, msg: AmiMessage) -> bool:
        self._reply(
            session, msg, [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")]
        )
        with contextlib.suppress(ConnectionError):
            await session.writer.drain()
        return False

    async def _action_challenge(self, session: _Session, msg: AmiMessage) -> bool:
        if msg.value("AuthType").lower() != "md5":
            self._error(session, msg, "Must specify AuthType")
            return True
        # A random number per request, as Asterisk's ast_random (3425-3441).
        session.challenge = str(secrets.randbelow(9 * 10**8) + 10**8)
        self._reply(session, msg, [("Response", "Success"), ("Challenge", session.challenge)])
        return True

    async def _action_ping(self, session: _Session, msg: AmiMessage) -> bool:
        if self.answer_ping:
            now = time.time()
            self._reply(
                session,
                msg,
                [("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{now:.6f}")],
            )
        return True

    async def _action_events(self, session: _Session, msg: AmiMessage) -> bool:
        session.mask = parse_mask(msg.value("EventMask"))
        state = "On" if session.mask else "Off"
        self._reply(session, msg, [("Response", "Success"), ("Events", state)])
        return True

    async def _action_command(self, session: _Session, msg: AmiMessage) -> bool:
        command = msg.value("Command").strip()
        lines = self.commands.get(command)
        if lines is None:
            self._reply(
                session,
                msg,
                [
                    ("Response", "Error"),
                    ("Message", "Command output follows"),
                    (
                        "Output",
                        f"No such command '{command}' "
                        f"(type 'core show help {command}' for other possible commands)",
                    ),
                ],
            )
        else:
            headers = [("Response", "Success"), ("Message", "Command output follows")]
            headers += [("Output", line) for line in lines]
            self._reply(session, msg, headers)
        return True

    async def _action_getvar(self, session: _Session, msg: AmiMessage) -> bool:
        name = msg.value("Variable")
        self._reply(
            session,
            msg,
            [("Response", "Success"), ("Variable", name), ("Value", self.variables.get(name, ""))],
        )
        return True

    async def _action_reload(self, session: _Session, msg: AmiMessage) -> bool:
        self._reply(session, msg, [("Response", "Success"), ("Message", "Module Reloaded")])
        return True

    def _list(
        self, session: _Session, msg: AmiMessage, text: str, complete: str, items: list[AmiMessage]
    ) -> None:
        # Ack `EventList: start` (lower case), items, then `EventList: Complete`
        # (docs/asterisk-protocol.md#ami-lists).
        self._reply(
            session, msg, [("Response", "Success"), ("EventList", "start"), ("Message", text)]
        )
        for item in items:
            session.writer.write(encode_packet(item.headers))
        tail = [("Event", complete)]
        if msg.value("ActionID"):
            tail.append(("ActionID", msg.value("ActionID")))
        tail += [("EventList", "Complete"), ("ListItems", str(len(items)))]
        session.writer.write(encode_packet(tail))

    async def _action_coreshowchannels(self, session: _Session, msg: AmiMessage) -> bool:
        items = self.channels.core_show_channels(msg.value("ActionID") or None)
        self._list(session, msg, "Channels will follow", "CoreShowChannelsComplete", items)
        return True

    async def _action_devicestatelist(self, session: _Session, msg: AmiMessage) -> bool:
        items = self.channels.device_state_list(msg.value("ActionID") or None)
        self._list(
            session, msg, "Device State Changes will follow", "DeviceStateListComplete", items
        )
        return True

    async def _action_queuestatus(self, session: _Session, msg: AmiMessage) -> bool:
        items = self.queues.status_items(msg)
        self._list(session, msg, "Queue status will follow", "QueueStatusComplete", items)
        return True

    async def _action_queuesummary(self, session: _Session, msg: AmiMessage) -> bool:
        items = self.queues.summary_items(msg)
        self._list(session, msg, "Queue summary will follow", "QueueSummaryComplete", items)
        return True

    async def _queue_member_action(self, session: _Session, msg: AmiMessage) -> bool:
        reply, events = self.queues.act(msg, self.channels.devices)
        self._reply(session, msg, reply)  # the response, then the events (stasis)
        await self.push_events(events)
        return True

    async def _action_originate(self, session: _Session, msg: AmiMessage) -> bool:
        if "/" not in msg.value("Channel"):
            self._error(session, msg, "Invalid channel")
            return True
        if self.originate_error is not None:
            self._error(session, msg, self.originate_error)
            return True
        if not _true(msg.value("Async")):
            # Synchronous: the session blocks until the call is answered or fails
            # (docs/asterisk-protocol.md#originate).
            await asyncio.sleep(self.originate_delay)
            if self.originate_result[0] == "Success":
                self._reply(
                    session,
                    msg,
                    [("Response", "Success"), ("Message", "Originate successfully queued")],
                )
            else:
                self._error(session, msg, "Originate failed")
            return True
        self._reply(
            session, msg, [("Response", "Success"), ("Message", "Originate successfully queued")]
        )
        task = asyncio.create_task(self._originate_later(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _originate_later(self, msg: AmiMessage) -> None:
        await asyncio.sleep(self.originate_delay)
        if self.on_originate is not None:
            await self.push_events(self.on_originate(msg))
        response, reason = self.originate_result
        channel = msg.value("Channel")
        if response == "Success":
            channel = f"{channel}-{next(self._channel_ids):08x}"
        name, number = _callerid(msg.value("CallerID"))
        headers = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
        if msg.value("ActionID"):
            headers.append(("ActionID", msg.value("ActionID")))
        headers += [("Response", response), ("Channel", channel)]
        if "Application" in msg:
            headers += [("Application", msg.value("Application")), ("Data", msg.value("Data"))]
        else:
            headers += [("Context", msg.value("Context")), ("Exten", msg.value("Exten"))]
        uniqueid = f"{int(time.time())}.{next(self._uniqueids)}" if response == "Success" else ""
        headers += [
            ("Reason", str(reason)),
            ("Uniqueid", uniqueid or "<unknown>"),
            ("CallerIDNum", number),
            ("CallerIDName", name),
        ]
        await self.push_events([headers])


# The actions the fake answers, by lower-cased name (Asterisk matches action names without case,
# main/manager.c action_find); any other action gets Asterisk's "Invalid/unknown command".
ACTION_HANDLERS: dict[str, Callable[[FakeAmiServer, _Session, AmiMessage], Awaitable[bool]]] = {
    "login": FakeAmiServer._action_login,
    "logoff": FakeAmiServer._action_logoff,
    "challenge": FakeAmiServer._action_challenge,
    "ping": FakeAmiServer._action_ping,
    "events": FakeAmiServer._action_events,
    "command": FakeAmiServer._action_command,
    "getvar": FakeAmiServer._action_getvar,
    "reload": FakeAmiServer._action_reload,
    "coreshowchannels": FakeAmiServer._action_coreshowchannels,
    "devicestatelist": FakeAmiServer._action_devicestatelist,
    "queuestatus": FakeAmiServer._action_queuestatus,
    "queuesummary": FakeAmiServer._action_queuesummary,
    "queuepause": FakeAmiServer._queue_member_action,
    "queueadd": FakeAmiServer._queue_member_action,
    "queueremove": FakeAmiServer._queue_member_action,
    "originate": FakeAmiServer._action_originate,
}


async def _serve_forever(args: argparse.Namespace) -> None:
    fake = FakeAmiServer(
        username=args.username,
        secret=args.secret,
        host=args.host,
        port=args.port,
        login_failure_delay=args.login_failure_delay,
    )
    await fake.start()
    print(f"fake AMI listening on {fake.host}:{fake.port} (user {fake.username})", flush=True)
    try:
        if args.replay:
            await fake.wait_for_sessions(1, timeout_s=3600.0)
            while True:
                for path in args.replay:
                    sent = await fake.replay_trace(path, rate=args.rate)
                    print(f"replayed {path}: {sent} event(s) delivered", flush=True)
                if not args.loop:
                    break
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m ami.testing`: run a fake AMI port, optionally replaying traces."""
    parser = argparse.ArgumentParser(
        prog="python -m ami.testing", description="A fake Asterisk manager (AMI) port."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--username", default="centralita")
    parser.add_argument("--secret", default="change-me-centralita")
    parser.add_argument("--login-failure-delay", type=float, default=1.0)
    parser.add_argument(
        "--replay", action="append", metavar="TRACE", help="trace file to stream (repeatable)"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--loop", action="store_true", help="replay the traces forever")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
