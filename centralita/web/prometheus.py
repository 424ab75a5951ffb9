"""`GET /metrics`: the Prometheus text of every metric (the metric objects are in
`centralita.metrics`; this handler reads the app's state into the gauges that mirror it)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.exposition import generate_latest

from centralita.keys import AGI_SERVER, ASTERISKS, HUB, STORE
from centralita.metrics import (
    ACTIVE_CALLS,
    AMI_CONNECTED,
    ASTERISK_CONNECTED,
    CONSOLE_SOCKETS,
    WEBHOOK_BACKLOG,
)


async def refresh_gauges(app: web.Application) -> None:
    """Read the app's state into the gauges that mirror it (at scrape time)."""
    server = app.get(AGI_SERVER)
    if server is not None:
        ACTIVE_CALLS.set(len(server.sessions))
        server.flush_command_times()  # the round trips counted since the last sweep
    asterisks = app.get(ASTERISKS)
    # 1 while every server's link is up; each server's own in centralita_asterisk_connected.
    AMI_CONNECTED.set(1 if asterisks is not None and asterisks.all_connected else 0)
    for link in asterisks or ():
        ASTERISK_CONNECTED.labels(server=link.name).set(1 if link.connected else 0)
    hub = app.get(HUB)
    if hub is not None:
        CONSOLE_SOCKETS.set(hub.count())
    store = app.get(STORE)
    if store is not None:
        WEBHOOK_BACKLOG.set(await store.outbox_backlog())


async def metrics_handler(request: web.Request) -> web.Response:
    """`GET /metrics`: the default registry in Prometheus text format."""
    await refresh_gauges(request.app)
    body = generate_latest(REGISTRY)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response
