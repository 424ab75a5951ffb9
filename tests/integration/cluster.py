"""Several `centralita serve` processes on one PostgreSQL, behind the site's Asterisk.

What test_instances.py drives: the instances (real subprocesses, each with its own FastAGI
and web ports and data folder, one shared store, and no `secret_key`: the cookie signing key
is the one the first instance made in the store), a webhook receiver that counts what it is
sent, and agents' consoles that move to a living instance when theirs dies, as a browser
behind a load balancer would (docs/cluster.md, "When a part fails").
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp
import tomlkit
from aiohttp import web

from centralita.store import open_location
from centralita.store.url import parse_store_url

from .site import CONSOLE_PASSWORD, Site, free_tcp_port

# ------------------------------------------------------------------------ the instances


@dataclass
class Instance:
    """One `centralita serve` with its own ports and folder; the store is shared."""

    index: int
    root: Path
    agi_port: int = field(default_factory=free_tcp_port)
    web_port: int = field(default_factory=free_tcp_port)
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False

    @property
    def config(self) -> Path:
        return self.root / "centralita.toml"

    @property
    def log(self) -> Path:
        return self.root / "centralita.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "centralita", "serve", "--config", str(self.config)],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_ready(self) -> None:
        """Until the web console answers and AMI is logged in."""
        assert self.process is not None
        for _ in range(600):  # readiness poll
            if self.process.poll() is not None:
                raise RuntimeError(f"instance {self.index} exited:\n{self.tail()}")
            health = self.health()
            if health is not None and health.get("ami", {}).get("connected"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"instance {self.index} never reached AMI:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a host dies."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.killed = True

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Cluster:
    """Three instances configured from the site's own config, on `store_url`."""

    site: Site
    store_url: str
    webhook_url: str
    count: int = 3
    instances: list[Instance] = field(default_factory=list)

    def __post_init__(self) -> None:
        for index in range(self.count):
            root = self.site.root / "cluster" / f"instance-{index}"
            root.mkdir(parents=True, exist_ok=True)
            self.instances.append(Instance(index, root))

    def write_configs(self) -> None:
        """The site's config, with what is per host changed and the shared parts added."""
        listed = [f"127.0.0.1:{i.agi_port}" for i in self.instances]
        for instance in self.instances:
            doc = tomlkit.parse(self.site.config.read_text(encoding="utf-8"))
            server: Any = doc["server"]
            server["agi_port"] = instance.agi_port
            server["web_port"] = instance.web_port
            server["data_dir"] = str(instance.root / "data")
            server["agi_instances"] = listed
            # No secret_key: the session signing key is the store's, shared by all three
            # (a console's session cookie from one instance is accepted by the others).
            server.pop("secret_key", None)
            store = tomlkit.table()
            store["url"] = self.store_url
            doc["store"] = store
            hooks = tomlkit.aot()
            hook = tomlkit.table()
            hook.update({"url": self.webhook_url, "account_id": "cluster-test"})
            hooks.append(hook)
            doc["webhooks"] = hooks
            instance.config.write_text(tomlkit.dumps(doc), encoding="utf-8")

    async def set_passwords(self, extensions: tuple[str, ...]) -> None:
        location = parse_store_url(self.store_url, base=self.site.root)
        async with open_location(location) as store:
            for extension in extensions:
                await store.set_agent_password(extension, CONSOLE_PASSWORD)

    def render(self) -> None:
        """The rendered dialplan of the cluster (every AGI() to the three, in order)."""
        subprocess.run(
            [sys.executable, "-m", "centralita", "render", "--out", str(self.site.rendered),
             "--config", str(self.instances[0].config)],
            check=True, capture_output=True, text=True, cwd=self.site.root, timeout=120,
        )  # fmt: skip
        self.site.asterisk.cli("dialplan reload")

    def start(self) -> None:
        for instance in self.instances:
            instance.start()
        for instance in self.instances:
            instance.wait_ready()

    def stop(self) -> None:
        for instance in self.instances:
            instance.stop()

    def living(self) -> list[Instance]:
        return [i for i in self.instances if i.alive]

    def logs(self) -> str:
        return "\n".join(f"--- instance {i.index}:\n{i.tail(30)}" for i in self.instances)


# ------------------------------------------------------------------- the webhook receiver


@dataclass
class Delivery:
    action: str
    callid: str
    body: dict[str, Any]


class WebhookReceiver:
    """A real aiohttp server on loopback that acknowledges and keeps every delivery."""

    def __init__(self) -> None:
        self.port = free_tcp_port()
        self.deliveries: list[Delivery] = []
        self._runner: web.AppRunner | None = None
        self.changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.deliveries.append(Delivery(body["action"], str(body["data"]["callid"]), body))
        self.changed.set()
        return web.json_response({"ack": "ok"})

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def count(self, action: str, callid: str) -> int:
        return sum(1 for d in self.deliveries if d.action == action and d.callid == callid)


# ------------------------------------------------------------- consoles that move on


@dataclass
class Connection:
    instance: int
    opened: float
    closed: float | None = None


class RoamingConsole:
    """An agent's console: logs in on one instance and keeps /ws open; when the socket
    closes because the instance died, opens it on the next living one with the same
    session cookie (a load balancer in front of the instances does just that)."""

    def __init__(self, extension: str, cluster: Cluster, first: int) -> None:
        self.extension = extension
        self.cluster = cluster
        self.current = first
        self.messages: list[dict[str, Any]] = []
        self.connections: list[Connection] = []
        self.refused: list[str] = []
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _base(self, index: int) -> str:
        return self.cluster.instances[index].base

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the console is on an IP address
        )
        base = self._base(self.current)
        async with self._session.post(
            f"{base}/login",
            data={"extension": self.extension, "password": CONSOLE_PASSWORD},
            headers={"Accept": "application/json", "Origin": base},
        ) as response:
            assert response.status == 200, await response.text()
        ws = await self._open(self.current)
        assert ws is not None, self.refused
        self._task = asyncio.create_task(self._run(ws))
        return self

    async def _open(self, index: int) -> aiohttp.ClientWebSocketResponse | None:
        assert self._session is not None
        base = self._base(index)
        try:
            ws = await self._session.ws_connect(f"{base}/ws", headers={"Origin": base})
        except (aiohttp.ClientError, OSError) as exc:
            self.refused.append(f"instance {index}: {exc}")
            return None
        self.current = index
        self.connections.append(Connection(index, time.monotonic()))
        return ws

    async def _run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.messages.append(json.loads(message.data))
            self.connections[-1].closed = time.monotonic()
            if self._stopping:
                return
            reopened = None
            while reopened is None:
                for instance in self.cluster.living():
                    reopened = await self._open(instance.index)
                    if reopened is not None:
                        break
                else:
                    await asyncio.sleep(0.2)
            ws = reopened

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    def got(self, call_id: str, want: Callable[[str], bool] = lambda _: True) -> bool:
        return any(m.get("call_id") == call_id and want(str(m.get("type"))) for m in self.messages)
