"""Helpers for the tests of several Asterisk servers (no tests here): the real app on
loopback following two fake AMIs (`ami.testing.FakeAmiServer`), servers `a` and `b`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from test_web_support import AMI_SECRET, WebEnv, add_static_queues, web_settings

from ami.testing import FakeAmiServer
from centralita.app import create_app
from centralita.asterisks import AsteriskLink, Asterisks
from centralita.keys import ASTERISKS, CDR_WRITER


def two_servers(
    ports: Sequence[int],
    agents: Sequence[Sequence[str] | None] = (None, None),
    names: Sequence[str] = ("a", "b"),
) -> Callable[[str], str]:
    """An edit of the demo config: its `[asterisk]` becomes the first of two `[[asterisk]]`
    servers on `ports`, each with its own spool (data/spool-NAME) and optionally `agents`."""

    def entry(index: int) -> str:
        lines = [f'name = "{names[index]}"']
        if agents[index] is not None:
            lines.append("agents = [" + ", ".join(f'"{a}"' for a in agents[index] or ()) + "]")
        return "\n".join(lines) + "\n"

    def edit(text: str) -> str:
        text = text.replace("[asterisk]\n", "[[asterisk]]\n" + entry(0), 1)
        text = text.replace('spool_dir = "data/spool"', f'spool_dir = "data/spool-{names[0]}"', 1)
        return text + (
            f"\n[[asterisk]]\n{entry(1)}ami_port = {ports[1]}\n"
            f'ami_secret = "{AMI_SECRET}"\nami_ping_s = 5.0\nspool_dir = "data/spool-{names[1]}"\n'
        )

    return edit


@dataclass
class TwoEnv(WebEnv):
    """The app with two fake AMIs: `ami` is server a's, `ami_b` server b's."""

    ami_b: FakeAmiServer = None  # type: ignore[assignment]

    @property
    def asterisks(self) -> Asterisks:
        return self.app[ASTERISKS]

    def link(self, name: str) -> AsteriskLink:
        link = self.asterisks.by_name(name)
        assert link is not None, name
        return link

    async def wait_ami(self) -> None:
        for link in self.asterisks:
            await link.listener.wait_connected(10.0)

    async def drain(self) -> None:
        for link in self.asterisks:
            await link.listener.drain(10.0)
        await self.app[CDR_WRITER].drain(10.0)

    async def stop_b(self) -> None:
        """Stop server b's fake AMI and wait until the app's link to it is down."""
        await self.ami_b.stop()
        link = self.link("b")
        for _ in range(1000):
            if not link.connected:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the link to b stayed up")

    async def device_state(self, fake: FakeAmiServer, server: str, device: str, state: str) -> None:
        """Have `fake` announce a device state and wait until server's tracker holds it."""
        await fake.push_events(
            [
                {
                    "Event": "DeviceStateChange",
                    "Privilege": "call,all",
                    "Device": device,
                    "State": state,
                }
            ]
        )
        tracker = self.link(server).tracker
        for _ in range(500):
            if tracker.device_state(device) == state:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{server} never saw {device} {state}")


@asynccontextmanager
async def two_env(
    tmp_path: Path,
    *,
    agents: Sequence[Sequence[str] | None] = (None, None),
    **kwargs: Any,
) -> AsyncIterator[TwoEnv]:
    """The whole app on loopback following two fake Asterisk servers, a and b."""
    async with AsyncExitStack() as stack:
        fakes = [
            await stack.enter_async_context(
                FakeAmiServer(
                    username="centralita",
                    secret=AMI_SECRET,
                    login_failure_delay=0.05,
                    originate_delay=0.05,
                )
            )
            for _ in range(2)
        ]
        settings = web_settings(
            tmp_path,
            fakes[0].port,
            edit=two_servers([fake.port for fake in fakes], agents),
            **kwargs,
        )
        for fake in fakes:
            add_static_queues(fake, settings)
        app = create_app(settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield TwoEnv(app, server, fakes[0], settings, ami_b=fakes[1])
        finally:
            await server.close()
