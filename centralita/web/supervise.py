"""The supervisors' actions on agents: pause, queue login and logout, listen-in.

    POST /api/supervisor/agents/{extension}/pause         {paused, reason, queue?}
    POST /api/supervisor/agents/{extension}/queues/{queue} {logged_in}
    POST /api/supervisor/agents/{extension}/spy           {mode: listen|whisper|barge}

Every route needs a session, the CSRF token and a supervisor (a role whose console is
`supervisor` or `admin`, centralita/web/permissions.py), checked on the server for every
request: 403 `not_supervisor` otherwise. 404 for an agent or queue the config does not have,
503 `ami_down` while AMI is away, 409 when Asterisk refuses. Pause and queue login use the
agent's own code (centralita/web/agent_api.py), with the agent's device as the interface, on
the servers that host the agent (centralita/asterisks.py); the wallboard and the agent's
console both change when app_queue's member event comes back.

Listen-in rings the supervisor's own phone (their member's device) with an AMI Originate, on
the server that carries the agent's call, into the supervisors-only spy context, which runs
ChanSpy on the agent's channel (ami/spy.py, docs/admin.md). The request answers once the
supervisor picked up (or the phone gave up).

Each action Asterisk took or refused is written to the audit log (`supervisor.pause`,
`supervisor.unpause`, `supervisor.queue_login`, `supervisor.queue_logout`,
`supervisor.listen|whisper|barge`): the actor, the agent as the subject, and a JSON
`changes` with what was asked and how Asterisk answered.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ami.spy import spy
from centralita.asterisks import AsteriskLink
from centralita.keys import AGENT_STATES, ASTERISKS, SETTINGS, STORE
from centralita.web.agent_api import (
    Refused,
    api_error,
    pause_member,
    read_pause,
    set_member_queue,
)
from centralita.web.auth import Session, require_post
from centralita.web.permissions import is_supervisor
from dialplan.names import SPY_MODES
from dialplan.roles import Member

log = logging.getLogger("centralita.web")

# Device states in which a phone cannot ring (DeviceStateChange tokens,
# include/asterisk/devicestate.h).
NO_PHONE_STATES = frozenset({"UNAVAILABLE", "INVALID"})
# OriginateResponse reasons where the supervisor's phone was reached but did not take the call.
NOT_ANSWERED = frozenset({"no answer", "busy", "hung up"})
# send_originate's outcomes when the AMI link went away before Asterisk answered.
LINK_LOST = frozenset({"not sent", "connection lost"})
SPY_RING_S = 30.0


async def _supervisor_post(request: web.Request) -> tuple[Session, dict[str, object], Member]:
    """The supervisor's session and body, and the agent of the URL (403, then 404)."""
    session, body = await require_post(request)
    if not is_supervisor(request, session):
        raise api_error(
            403,
            "only supervisors may act on agents (a role whose console is supervisor or admin)",
            "not_supervisor",
        )
    extension = request.match_info["extension"]
    agent = request.app[SETTINGS].current.site.member(extension)
    if agent is None:
        raise api_error(404, f"there is no agent {extension!r}", "unknown_agent")
    return session, body, agent


async def _audit(
    request: web.Request,
    session: Session,
    action: str,
    agent: Member,
    changes: dict[str, object],
) -> None:
    await request.app[STORE].add_audit(
        actor=session.extension,
        action=action,
        subject=agent.extension,
        changes=json.dumps(changes, ensure_ascii=False, sort_keys=True),
    )


