"""The agent console and JSON API: login, the `/ws` screen pop, pages, click-to-dial, metrics.

`setup_web(app)` adds the routes and the `console_ctx` cleanup context (pop hub and bridge,
session watch, the webhook sender) to the app built by `centralita.app.create_app`, which
then adds the AMI feed (`centralita.feed`) that fills the bridge and the webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import jinja2
from aiohttp import web

from centralita import metrics
from centralita.agentstate import MEMBER_EVENTS, AgentStates
from centralita.history import History
from centralita.keys import (
    AGENT_STATES,
    AMI_TAPS,
    AUTH,
    BRIDGE,
    HUB,
    SETTINGS,
    STORE,
    TEMPLATES,
    WEBHOOKS,
)
from centralita.pop import PopBridge, PopHub
from centralita.settings import Settings
from centralita.times import shown
from centralita.web import (
    agent_api,
    assets,
    auth,
    callbacks,
    console,
    i18n,
    quality,
    reports,
    supervise,
    wallboard,
)
from centralita.web.admin import setup_admin
from centralita.web.prometheus import metrics_handler
from centralita.web.proxy import setup_proxy
from centralita.webhooks import WebhookSender
from dialplan.model import Site

log = logging.getLogger("centralita.web")

# How often open console sockets are checked against the store's sessions (a revocation
# made by another process, such as `centralita agent passwd`, reaches them within this).
SESSION_CHECK_S = 2.0

# What the browser may load and run: our own files only, so an injected tag would not run
# even if escaping failed somewhere; no framing (clickjacking of the dial buttons).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def templates() -> jinja2.Environment:
    """The console's Jinja2 environment (autoescaped HTML: caller names come from strangers)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("centralita.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["shown"] = shown  # every time on a page: local, with its offset
    env.globals["static"] = assets.static_url  # versioned: cached for good, new on release
    i18n.install(env)
    return env


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Add the security headers to every answer (not to the WebSocket upgrade)."""
    response = await handler(request)
    if not isinstance(response, web.WebSocketResponse):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith(
            ("/api/", "/calls", "/callbacks", "/complaints", "/wallboard", "/reports")
        ):
            response.headers.setdefault("Cache-Control", "no-store")
    return response


async def console_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sessions, the pop hub and bridge, and the webhook sender for the app's lifetime."""
    settings = app[SETTINGS].current
    store = app[STORE]
    key = await auth.load_key(settings.server.secret_key, settings.data_dir, store)
    app[AUTH] = auth.Auth(key, store)
    hub = PopHub()
    app[HUB] = hub
    site = settings.site
    history = History(store, *history_people(site))
    app[BRIDGE] = PopBridge(store, hub, site.crm, on_sent=metrics.pop_sent, history=history)
    states = AgentStates(site, hub, login_queues=settings.console.login_queues)
    app[AGENT_STATES] = states
    # Mirrored from the member events, rebuilt from QueueStatus after every (re)connect, and
    # the link's ups and downs told to the consoles.
    app[AMI_TAPS].add(
        on_event=states.handle,
        events=MEMBER_EVENTS,
        on_link=states.set_link,
        resync=(("QueueStatus", states.rebuild),),
    )
    pusher = asyncio.create_task(states.run(), name="centralita-agent-states")
    sender = WebhookSender(store, settings.webhooks, internal_numbers=internal_numbers(site))
    app[WEBHOOKS] = sender

    def take_reload(new: Settings) -> None:
        history.configure(*history_people(new.site))
        states.configure(new.site, login_queues=new.console.login_queues)
        sender.set_internal_numbers(internal_numbers(new.site))
        sender.set_webhooks(new.webhooks)

    app[SETTINGS].on_reload("the console's agents and histories", take_reload)
    if settings.webhooks:
        sender.start()  # also delivers what a previous run left in the outbox
    watcher = asyncio.create_task(watch_sessions(app), name="centralita-session-watch")
    try:
        yield
    finally:
        for task in (watcher, pusher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sender.stop()


def history_people(site: Site) -> tuple[dict[str, str], list[str]]:
    """The names a history shows for each agent, and who reads every call's notes in it: the
    members whose role's console is supervisor or admin (as `permissions.is_supervisor`)."""
    readers = [
        m.extension
        for m in site.members
        if site.console_permission(m.extension) in ("supervisor", "admin")
    ]
    return {a.extension: a.name for a in site.agents}, readers


def internal_numbers(site: Site) -> list[str]:
    """The numbers a webhook event calls internal: the members' extensions."""
    return [a.extension for a in site.agents]


async def close_ended_sessions(app: web.Application) -> int:
    """Close the console sockets whose session ended since they opened: logged out, or a
    password change or `agent remove` (possibly by the CLI, another process) moved the
    agent's session version on, or a reload left the member out of the config (a hand edit
    keeps the password). Returns how many sessions were closed."""
    hub = app[HUB]
    open_sessions = hub.sessions()
    if not open_sessions:
        return 0
    ended = set(await app[STORE].ended_sessions(open_sessions))
    # One set per check, not a scan of the members per socket (every SESSION_CHECK_S).
    members = {m.extension for m in app[SETTINGS].current.site.members}
    ended |= {sid for agent, sid, _ in open_sessions if agent not in members}
    for sid in ended:
        await hub.close_session(sid, code=auth.WS_CLOSE_LOGGED_OUT, message=b"session ended")
    return len(ended)


async def watch_sessions(app: web.Application) -> None:
    """Every SESSION_CHECK_S, close the sockets of sessions that ended."""
    while True:
        await asyncio.sleep(SESSION_CHECK_S)
        try:
            await close_ended_sessions(app)
        except Exception:  # a store hiccup must not end the watch
            log.exception("checking console sessions failed")


async def close_sockets(app: web.Application) -> None:
    """On shutdown: close every console socket (1001 going away) so the app can stop."""
    hub = app.get(HUB)
    if hub is not None:
        await hub.close_all()


def setup_web(app: web.Application) -> None:
    """Add the console, the JSON API, /ws and /metrics to the app."""
    app[TEMPLATES] = templates()
    setup_proxy(app)  # first: every handler sees the client behind a trusted proxy
    app.middlewares.append(security_headers)
    app.middlewares.append(assets.cache_headers)
    app.middlewares.append(console.language_middleware)
    app.cleanup_ctx.append(console_ctx)
    app.cleanup_ctx.append(wallboard.wallboard_ctx)  # after console_ctx: reads AGENT_STATES
    app.on_shutdown.append(close_sockets)
    app.on_shutdown.append(wallboard.close_sockets)
    r = app.router
    r.add_get("/login", auth.login_page)
    r.add_post("/login", auth.login)
    r.add_post("/logout", auth.logout)
    r.add_get("/", console.console_page)
    r.add_get("/ws", console.websocket)
    r.add_get("/calls", console.calls_page)
    r.add_get("/calls.csv", console.calls_csv)
    r.add_get("/api/calls", console.api_calls)
    r.add_get("/api/contacts", console.api_contacts)
    r.add_post("/api/contacts", console.api_create_contact)
    r.add_post("/api/contacts/{contact_id:[0-9]+}/numbers", console.api_link_number)
    r.add_post("/api/outcomes", console.api_outcome)
    r.add_post("/api/dial", console.api_dial)
    r.add_post("/api/pops/dismiss", console.api_dismiss)
    r.add_post("/api/events/callmyway", console.api_callmyway)
    setup_admin(app)
    agent_api.add_routes(r)
    supervise.add_routes(r)
    quality.setup_quality(app)
    wallboard.add_routes(r)
    callbacks.add_routes(r)
    reports.add_routes(r)
    r.add_get("/metrics", metrics_handler)
    r.add_get(assets.PREFIX + "{path:.+}", assets.serve_static)
