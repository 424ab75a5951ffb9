"""The Centralita application: one aiohttp app whose lifecycle also runs FastAGI and AMI.

Long-lived resources are opened and closed in `cleanup_ctx` (the aiohttp way): the store, the
FastAGI server, and whatever the features add (AMI listener, webhook sender). They are kept in
typed app state under `web.AppKey`s.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from agi.flows import load_flows
from agi.router import FLOWS
from agi.server import AgiServer, ServerLimits
from centralita.context import AppFlowContext
from centralita.crm import CrmClient
from centralita.looplag import lag_ctx
from centralita.settings import Settings
from centralita.store import Store, default_path

log = logging.getLogger("centralita")

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
FLOW_CONTEXT = web.AppKey("flow_context", AppFlowContext)
AGI_SERVER = web.AppKey("agi_server", AgiServer)
CRM = web.AppKey("crm", CrmClient)


def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The store of `settings` (for the CLI and the app alike)."""
    return _store(settings)


async def _store(settings: Settings) -> AsyncIterator[Store]:
    manager = settings.site.manager
    store = await Store.open(
        default_path(settings.data_dir),
        region=manager.default_region,
        match_digits=manager.match_digits,
        min_digits=manager.min_digits,
    )
    try:
        yield store
    finally:
        await store.close()


async def crm_ctx(app: web.Application) -> AsyncIterator[None]:
    """One pooled CRM client for the app's lifetime."""
    async with CrmClient(app[SETTINGS].site.crm) as crm:
        app[CRM] = crm
        yield


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the SQLite store for the app's lifetime (an open connection keeps a process alive)."""
    async for store in open_store(app[SETTINGS]):
        app[STORE] = store
        app[FLOW_CONTEXT] = AppFlowContext(app[SETTINGS], store, app[CRM])
        yield


async def agi_ctx(app: web.Application) -> AsyncIterator[None]:
    """Serve FastAGI while the app runs; on shutdown let calls in a flow finish."""
    settings = app[SETTINGS]
    server_settings = settings.server
    load_flows()
    server = AgiServer(
        FLOWS,
        context=app[FLOW_CONTEXT],
        host=server_settings.agi_host,
        port=server_settings.agi_port,
        allowed_peers=server_settings.allowed_peers,
        limits=ServerLimits(
            max_sessions=server_settings.max_sessions,
            header_timeout_s=server_settings.header_timeout_s,
            reply_timeout_s=server_settings.reply_timeout_s,
            shutdown_grace_s=server_settings.shutdown_grace_s,
        ),
        fallback_route=str(server_settings.fallback),
    )
    await server.start()
    app[AGI_SERVER] = server
    yield
    await server.stop()


async def healthz(request: web.Request) -> web.Response:
    """Liveness and what is connected: FastAGI listening, AMI connected or away."""
    app = request.app
    server = app[AGI_SERVER]
    body: dict[str, object] = {
        "status": "ok",
        "agi": {"listening": True, "port": server.port, "sessions": len(server.sessions)},
    }
    for check in app.get(HEALTH_CHECKS, []):
        body.update(check(app))
    return web.json_response(body)


HEALTH_CHECKS = web.AppKey("health_checks", list)


async def freeze_startup_objects(app: web.Application) -> None:
    """Move everything allocated at startup out of the garbage collector's way.

    Imports, templates and settings live as long as the process; with `gc.freeze()` the full
    collections no longer walk them, which shortened pauses of the event loop (pops, FastAGI
    replies) in bench/pop_bench.py.
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings) -> web.Application:
    """Build the app: store, FastAGI, console; features add their own cleanup contexts."""
    app = web.Application()
    app[SETTINGS] = settings
    app[HEALTH_CHECKS] = []
    # Started in this order, closed in reverse: FastAGI stops first, then the store, the CRM.
    app.cleanup_ctx.append(crm_ctx)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(agi_ctx)
    app.cleanup_ctx.append(lag_ctx)  # /metrics: centralita_event_loop_lag_seconds
    app.router.add_get("/healthz", healthz)
    from centralita.web import setup_web

    setup_web(app)
    return app


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully within the configured grace."""
    app = create_app(settings)
    # After the cleanup contexts' startup, which aiohttp runs as the first on_startup handler.
    app.on_startup.append(freeze_startup_objects)
    log.info(
        "Centralita: FastAGI on %s:%d, web on http://%s:%d/ (config: %s)",
        settings.server.agi_host,
        settings.server.agi_port,
        settings.server.web_host,
        settings.server.web_port,
        settings.file or "built-in demo",
    )
    web.run_app(
        app,
        host=settings.server.web_host,
        port=settings.server.web_port,
        shutdown_timeout=settings.server.shutdown_grace_s,
        print=None,
        access_log=None,
    )
