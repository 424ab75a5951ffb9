"""Every route of the app that is not meant for agents answers 403 to an agent.

The routes are read from the app's own router, so a supervisor, quality or admin route added
later is covered without touching this file: it must check the role on the server (a link
hidden in the page is not a check). A route meant for agents has to be named in AGENT_ROUTES,
which keeps that list a decision someone made.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from test_web_support import console_env

# (method, route pattern): what an agent may reach. Each still limits what it shows to the
# agent's own calls, callbacks and state (tested in test_web_security, test_web_callbacks,
# test_agent_api...).
AGENT_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/"),
    ("GET", "/ws"),
    ("GET", "/calls"),
    ("GET", "/calls.csv"),
    ("GET", "/api/calls"),
    ("GET", "/api/contacts"),
    ("POST", "/api/contacts"),
    ("POST", "/api/contacts/{contact_id}/numbers"),
    ("POST", "/api/outcomes"),
    ("POST", "/api/dial"),
    ("POST", "/api/pops/dismiss"),
    ("GET", "/api/me"),
    ("POST", "/api/me/preferences"),
    ("POST", "/api/me/pause"),
    ("POST", "/api/me/queues/{queue}"),
    ("GET", "/api/history"),
    ("GET", "/api/numbers/normalize"),
    ("GET", "/api/callbacks/mine"),
    ("POST", "/api/callbacks/{callback_id}/call"),  # only the agent's own: 404 otherwise
    ("POST", "/api/callbacks/{callback_id}/close"),
    ("GET", "/static/{path}"),
}
# Not session routes: their own credentials (a webhook's shared secret, the metrics token
# or loopback), tested in their own files.
OWN_AUTH_ROUTES = {("POST", "/api/events/callmyway"), ("GET", "/metrics")}

# A plausible value for each placeholder, so the request reaches the handler.
SAMPLES = {
    "extension": "1001",
    "path": "console.css",
    "queue": "support-en",
    "name": "support-en",
    "rating_id": "1",
    "uniqueid": "1700000000.1",
    "callback_id": "1",
    "contact_id": "1",
    "table": "queues",
}


def route_table(app: web.Application) -> list[tuple[str, str]]:
    """Every (method, pattern) the app serves; HEAD goes with its GET."""
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        pattern = info.get("path") or info.get("formatter") or info.get("prefix")
        assert isinstance(pattern, str), route
        found.add((route.method, pattern))
    return sorted(found)


def concrete(pattern: str) -> str:
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: SAMPLES[m.group(1)], pattern)


async def test_every_route_not_meant_for_agents_answers_403_to_an_agent(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        routes = route_table(env.app)
        unknown = {r for r in AGENT_ROUTES | OWN_AUTH_ROUTES if r not in routes}
        assert not unknown, f"AGENT_ROUTES names routes the app no longer has: {unknown}"
        guarded = [r for r in routes if r not in AGENT_ROUTES | OWN_AUTH_ROUTES]
        # The pages and actions of issues 12 and 13 are among them (a sanity check on the
        # router reading, not the list itself).
        assert ("GET", "/wallboard") in guarded and ("GET", "/admin") in guarded
        token = await env.login(client, "1002")  # a plain agent
        answers = {}
        for method, pattern in guarded:
            headers = {"X-CSRF-Token": token, "Accept": "application/json"}
            async with client.request(
                method, concrete(pattern), json={}, headers=headers, allow_redirects=False
            ) as resp:
                answers[(method, pattern)] = resp.status
        assert {route: status for route, status in answers.items() if status != 403} == {}


@pytest.mark.parametrize("extension", ["1001"])  # a supervisor
async def test_a_supervisor_is_not_refused_on_the_supervisor_pages(
    tmp_path: Path, extension: str
) -> None:
    """The other side: the same check lets a supervisor through (so the 403s above are the
    role's, not a broken route)."""
    async with console_env(tmp_path) as env, env.session() as client:
        await env.login(client, extension)
        for path in ("/wallboard", "/callbacks", "/complaints"):
            async with client.get(path, allow_redirects=False) as resp:
                assert resp.status == 200, path
