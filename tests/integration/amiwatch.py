"""The suite's own eyes on Asterisk: an AMI session that records every event and sends actions.

It reads with the project's sans-IO parser (proved against the recorded traces) and builds
every action with its one encoder, but it is the test's session, not Centralita's: it logs in
as the test-only manager user (`read = all`), so assertions rest on what Asterisk itself said
(Newexten, AGIExecStart, AgentConnect, Cdr, ...), not on what Centralita believes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from typing import Self

from ami.protocol import AmiMessage, AmiParser, encode_action

Predicate = Callable[[AmiMessage], bool]

# How long a scenario waits for one thing Asterisk should do. Not a speed requirement: a
# bound so that a broken flow fails the test with the events seen instead of hanging CI.
WAIT_S = 60.0


def matches(event: str, **headers: str) -> Predicate:
    """A predicate: the event's name and each header equal (Channel: prefix match with '*')."""

    def check(message: AmiMessage) -> bool:
        if message.kind != "event" or message.name != event:
            return False
        for key, want in headers.items():
            got = message.get(key.replace("_", "-") if key.startswith("CID_") else key)
            if want.endswith("*"):
                if got is None or not got.startswith(want[:-1]):
                    return False
            elif got != want:
                return False
        return True

    return check


class AmiWatch:
    """One logged-in AMI session that keeps every event, in order."""

    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.events: list[AmiMessage] = []
        self._responses: dict[str, asyncio.Future[list[AmiMessage]]] = {}
        self._lists: dict[str, list[AmiMessage]] = {}
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._task = asyncio.create_task(self._read())
        reply = await self.action("Login", Username=self.username, Secret=self.secret)
        if reply.get("Response") != "Success":
            raise RuntimeError(f"AMI login refused: {reply.get('Message')}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, ConnectionError):
                pass

    async def _read(self) -> None:
        assert self._reader is not None
        parser = AmiParser()
        while True:
            data = await self._reader.read(65536)
            if not data:
                return
            for message in parser.receive_data(data):
                self._dispatch(message)

    def _dispatch(self, message: AmiMessage) -> None:
        action_id = message.get("ActionID")
        if message.kind == "response" and action_id in self._responses:
            if message.get("EventList") == "start":
                self._lists[action_id] = [message]
            else:
                self._resolve(action_id, [message])
        elif message.kind == "event" and action_id in self._lists:
            self._lists[action_id].append(message)
            if message.get("EventList") == "Complete":
                self._resolve(action_id, self._lists.pop(action_id))
        else:
            self.events.append(message)
            self._changed.set()

    def _resolve(self, action_id: str, messages: list[AmiMessage]) -> None:
        future = self._responses.pop(action_id)
        if not future.done():
            future.set_result(messages)

    async def action_list(self, action: str, **headers: str) -> list[AmiMessage]:
        """Send an action; its response, and for list actions every event up to Complete."""
        assert self._writer is not None
        action_id = f"t{next(self._ids)}"
        future: asyncio.Future[list[AmiMessage]] = asyncio.get_running_loop().create_future()
        self._responses[action_id] = future
        self._writer.write(encode_action(action, {**headers, "ActionID": action_id}))
        return await asyncio.wait_for(future, WAIT_S)

    async def action(self, action: str, **headers: str) -> AmiMessage:
        return (await self.action_list(action, **headers))[0]

    async def command(self, command: str) -> str:
        reply = await self.action("Command", Command=command)
        return "\n".join(reply.get_all("Output"))

    async def wait_for(
        self, predicate: Predicate, *, after: int = 0, timeout: float = WAIT_S
    ) -> AmiMessage:
        """The first event from index `after` on that matches; waits for it if need be."""
        position = after

        async def scan() -> AmiMessage:
            nonlocal position
            while True:
                while position < len(self.events):
                    message = self.events[position]
                    position += 1
                    if predicate(message):
                        return message
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            # The first and the last events since `after`: where a call stopped is at the end.
            names = [f"{m.name}({m.get('Channel') or ''})" for m in self.events[after:]]
            shown = names if len(names) <= 100 else [*names[:30], "...", *names[-70:]]
            raise AssertionError(
                f"AMI: no matching event within {timeout:g} s; saw {len(names)}: {shown}"
            ) from None

    def mark(self) -> int:
        """An index to wait from: only events after this call count."""
        return len(self.events)

    def seen(self, predicate: Predicate, *, after: int = 0) -> list[AmiMessage]:
        return [m for m in self.events[after:] if predicate(m)]

    async def originate(self, **headers: str) -> AmiMessage:
        """Originate asynchronously; returns the OriginateResponse event."""
        action_id = f"o{next(self._ids)}"
        mark = self.mark()
        assert self._writer is not None
        self._writer.write(
            encode_action("Originate", {**headers, "Async": "true", "ActionID": action_id})
        )
        return await self.wait_for(matches("OriginateResponse", ActionID=action_id), after=mark)

    async def wait_free_member(self, queue: str, interface: str) -> None:
        """Until `interface` is an unpaused member of `queue` whose device app_queue sees as
        free (QueueStatus's QueueMember: `Paused: 0`, `Status: 1`, AST_DEVICE_NOT_INUSE).
        A queue skips a member whose device is unknown or in use, so a scenario that needs a
        given agent to ring waits for this first (a chan_sip peer is unknown again for a
        while after a reload, until it is qualified)."""
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            members = [
                m
                for m in await self.action_list("QueueStatus", Queue=queue, Member=interface)
                if m.name == "QueueMember" and m.get("Queue") == queue
            ]
            state = [(m.get("Paused"), m.get("Status")) for m in members]
            if ("0", "1") in state:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{interface} never free in {queue}: (Paused, Status) {state}")
            await asyncio.sleep(0.2)

    def send(self, action: str, headers: Mapping[str, str]) -> None:
        """Fire an action without waiting for its response (it lands in `events`)."""
        assert self._writer is not None
        self._writer.write(encode_action(action, {**headers, "ActionID": f"f{next(self._ids)}"}))
