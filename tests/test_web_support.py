"""Helpers for the web tests (no tests here): the real app on loopback with a fake AMI.

`console_env()` starts the whole Centralita app (store, FastAGI on port 0, console, AMI
listener) as a real aiohttp server on 127.0.0.1, with `ami.testing.FakeAmiServer` as
Asterisk, and gives a `WebEnv` to log agents in and open their sockets.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from ami.testing import FakeAmiServer
from centralita.app import create_app
from centralita.keys import AMI, BRIDGE, CDR_WRITER, HUB, STORE
from centralita.pop import PopMessage
from centralita.settings import Settings, demo_text, parse_settings
from centralita.store import StoreBackend

TRACES = Path(__file__).resolve().parent / "fixtures" / "asterisk-traces"
AMI_SECRET = "test-ami-secret"
PASSWORD = "correct horse battery"
EVENTS_SECRET = "test-events-secret"
EVENTS_HEADERS = {"X-Centralita-Secret": EVENTS_SECRET}
TIMEOUT = aiohttp.ClientTimeout(total=20)


def web_settings(
    tmp_path: Path,
    ami_port: int,
    *,
    sip: bool = False,
    crm: bool = False,
    webhooks: tuple[str, ...] = (),
    edit: Callable[[str], str] | None = None,
) -> Settings:
    """The demo config on free ports, pointed at the fake AMI (optionally chan_sip)."""
    text = demo_text()
    text = text.replace('spool_dir = "/var/spool/asterisk"', 'spool_dir = "data/spool"')
    text = text.replace("agi_port = 4573", "agi_port = 0")
    text = text.replace("ami_port = 5038", f"ami_port = {ami_port}")
    text = text.replace('ami_secret = "change-me-centralita"', f'ami_secret = "{AMI_SECRET}"')
    text = text.replace("ami_ping_s = 20.0", "ami_ping_s = 5.0", 1)
    text = text.replace("[server]\n", f'[server]\nevents_secret = "{EVENTS_SECRET}"\n', 1)
    # Every agent may log in to the demo's queues besides their own (QueueAdd/QueueRemove).
    text = text.replace("# login_queues = ", "login_queues = ", 1)
    if sip:
        text = text.replace('sip_driver = "pjsip"', 'sip_driver = "sip"')
    if crm:
        text = text.replace(
            '# incoming_url = "https://crm.example.com/contacts?phone={number}"',
            'incoming_url = "https://crm.example.com/contacts?phone={number}"',
        )
    for url in webhooks:
        text += f'\n[[webhooks]]\nurl = "{url}"\naccount_id = "acct-7"\n'
    if edit is not None:
        text = edit(text)
    config = tmp_path / "centralita.toml"
    config.write_text(text, encoding="utf-8")
    return parse_settings(text, str(config), tmp_path, config)


@dataclass
class WebEnv:
    """A running app with its fake AMI."""

    app: web.Application
    server: TestServer
    ami: FakeAmiServer
    settings: Settings

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))

    @property
    def store(self) -> StoreBackend:
        return self.app[STORE]

    def session(self) -> aiohttp.ClientSession:
        """A fresh client with its own cookie jar (one browser)."""
        return aiohttp.ClientSession(
            base_url=self.url, timeout=TIMEOUT, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    async def login(self, client: aiohttp.ClientSession, extension: str) -> str:
        """Log `extension` in (password set first); returns the CSRF token."""
        await self.store.set_agent_password(extension, PASSWORD)
        async with client.post(
            "/login",
            data={"extension": extension, "password": PASSWORD},
            headers={"Accept": "application/json"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        return str(body["csrf"])

    async def wait_sockets(self, extension: str, count: int = 1) -> None:
        """Wait until `extension` has `count` console sockets registered."""
        hub = self.app[HUB]
        for _ in range(500):
            if hub.count(extension) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"agent {extension} has {hub.count(extension)} sockets")

    async def wait_ami(self) -> None:
        """Wait until the app's listener is logged in to the fake AMI."""
        await self.app[AMI].wait_connected(10.0)

    async def drain(self) -> None:
        """Wait until every AMI change went through the pop bridge and records are stored."""
        await self.app[AMI].drain(10.0)
        await self.app[CDR_WRITER].drain(10.0)

    def open_pops(self, extension: str) -> list[PopMessage]:
        return self.app[BRIDGE].open_pops(extension)


@asynccontextmanager
async def console_env(
    tmp_path: Path, *, sip: bool = False, ami_delay: float = 0.05, **kwargs: Any
) -> AsyncIterator[WebEnv]:
    """The app on loopback with a fake AMI (see the module docstring)."""
    async with FakeAmiServer(
        username="centralita",
        secret=AMI_SECRET,
        login_failure_delay=0.05,
        originate_delay=ami_delay,
    ) as fake:
        settings = web_settings(tmp_path, fake.port, sip=sip, **kwargs)
        add_static_queues(fake, settings)
        app = create_app(settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield WebEnv(app, server, fake, settings)
        finally:
            await server.close()


def add_static_queues(fake: FakeAmiServer, settings: Settings) -> None:
    """Give the fake Asterisk the queues and static members queues.conf would have
    (`member =>` for each agent that lists the queue, conf_templates/queues.conf.j2)."""
    site = settings.site
    for queue in site.queues:
        members = [
            (site.device(a.extension), a.name) for a in site.agents if queue.name in a.queues
        ]
        fake.queues.add_queue(queue.name, members)


# Sent on connect and whenever the agent's queue state or the AMI link changes; tests of the
# pop read past them.
STATE_TYPES = ("agent.state", "link.asterisk")


async def receive_json(
    ws: aiohttp.ClientWebSocketResponse,
    wait_s: float = 10.0,
    *,
    skip: tuple[str, ...] = STATE_TYPES,
) -> Any:
    """The next JSON message on a socket, skipping those whose type is in `skip` (the agent
    state and link messages, unless `skip=()`)."""
    while True:
        msg = await ws.receive(timeout=wait_s)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        message = json.loads(msg.data)
        if message.get("type") not in skip:
            return message


async def receive_past_state(
    ws: aiohttp.ClientWebSocketResponse, wait_s: float = 10.0
) -> aiohttp.WSMessage:
    """The next message on a socket that is not an agent state or link message (a close,
    a pop ...), as `ws.receive` returns it."""
    while True:
        msg = await ws.receive(timeout=wait_s)
        if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") in STATE_TYPES:
            continue
        return msg


async def receive_type(ws: aiohttp.ClientWebSocketResponse, kind: str, wait_s: float = 10.0) -> Any:
    """The next message of type `kind` on a socket (others are read past)."""
    while True:
        message = await receive_json(ws, wait_s, skip=())
        if message.get("type") == kind:
            return message


def csrf_from_html(html: str) -> str:
    """The CSRF token in a console page."""
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)
