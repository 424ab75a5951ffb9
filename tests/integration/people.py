"""Callers, customers and agents' consoles, as the integration scenarios drive them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp

from ami.protocol import AmiMessage

from .amiwatch import WAIT_S, AmiWatch, matches
from .site import CONSOLE_PASSWORD, Site

# AGI commands during which a key press reaches the flow (res_agi.c: these read DTMF).
LISTENING = ("GET DATA", "WAIT FOR DIGIT", "GET OPTION", "STREAM FILE", "CONTROL STREAM FILE")


@dataclass
class Call:
    """A call whose far end the test plays: `near` runs our dialplan, `far` presses keys."""

    ami: AmiWatch
    far: str  # the Local ;1 half running centralita-test-caller
    near: str  # the ;2 half running the dialplan under test
    uniqueid: str  # of the near half
    linkedid: str
    number: str
    mark: int = 0  # events before the call are not this call's

    async def listening(self, command: str = "GET DATA", *, after: int | None = None) -> AmiMessage:
        """Wait until the flow runs `command` (a prefix) on this call."""
        return await self.ami.wait_for(
            lambda m: (
                m.name == "AGIExecStart"
                and m.get("Channel") == self.near
                and (m.get("Command") or "").upper().startswith(command)
            ),
            after=self.mark if after is None else after,
        )

    async def press(self, keys: str) -> None:
        """The caller presses `keys` (SendDTMF on the far half)."""
        reply = await self.ami.action("Setvar", Channel=self.far, Variable="KEYS", Value=keys)
        assert reply.get("Response") == "Success", reply

    async def answer_when_asked(self, keys: str, command: str = "GET DATA") -> None:
        """Wait for the next time the flow listens, then press `keys`."""
        mark = self.ami.mark()
        await self.listening(command, after=max(mark - 200, self.mark))
        await self.press(keys)

    async def hangup(self) -> None:
        await self.ami.action("Hangup", Channel=self.far)

    async def reached(self, context: str, exten: str | None = None) -> AmiMessage:
        """Wait until the near half runs dialplan in `context` (and `exten`)."""
        headers = {"Channel": self.near, "Context": context}
        if exten is not None:
            headers["Extension"] = exten
        return await self.ami.wait_for(matches("Newexten", **headers), after=self.mark)

    async def variable(self, name: str) -> str | None:
        reply = await self.ami.action("Getvar", Channel=self.near, Variable=name)
        return reply.get("Value")

    async def ended(self) -> AmiMessage:
        return await self.ami.wait_for(matches("Hangup", Channel=self.near), after=self.mark)


async def place_call(
    ami: AmiWatch,
    *,
    number: str,
    name: str = "Test Caller",
    exten: str = "0777",
    context: str = "incoming",
    variable: str | None = None,
) -> Call:
    """A caller dials `exten@context` (Local channel; our dialplan runs on the ;2 half).

    `variable` ("NAME=value") is set on the call (Local copies it to the ;2 half).
    """
    mark = ami.mark()
    extra = {"Variable": variable} if variable is not None else {}
    response = await ami.originate(
        Channel=f"Local/{exten}@{context}",
        Context="centralita-test-caller",
        Exten="s",
        Priority="1",
        CallerID=f'"{name}" <{number}>',
        Timeout="30000",
        **extra,
    )
    assert response.get("Response") == "Success", response
    far = response.value("Channel")
    assert far.endswith(";1"), far
    near = far[:-1] + "2"
    created = await ami.wait_for(matches("Newchannel", Channel=near), after=mark)
    return Call(
        ami=ami,
        far=far,
        near=near,
        uniqueid=created.value("Uniqueid"),
        linkedid=created.value("Linkedid"),
        number=number,
        mark=mark,
    )


@dataclass
class Console:
    """An agent logged in to the web console with its /ws open, keeping every message."""

    site: Site
    extension: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    csrf: str = ""
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.site.web_port}"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=WAIT_S),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the console is on an IP address
        )
        async with self._session.post(
            f"{self.base}/login",
            data={"extension": self.extension, "password": CONSOLE_PASSWORD},
            headers={"Accept": "application/json", "Origin": self.base},
        ) as response:
            assert response.status == 200, await response.text()
            self.csrf = (await response.json())["csrf"]
        self._ws = await self._session.ws_connect(f"{self.base}/ws", headers={"Origin": self.base})
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(message.data))
                self._changed.set()

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    async def wait_for(self, kind: str, call_id: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """The first `kind` message of `call_id`."""
        return await self._wait(
            lambda m: m.get("type") == kind and m.get("call_id") == call_id,
            f"{kind} for {call_id}",
            timeout,
        )

    async def wait_state(
        self, wanted: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S
    ) -> dict[str, Any]:
        """The first `agent.state` message that `wanted` accepts."""
        return await self._wait(
            lambda m: m.get("type") == "agent.state" and wanted(m), "such agent.state", timeout
        )

    async def _wait(
        self, accept: Callable[[dict[str, Any]], bool], what: str, timeout: float
    ) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            while True:
                for message in self.messages:
                    if accept(message):
                        return message
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"agent {self.extension}: no {what}; got {self.messages}"
            ) from None

    def for_call(self, call_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("call_id") == call_id]

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        assert self._session is not None
        async with self._session.post(
            f"{self.base}{path}",
            json=body,
            headers={"X-CSRF-Token": self.csrf, "Origin": self.base, "Accept": "application/json"},
        ) as response:
            try:
                data = await response.json()
            except (aiohttp.ContentTypeError, ValueError):
                data = await response.text()
            return response.status, data

    async def get(self, path: str) -> tuple[int, Any]:
        assert self._session is not None
        async with self._session.get(
            f"{self.base}{path}", headers={"Accept": "application/json"}
        ) as response:
            return response.status, await response.json()