def _queue_param(request: web.Request, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise api_error(400, "queue must be a queue's name", "bad_field", "queue")
    if request.app[SETTINGS].current.site.queue(name) is None:
        raise api_error(404, f"there is no queue {name!r}", "unknown_queue")
    return name


async def api_pause(request: web.Request) -> web.Response:
    """Pause or unpause an agent with a reason, in every queue they are in or in `queue`."""
    session, body, agent = await _supervisor_post(request)
    paused, reason = read_pause(request, body)
    queue = body.get("queue")
    queue = None if queue is None else _queue_param(request, queue)
    action = "supervisor.pause" if paused else "supervisor.unpause"
    asked: dict[str, object] = {"paused": paused, "reason": reason, "queue": queue}
    try:
        await pause_member(request, agent.extension, paused, reason, queue)
    except Refused as exc:
        await _audit(request, session, action, agent, {**asked, "refused": exc.message})
        raise exc.answer() from None
    await _audit(request, session, action, agent, asked)
    log.info("supervisor %s: %s %s (%s)", session.extension, action, agent.extension, reason)
    return web.json_response({"ok": True})


async def api_queue(request: web.Request) -> web.Response:
    """Log an agent in to (QueueAdd, a dynamic member) or out of (QueueRemove) a queue."""
    session, body, agent = await _supervisor_post(request)
    queue = _queue_param(request, request.match_info["queue"])
    logged_in = body.get("logged_in")
    if not isinstance(logged_in, bool):
        raise api_error(400, "logged_in must be true or false", "bad_field", "logged_in")
    role = request.app[SETTINGS].current.site.role(agent.role)
    if logged_in and role is not None and not role.queue_calls:
        raise api_error(
            409, f"{agent.name}'s role {role.name!r} takes no queue calls", "no_queue_calls"
        )
    action = "supervisor.queue_login" if logged_in else "supervisor.queue_logout"
    asked: dict[str, object] = {"queue": queue, "logged_in": logged_in}
    try:
        await set_member_queue(
            request,
            agent.extension,
            queue,
            logged_in,
            subject=f"{agent.name} ({agent.extension}) is",
        )
    except Refused as exc:
        await _audit(request, session, action, agent, {**asked, "refused": exc.message})
        raise exc.answer() from None
    await _audit(request, session, action, agent, asked)
    log.info("supervisor %s: %s %s %s", session.extension, action, agent.extension, queue)
    return web.json_response({"ok": True})


async def api_spy(request: web.Request) -> web.Response:
    """Listen to, whisper to or barge into the agent's call from the supervisor's own phone."""
    session, body, agent = await _supervisor_post(request)
    mode = body.get("mode")
    if not isinstance(mode, str) or mode not in SPY_MODES:
        raise api_error(400, f"mode must be one of {', '.join(SPY_MODES)}", "bad_field", "mode")
    if agent.extension == session.extension:
        raise api_error(400, "you cannot listen to your own calls", "own_call")
    site = request.app[SETTINGS].current.site
    if site.member(session.extension) is None:  # a supervisor the config no longer has
        raise api_error(409, "you have no phone in the configuration", "no_phone")
    phone = site.device(session.extension)
    # ChanSpy runs on the server that carries the agent's call, so the supervisor's phone
    # must ring there (a channel of another server cannot be spied on).
    link, channel = _agent_call(request, agent)
    listener = link.listener
    state = listener.tracker.device_state(phone)
    unknown_there = _several(request) and channel is not None and state is None
    if state in NO_PHONE_STATES or unknown_there:
        where = f" on {link.name!r}, which carries the call" if _several(request) else ""
        raise api_error(409, f"your phone ({phone}) is not registered{where}", "no_phone")
    if channel is None:
        raise api_error(409, f"{agent.name} ({agent.extension}) is not on a call", "no_call")
    result = await spy(
        listener,
        phone,
        mode,
        agent=agent.extension,
        agent_device=request.app[AGENT_STATES].device(agent.extension),
        channel=channel,
        ring_timeout_s=SPY_RING_S,
    )
    action = f"supervisor.{mode}"
    asked: dict[str, object] = {"mode": mode, "channel": channel, "phone": phone}
    if not result.success:
        why = result.message or result.reason_text
        await _audit(request, session, action, agent, {**asked, "refused": why})
        if result.reason_text in LINK_LOST:
            raise api_error(503, f"Asterisk is not connected: {why}", "ami_down")
        code = "not_answered" if result.reason_text in NOT_ANSWERED else "refused"
        raise api_error(409, f"the call to your phone failed: {why}", code)
    await _audit(request, session, action, agent, asked)
    log.info("supervisor %s: %s on %s (%s)", session.extension, mode, agent.extension, channel)
    return web.json_response({"ok": True, "channel": channel})


def _several(request: web.Request) -> bool:
    asterisks = request.app.get(ASTERISKS)
    return asterisks is not None and asterisks.several


def _agent_call(request: web.Request, agent: Member) -> tuple[AsteriskLink, str | None]:
    """The connected server on which `agent` talks now and the agent's channel there (the
    first connected server and None when no server has the call): 503 `ami_down` when no
    server is connected."""
    asterisks = request.app.get(ASTERISKS)
    links = [] if asterisks is None else [link for link in asterisks if link.connected]
    if not links:
        raise api_error(503, "Asterisk is not connected", "ami_down")
    for link in links:
        channel = link.tracker.agent_call_channel(agent.extension)
        if channel is not None:
            return link, channel
    return links[0], None


def add_routes(router: web.UrlDispatcher) -> None:
    """The supervisors' action routes."""
    router.add_post("/api/supervisor/agents/{extension}/pause", api_pause)
    router.add_post("/api/supervisor/agents/{extension}/queues/{queue}", api_queue)
    router.add_post("/api/supervisor/agents/{extension}/spy", api_spy)
