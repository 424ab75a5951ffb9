"""The Centralita application: one aiohttp app whose lifecycle also runs FastAGI and AMI.

Long-lived resources are opened and closed in `cleanup_ctx` (the aiohttp way): the store, the
FastAGI server, and whatever the features add (AMI listener, webhook sender). They are kept in
typed app state under `web.AppKey`s.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from agi import loops
from agi.flows import load_flows
from agi.router import FLOWS
from agi.server import AgiServer, ServerLimits
from centralita import feed, queuelog
from centralita.amitaps import AmiTaps
from centralita.context import AppFlowContext
from centralita.crm import CrmClient
from centralita.csvfiles import CsvFiles
from centralita.datadir import lock_data_dir
from centralita.keys import (
    AGI_SERVER,
    AMI_TAPS,
    CRM,
    FLOW_CONTEXT,
    HEALTH_CHECKS,
    SETTINGS,
    STORE,
)
from centralita.live import LiveSettings
from centralita.looplag import lag_ctx
from centralita.metrics import PrometheusAgiMetrics
from centralita.settings import Settings
from centralita.store import open_store
from centralita.web import setup_web
from dialplan.validate import ConfigError

log = logging.getLogger("centralita")


async def crm_ctx(app: web.Application) -> AsyncIterator[None]:
    """One pooled CRM client for the app's lifetime."""
    async with CrmClient(app[SETTINGS].current.site.crm) as crm:
        app[CRM] = crm
        yield


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the store (`[store] url`: SQLite or PostgreSQL) for the app's lifetime."""
    live = app[SETTINGS]
    async with open_store(live.current) as store:
        # callbacks.csv and complaints.csv: caught up with the store now (SQLite), or by
        # the instance that holds the writer lease (PostgreSQL; centralita/csvfiles.py).
        csv_files = CsvFiles(store, live.current)
        await csv_files.start()
        try:
            app[STORE] = store
            flow_context = AppFlowContext(live.current, store, app[CRM], csv_files)
            app[FLOW_CONTEXT] = flow_context
            # The flows read the site from their context each time they need it: a reload
            # reaches a call in a flow from its next read on.
            live.on_reload("the call flows", flow_context.take_settings)
            yield
        finally:
            await csv_files.stop()


async def agi_ctx(app: web.Application) -> AsyncIterator[None]:
    """Serve FastAGI while the app runs; on shutdown let calls in a flow finish."""
    settings = app[SETTINGS].current
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
            max_sessions_per_peer=server_settings.max_sessions_per_peer,
            header_timeout_s=server_settings.header_timeout_s,
            reply_timeout_s=server_settings.reply_timeout_s,
            shutdown_grace_s=server_settings.shutdown_grace_s,
        ),
        fallback_route=str(server_settings.fallback),
        metrics=PrometheusAgiMetrics(FLOWS),
    )
    await server.start()
    app[AGI_SERVER] = server
    yield
    await server.stop()


async def reload_signal_ctx(app: web.Application) -> AsyncIterator[None]:
    """SIGHUP applies the config file again (`systemctl reload centralita`;
    centralita/live.py says what it applies and what waits for a restart)."""
    live = app[SETTINGS]

    def on_hangup() -> None:
        try:
            done = live.reload_file()
        except ConfigError as exc:
            log.error("SIGHUP: the config file was not applied (the server runs on): %s", exc)
            return
        if not done.applied:
            log.info("SIGHUP: the config file holds nothing new to apply")
        if done.waiting:
            log.warning("SIGHUP: waiting for a restart: %s", ", ".join(done.waiting))

    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


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


async def freeze_startup_objects(app: web.Application) -> None:
    """Move everything allocated at startup out of the garbage collector's way."""
    tune_collector()


def tune_collector() -> None:
    """What `serve` does to the garbage collector once started (bench/agi_load.py's server
    does the same, so that it measures the server as it runs).

    Imports, templates and settings live as long as the process; with `gc.freeze()` the full
    collections no longer walk them, which shortened pauses of the event loop (pops, FastAGI
    replies) in bench/pop_bench.py. Young collections start after YOUNG_GC_THRESHOLD new
    objects instead of 700.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


# How many new container objects start a young collection (CPython's default: 700). The AMI
# feed allocates thousands a second that outlive one event (call state, queue rows waiting to
# be written, parsed header lines kept by ami/protocol.py), so with 700 the collector ran
# about 32 young and 3 older collections a second at 200 calls/s: 1.2 s of a 26 s run of
# bench/wallboard_bench.py, with pauses of up to 35 ms in the loop. At 20,000: 6 young
# collections in the same run, 0.14 s in all.
YOUNG_GC_THRESHOLD = 20_000


def create_app(settings: Settings) -> web.Application:
    """Build the app: store, FastAGI, the console, then the AMI feed that fills its pops."""
    app = web.Application()
    app[SETTINGS] = LiveSettings(settings)
    app[HEALTH_CHECKS] = []
    app[AMI_TAPS] = AmiTaps()
    # Started in this order, closed in reverse: the AMI feed stops first, then the console,
    # FastAGI, the store, the CRM.
    app.cleanup_ctx.append(crm_ctx)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(agi_ctx)
    app.cleanup_ctx.append(lag_ctx)  # /metrics: centralita_event_loop_lag_seconds
    app.router.add_get("/healthz", healthz)
    setup_web(app)  # console_ctx: the pop hub and bridge, the webhook sender
    app.cleanup_ctx.append(queuelog.queuelog_ctx)  # queue events for reports, before the feed
    app.cleanup_ctx.append(feed.ami_ctx)  # after console_ctx: it feeds the bridge and webhooks
    app.cleanup_ctx.append(reload_signal_ctx)  # last: every part has registered for reloads
    app[HEALTH_CHECKS].append(feed.ami_health)
    return app


# glibc's mallopt(M_MMAP_THRESHOLD): allocations at least this big are mmap'd and handed back
# on free. Left alone, glibc raises the threshold after freeing a big block, so scrypt's
# 16 MiB buffers (one per login) then come from per-thread arenas that keep the memory:
# 400 concurrent logins left RSS at 182 MB for good (issue 10, finding 2).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def return_big_allocations() -> bool:
    """Fix glibc's mmap threshold so big freed blocks go back to the system (False when the
    C library is not glibc)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully within the configured grace."""
    lock = lock_data_dir(settings.data_dir)
    try:
        _run(settings)
    finally:
        os.close(lock)


def _run(settings: Settings) -> None:
    return_big_allocations()
    # The loop is made here rather than by run_app so that `[server] event_loop` picks it
    # (agi/loops.py); run_app runs the app on it and closes it at the end.
    loop = loops.new_event_loop(settings.server.event_loop)
    asyncio.set_event_loop(loop)
    app = create_app(settings)
    # After the cleanup contexts' startup, which aiohttp runs as the first on_startup handler.
    app.on_startup.append(freeze_startup_objects)
    log.info(
        "Centralita: FastAGI on %s:%d, web on http://%s:%d/ (config: %s, event loop: %s)",
        settings.server.agi_host,
        settings.server.agi_port,
        settings.server.web_host,
        settings.server.web_port,
        settings.file or "built-in demo",
        settings.server.event_loop,
    )
    web.run_app(
        app,
        loop=loop,
        host=settings.server.web_host,
        port=settings.server.web_port,
        shutdown_timeout=settings.server.shutdown_grace_s,
        print=None,
        access_log=None,
    )
