"""The CRM client against a real aiohttp server on loopback playing the CRM.

`FakeCrm` is also used by the customer-ID flow tests: it records every request (method, path,
raw body, headers) and answers with whatever the test sets in `fake.reply`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from agi.flows.context import CrmReply
from centralita.crm import MAX_BODY, CrmClient
from dialplan.model import HANGUP, CrmSettings, CustomerIdNode, Destination

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True)
class Seen:
    """One request as the CRM received it."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]


def answer(destination: object, status: object = "ok") -> Handler:
    """A handler answering the OMniLeads JSON shape."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": status, "destination": destination})

    return handler


def raw(body: str | bytes, status: int = 200, content_type: str = "text/html") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        data = body.encode() if isinstance(body, str) else body
        return web.Response(body=data, status=status, content_type=content_type)

    return handler


@dataclass
class FakeCrm:
    """A real aiohttp server on 127.0.0.1 that plays the CRM."""

    reply: Handler = field(default_factory=lambda: answer("true"))
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set on each request
    bytes_sent: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/customer"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, body, dict(request.headers)))
        self.arrived.set()
        return await self.reply(request)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()  # let held handlers finish
        if self._runner is not None:
            await self._runner.cleanup()

    # -- replies that need the fake's state ---------------------------------------------------

    def slow(self, then: Handler | None = None) -> Handler:
        """Hold the reply until `release` is set (bounded), then answer `then` (true)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                await asyncio.wait_for(self.release.wait(), 10)
            except TimeoutError:
                pass
            return await (then or answer("true"))(request)

        return handler

    def huge(self, size: int = TEN_MB, *, declare_length: bool = False) -> Handler:
        """A 200 with `size` bytes of JSON-looking body, chunked unless `declare_length`."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            if declare_length:
                response.content_length = size
            await response.prepare(request)
            chunk = b" " * 65536
            try:
                sent = 0
                while sent < size:
                    piece = chunk[: min(len(chunk), size - sent)]
                    await response.write(piece)
                    sent += len(piece)
                    self.bytes_sent = sent
                await response.write_eof()
            except (ConnectionError, OSError):
                pass  # the client stopped reading and closed: what we want
            return response

        return handler


@pytest.fixture
async def fake() -> AsyncIterator[FakeCrm]:
    async with FakeCrm() as crm:
        yield crm


def node_for(url: str, mode: str = "crm-bool", name: str = "vip-check") -> CustomerIdNode:
    return CustomerIdNode(
        name=name,
        id=1,
        mode=mode,
        url=url,
        prompt="centralita/enter-customer-id",
        min_digits=6,
        max_digits=6,
        timeout_s=10,
        retries=3,
        success=Destination("queue", "support-en"),
        failure=HANGUP,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def crm_settings(**kwargs: object) -> CrmSettings:
    base: dict[str, object] = {
        "user_agent": "OMniLeads",
        "timeout_s": 5.0,  # generous: a loaded CI machine must not turn an answer into a timeout
        "breaker_failures": 3,
        "breaker_cooldown_s": 30.0,
    }
    base.update(kwargs)
    return CrmSettings(**base)  # type: ignore[arg-type]


def metric(result: str) -> float:
    return REGISTRY.get_sample_value("centralita_crm_requests_total", {"result": result}) or 0.0


async def ask(fake: FakeCrm, handler: Handler, **settings: object) -> CrmReply:
    fake.reply = handler
    async with CrmClient(crm_settings(**settings)) as client:
        return await client.ask(node_for(fake.url), "123456")


# -- the request ----------------------------------------------------------------------------


async def test_request_body_and_user_agent_are_exact(fake: FakeCrm) -> None:
    reply = await ask(fake, answer("true"))
    assert reply == CrmReply("true")
    assert len(fake.seen) == 1
    seen = fake.seen[0]
    assert seen.method == "POST"
    assert seen.path == "/customer"
    assert seen.body == b"idContact=123456"
    assert seen.headers["User-Agent"] == "OMniLeads"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_one_pooled_connection_serves_many_requests(fake: FakeCrm) -> None:
    peers: set[object] = set()

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return web.json_response({"status": "ok", "destination": "false"})

    fake.reply = handler
    async with CrmClient(crm_settings()) as client:
        for _ in range(5):
            assert await client.ask(node_for(fake.url), "123456") == CrmReply("false")
    assert len(fake.seen) == 5
    assert len(peers) == 1  # keep-alive: one TCP connection, reused


# -- every reply form -----------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["true", "false", "1,2", "2,1", "3,1", "5,0", "9,1"])
async def test_good_answers_pass_through(fake: FakeCrm, destination: str) -> None:
    before = metric("ok")
    assert await ask(fake, answer(destination)) == CrmReply(destination)
    assert metric("ok") == before + 1


@pytest.mark.parametrize(
    ("handler", "result"),
    [
        (answer("true", status="fail"), "status_not_ok"),
        (answer("true", status=None), "status_not_ok"),
        (raw("<html><body>Welcome</body></html>"), "not_json"),
        (raw("", content_type="application/json"), "not_json"),
        (raw("[1, 2]", content_type="application/json"), "not_json"),
        (raw(b"\xff\xfe\x00garbage", content_type="application/json"), "not_json"),
        (raw('{"status": "ok"}', content_type="application/json"), "bad_destination"),
        (answer(12), "bad_destination"),
        (answer(""), "bad_destination"),
        (answer("x" * 65), "bad_destination"),
        (answer("1,2\n3"), "bad_destination"),
        (raw("oops", status=500), "http_status"),
        (raw("not found", status=404), "http_status"),
        (raw("", status=302), "http_status"),
    ],
)
async def test_unusable_answers_are_errors(fake: FakeCrm, handler: Handler, result: str) -> None:
    before = metric(result)
    reply = await ask(fake, handler)
    assert reply.destination is None
    assert reply.error
    assert metric(result) == before + 1
    assert len(fake.seen) == 1  # never retried


async def test_a_redirect_is_not_followed(fake: FakeCrm) -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        if request.path == "/elsewhere":
            return web.json_response({"status": "ok", "destination": "true"})
        raise web.HTTPFound("/elsewhere")

    reply = await ask(fake, redirect)
    assert reply.destination is None and reply.error == "HTTP 302"
    assert [s.path for s in fake.seen] == ["/customer"]


async def test_a_slow_crm_times_out(fake: FakeCrm) -> None:
    before = metric("timeout")
    reply = await ask(fake, fake.slow(), timeout_s=0.2)
    assert reply.destination is None
    assert reply.error is not None and "0.2" in reply.error
    assert metric("timeout") == before + 1


async def test_connection_refused(unused_port: int) -> None:
    before = metric("connection")
    async with CrmClient(crm_settings()) as client:
        reply = await client.ask(node_for(f"http://127.0.0.1:{unused_port}/customer"), "123456")
    assert reply.destination is None and reply.error
    assert metric("connection") == before + 1


@pytest.mark.parametrize("declare_length", [False, True])
async def test_a_10_mb_body_is_refused_without_reading_it(
    fake: FakeCrm, declare_length: bool
) -> None:
    before = metric("too_large")
    reply = await ask(fake, fake.huge(declare_length=declare_length), timeout_s=5.0)
    assert reply.destination is None
    assert reply.error is not None and "body" in reply.error
    assert metric("too_large") == before + 1


async def test_a_body_of_exactly_the_limit_is_read(fake: FakeCrm) -> None:
    text = json.dumps({"status": "ok", "destination": "1,2"})
    body = text + " " * (MAX_BODY - len(text))
    assert len(body) == MAX_BODY
    assert await ask(fake, raw(body, content_type="application/json")) == CrmReply("1,2")
    reply = await ask(fake, raw(body + " ", content_type="application/json"))
    assert reply.destination is None and reply.error is not None


async def test_the_client_must_be_started(fake: FakeCrm) -> None:
    client = CrmClient(crm_settings())
    reply = await client.ask(node_for(fake.url), "123456")
    assert reply.destination is None
    assert fake.seen == []


async def test_only_digits_are_sent(fake: FakeCrm) -> None:
    async with CrmClient(crm_settings()) as client:
        reply = await client.ask(node_for(fake.url), "12&x=1")
    assert reply.destination is None
    assert fake.seen == []


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl tool) and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_certificates_are_verified(self_signed: tuple[Path, Path]) -> None:
    """A CRM with a self-signed certificate is refused: verification has no off switch."""
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    asked: list[bytes] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        asked.append(await request.read())
        return web.json_response({"status": "ok", "destination": "true"})

    app = web.Application()
    app.router.add_post("/customer", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        server = site._server
        assert isinstance(server, asyncio.Server)
        port = server.sockets[0].getsockname()[1]
        before = metric("connection")
        async with CrmClient(crm_settings(timeout_s=5.0)) as client:
            reply = await client.ask(node_for(f"https://127.0.0.1:{port}/customer"), "123456")
        assert reply.destination is None
        assert reply.error is not None and "Certificate" in reply.error
        assert metric("connection") == before + 1
        assert asked == []  # the ID never reached an unverified server
    finally:
        await runner.cleanup()


# -- circuit breaker ------------------------------------------------------------------------


async def test_breaker_opens_after_consecutive_failures_and_closes_after_a_probe(
    fake: FakeCrm,
) -> None:
    clock = FakeClock()
    node = node_for(fake.url)
    fake.reply = raw("down", status=503)
    async with CrmClient(crm_settings(), clock=clock) as client:
        breaker = client.breaker(fake.url)
        for _ in range(3):
            reply = await client.ask(node, "123456")
            assert reply.error == "HTTP 503"
        assert breaker.state == "open"
        asked = len(fake.seen)
        assert asked == 3

        # Open: skipped at once, the CRM is not asked.
        skipped = metric("circuit_open")
        clock.now += 29.9
        assert await client.ask(node, "123456") == CrmReply(None, "circuit open")
        assert len(fake.seen) == asked
        assert metric("circuit_open") == skipped + 1

        # Cooldown over: one probe goes through; it fails, so the circuit opens again.
        clock.now += 0.1
        assert (await client.ask(node, "123456")).error == "HTTP 503"
        assert len(fake.seen) == asked + 1
        assert breaker.state == "open"
        assert await client.ask(node, "123456") == CrmReply(None, "circuit open")
        assert len(fake.seen) == asked + 1

        # Next cooldown: the probe succeeds and the circuit closes.
        clock.now += 30
        fake.reply = answer("true")
        assert await client.ask(node, "123456") == CrmReply("true")
        assert breaker.state == "closed"
        for _ in range(4):
            assert await client.ask(node, "123456") == CrmReply("true")
        assert len(fake.seen) == asked + 6


async def test_a_success_resets_the_failure_count(fake: FakeCrm) -> None:
    node = node_for(fake.url)
    async with CrmClient(crm_settings(), clock=FakeClock()) as client:
        for reply in ["fail", "fail", "ok", "fail", "fail"]:
            fake.reply = answer("true", status=reply)
            await client.ask(node, "123456")
        assert client.breaker(fake.url).state == "closed"
        assert len(fake.seen) == 5
        await client.ask(node, "123456")  # third in a row
        assert client.breaker(fake.url).state == "open"


async def test_half_open_lets_exactly_one_request_through(fake: FakeCrm) -> None:
    clock = FakeClock()
    node = node_for(fake.url)
    async with CrmClient(crm_settings(timeout_s=5.0), clock=clock) as client:
        fake.reply = raw("down", status=500)
        for _ in range(3):
            await client.ask(node, "123456")
        clock.now += 31
        fake.release.clear()
        fake.reply = fake.slow()
        fake.arrived.clear()
        probe = asyncio.create_task(client.ask(node, "123456"))
        await asyncio.wait_for(fake.arrived.wait(), 10)
        assert len(fake.seen) == 4
        assert client.breaker(fake.url).state == "half-open"
        # While the probe is out, everyone else is still skipped.
        assert await client.ask(node, "123456") == CrmReply(None, "circuit open")
        fake.release.set()
        assert await probe == CrmReply("true")
        assert client.breaker(fake.url).state == "closed"
        assert len(fake.seen) == 4


async def test_each_crm_url_has_its_own_breaker(fake: FakeCrm) -> None:
    async with FakeCrm() as other, CrmClient(crm_settings(), clock=FakeClock()) as client:
        fake.reply = raw("down", status=500)
        for _ in range(3):
            await client.ask(node_for(fake.url), "123456")
        assert await client.ask(node_for(fake.url), "123456") == CrmReply(None, "circuit open")
        assert await client.ask(node_for(other.url, name="b"), "123456") == CrmReply("true")


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
