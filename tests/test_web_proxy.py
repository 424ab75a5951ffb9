"""Behind a reverse proxy: `[server] trusted_proxies` and the X-Forwarded-* headers."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from test_web_support import PASSWORD, console_env

from centralita.web.proxy import client_of, networks

TRUSTED = networks(["127.0.0.1/32", "10.0.0.0/8"])


def request(peer: str, **headers: str) -> object:
    req = make_mocked_request("GET", "/", headers={"Host": "10.0.0.5:8080", **headers})
    # make_mocked_request has no peer: give it one.
    req._transport_peername = (peer, 40000)
    return req


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # From the trusted proxy: the client and its scheme (the host is the Host header).
        (
            "127.0.0.1",
            {
                "X-Forwarded-For": "203.0.113.7",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "cc.example.com",
            },
            ("203.0.113.7", "https"),
        ),
        # A client's own claim on the left is ignored: the first untrusted hop from the right.
        (
            "127.0.0.1",
            {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.1.2.3"},
            ("203.0.113.7", "http"),
        ),
        # Not from a trusted proxy: the headers are anyone's words.
        (
            "192.0.2.9",
            {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
            ("192.0.2.9", "http"),
        ),
        # Garbage is not believed.
        (
            "127.0.0.1",
            {"X-Forwarded-For": "not-an-ip", "X-Forwarded-Proto": "gopher"},
            ("127.0.0.1", "http"),
        ),
    ],
)
def test_the_client_behind_a_trusted_proxy(
    peer: str, headers: dict[str, str], expected: tuple[str, str]
) -> None:
    assert tuple(client_of(request(peer, **headers), TRUSTED)) == expected  # type: ignore[arg-type]


def test_without_trusted_proxies_no_header_counts() -> None:
    req = request("127.0.0.1", **{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
    assert tuple(client_of(req, ())) == ("127.0.0.1", "http")  # type: ignore[arg-type]


def trust_loopback(text: str) -> str:
    return text.replace("trusted_proxies = []", 'trusted_proxies = ["127.0.0.1/32"]')


# As nginx sends it (Host $http_host): the browser's host, the client, https.
PROXIED = {
    "Host": "cc.example.com",
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "Origin": "https://cc.example.com",
    "Accept": "application/json",
}


async def login(
    client: aiohttp.ClientSession, headers: dict[str, str], password: str, extension: str = "1001"
) -> tuple[int, bool | None]:
    """The answer's status and whether its session cookie is Secure (None: no cookie)."""
    async with client.post(
        "/login", data={"extension": extension, "password": password}, headers=headers
    ) as resp:
        cookie = resp.cookies.get("centralita_session")
        return resp.status, None if cookie is None else bool(cookie["secure"])


async def test_login_behind_a_trusted_proxy(tmp_path: Path) -> None:
    async with console_env(tmp_path, edit=trust_loopback) as env, env.session() as client:
        await env.store.set_agent_password("1001", PASSWORD)
        # The browser's Origin is the proxy's https address; the cookie is Secure.
        assert await login(client, PROXIED, PASSWORD) == (200, True)
        # The rate limit counts the client's address, not the proxy's: after enough failures
        # from 203.0.113.7, it is refused for another extension too, 203.0.113.8 is not.
        for extension in (f"10{n:02d}" for n in range(10, 40)):
            status, _ = await login(client, PROXIED, "wrong password", extension)
            if status == 429:
                break
        assert status == 429
        assert (await login(client, PROXIED, "wrong password", "1003"))[0] == 429
        other = {**PROXIED, "X-Forwarded-For": "203.0.113.8"}
        assert await login(client, other, "wrong password", "1003") == (401, None)


async def test_the_same_headers_from_an_untrusted_peer_change_nothing(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        await env.store.set_agent_password("1001", PASSWORD)
        # The Origin names a site this server is not (http://127.0.0.1:port): refused.
        assert (await login(client, PROXIED, PASSWORD))[0] == 403
        plain = {k: v for k, v in PROXIED.items() if k != "Origin"}
        assert await login(client, plain, PASSWORD) == (200, False)
