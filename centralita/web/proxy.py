"""Behind a reverse proxy: the client's address and scheme, from `[server] trusted_proxies`.

A proxy that terminates TLS (docs/deploy.md: nginx, Caddy, HAProxy) connects over plain HTTP
from its own address. Without help, the console would see every agent as the proxy (one login
rate limit for all), would set the session cookie without `Secure`, and would refuse every
login because the browser's `Origin: https://…` is not the `http://…` it was reached on.

`X-Forwarded-For` and `X-Forwarded-Proto` fix that, but anyone can write them, so they are
read only from a peer inside `trusted_proxies`, and `X-Forwarded-For` is read from the right:
the first address that is not a trusted proxy is the client (what a client puts on the left
is its own claim). This is the one place that reads those headers: `behind_proxy` hands the
rest of the app a request whose `remote` and `scheme` (so `secure`) are the client's. The
host is the `Host` header, which the proxies of docs/deploy.md pass on as the browser sent
it; `X-Forwarded-Host` is not read (nginx would pass a client's own one through unchanged).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from aiohttp import web

from centralita.keys import SETTINGS

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Client(NamedTuple):
    ip: str
    scheme: str


def networks(trusted: Sequence[str]) -> tuple[Network, ...]:
    """`[server] trusted_proxies` as networks (validated by the settings already)."""
    return tuple(ipaddress.ip_network(t, strict=False) for t in trusted)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _last(value: str | None) -> str | None:
    """The value the nearest proxy wrote (the last of a comma-separated list)."""
    if not value:
        return None
    return value.rsplit(",", 1)[-1].strip() or None


def client_of(request: web.BaseRequest, trusted: Sequence[Network]) -> Client:
    """The client's address and scheme; the headers count only from a trusted peer."""
    peer = request.remote or ""
    if not trusted or not _trusted(peer, trusted):
        return Client(peer, request.scheme)
    ip = peer
    hops = request.headers.get("X-Forwarded-For", "")
    for hop in reversed([h.strip() for h in hops.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage: keep the last address we could read
        ip = hop
        if not _trusted(hop, trusted):
            break  # the first untrusted hop from the right is the client
    scheme = _last(request.headers.get("X-Forwarded-Proto"))
    return Client(
        ip, scheme.lower() if scheme and scheme.lower() in ("http", "https") else request.scheme
    )


@web.middleware
async def behind_proxy(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give the handlers the client's address and scheme (first middleware)."""
    trusted = request.app[TRUSTED]
    if not trusted:
        return await handler(request)
    client = client_of(request, trusted)
    if client == (request.remote, request.scheme):
        return await handler(request)
    return await handler(request.clone(remote=client.ip, scheme=client.scheme))


TRUSTED = web.AppKey("trusted_proxies", tuple)


def setup_proxy(app: web.Application) -> None:
    """Install `behind_proxy` before every other middleware."""
    app[TRUSTED] = networks(app[SETTINGS].current.server.trusted_proxies)
    app.middlewares.insert(0, behind_proxy)
