"""The agent desktop's own API: who am I, preferences, pause and queues, history, numbers.

    GET  /api/me                      the agent, their settings, queue state and AMI link
    POST /api/me/preferences          {ui_language, alerts} stored per agent
    POST /api/me/pause                {paused, reason} -> AMI QueuePause
    POST /api/me/queues/{queue}       {member} -> AMI QueueAdd / QueueRemove
    GET  /api/history?number=&limit=  the caller's earlier calls and pending callback
    GET  /api/numbers/normalize?number=   what the dial box would dial

The state lives in Asterisk: pause and queue requests answer once Asterisk took the action,
and the page changes when the member event comes back as `agent.state` on `/ws`
(centralita/agentstate.py). Errors are JSON `{"error", "code", "field"?}`: the message in
English, `code` stable for the page to translate (docs/console.md).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from ami.client import AmiError, AmiListener, AmiNotConnected
from centralita import phone
from centralita.agentprefs import PreferenceError, load_preferences, save_preferences
from centralita.asterisks import AsteriskLink, NoServer
from centralita.history import HISTORY_LIMIT, MAX_HISTORY_LIMIT
from centralita.keys import AGENT_STATES, ASTERISKS, BRIDGE, SETTINGS, STORE
from centralita.web.auth import Session, ascii_digits, require_api, require_post

log = logging.getLogger("centralita.web")


ERROR_CLASSES: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
}


def api_error(status: int, message: str, code: str, field: str | None = None) -> web.HTTPException:
    """A JSON error answer to raise: `{"error": message, "code": code, "field": field}`."""
    body: dict[str, str] = {"error": message, "code": code}
    if field is not None:
        body["field"] = field
    return ERROR_CLASSES[status](text=json.dumps(body), content_type="application/json")


def _agent_language(request: web.Request, session: Session) -> str:
    agent = request.app[SETTINGS].current.site.agent(session.extension)
    return agent.language if agent is not None else "en"


async def me_json(request: web.Request, session: Session) -> dict[str, Any]:
    """`GET /api/me`'s body (also the console page's bootstrap)."""
    settings = request.app[SETTINGS].current
    site = settings.site
    agent = site.agent(session.extension)
    language = agent.language if agent is not None else "en"
    prefs = await load_preferences(request.app[STORE], session.extension, default_language=language)
    states = request.app[AGENT_STATES]
    asterisks = request.app.get(ASTERISKS)
    # The agent's own link: a server their phone may be on is connected.
    connected = asterisks is not None and any(
        link.connected for link in asterisks.hosting(session.extension)
    )
    return {
        "extension": session.extension,
        "name": agent.name if agent is not None else session.extension,
        "language": language,
        "ui_language": prefs["ui_language"],
        "alerts": dict(prefs["alerts"]),
        "pause_reasons": list(settings.console.pause_reasons),
        "dispositions": list(site.dispositions),
        "queues": list(states.allowed(session.extension)),
        "supervisor": site.console_permission(session.extension) in ("supervisor", "admin"),
        "state": dict(states.state(session.extension)),
        "asterisk": {"connected": connected},
    }


async def api_me(request: web.Request) -> web.Response:
    """`GET /api/me`: the logged-in agent, their preferences, queue state and AMI link."""
    session = await require_api(request)
    return web.json_response(await me_json(request, session))


async def api_preferences(request: web.Request) -> web.Response:
    """`POST /api/me/preferences` {ui_language, alerts: {sound, notification, title}}."""
    session, body = await require_post(request)
    try:
        await save_preferences(
            request.app[STORE],
            session.extension,
            body,
            default_language=_agent_language(request, session),
        )
    except PreferenceError as exc:
        raise api_error(400, str(exc), "bad_preference", exc.field or None) from None
    return web.json_response(await me_json(request, session))


def agent_link(request: web.Request, extension: str) -> AsteriskLink:
    """The Asterisk server for an action on `extension`'s phone (centralita/asterisks.py
    `for_agent`): 503 `ami_down` while it is not connected, 409/503 `not_registered` when
    the phone is registered on no connected server."""
    asterisks = request.app.get(ASTERISKS)
    if asterisks is None:
        raise api_error(503, "Asterisk is not connected", "ami_down")
    try:
        return asterisks.for_agent(extension)
    except NoServer as exc:
        raise api_error(exc.status, exc.message, exc.code) from None


def hosting_listeners(request: web.Request, extension: str) -> list[AmiListener]:
    """The listeners of every connected server that may hold `extension`'s queue memberships
    (static members are rendered on each server that hosts the agent): 503 when none is."""
    asterisks = request.app.get(ASTERISKS)
    links = [] if asterisks is None else list(asterisks.hosting(extension))
    up = [link.listener for link in links if link.connected]
    if not up:
        raise api_error(503, "Asterisk is not connected", "ami_down")
    if len(up) < len(links):
        log.warning(
            "queue action for %s: Asterisk %s not connected, sent to the others",
            extension,
            ", ".join(link.name for link in links if not link.connected),
        )
    return up


async def _queue_action(
    listener: AmiListener, action: str, headers: list[tuple[str, str]]
) -> tuple[bool, str]:
    """Send a queue action; (success, Asterisk's message). 503 when AMI is away."""
    try:
        response = await listener.action(action, headers)
    except AmiNotConnected:
        raise api_error(503, "Asterisk is not connected", "ami_down") from None
    except AmiError as exc:  # a timeout
        raise api_error(503, f"Asterisk did not answer {action}: {exc}", "ami_timeout") from None
    return bool(response.is_success), str(response.value("Message"))


async def _queue_action_everywhere(
    listeners: list[AmiListener], action: str, headers: list[tuple[str, str]]
) -> tuple[bool, str]:
    """`_queue_action` on each server: taken when one server took it (an agent is a member
    of a queue on the servers that carry its calls); else the first refusal."""
    answers = [await _queue_action(listener, action, headers) for listener in listeners]
    taken = [message for ok, message in answers if ok]
    if taken:
        return True, taken[0]
    return False, answers[0][1]


class Refused(Exception):
    """Asterisk refused a queue action: the answer to give (`status`, `code`, `text`) and
    Asterisk's own `message` (for the supervisors' audit log)."""

    def __init__(self, status: int, code: str, text: str, message: str) -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.text = text
        self.message = message

    def answer(self) -> web.HTTPException:
        return api_error(self.status, self.text, self.code)


def read_pause(request: web.Request, body: dict[str, object]) -> tuple[bool, str]:
    """The `{paused, reason}` of a pause request, checked: 400 naming the bad field."""
    paused = body.get("paused")
    if not isinstance(paused, bool):
        raise api_error(400, "paused must be true or false", "bad_field", "paused")
    reason = body.get("reason", "")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise api_error(400, "reason must be text", "bad_reason", "reason")
    reasons = request.app[SETTINGS].current.console.pause_reasons
    if paused and reason and reason not in reasons:
        raise api_error(
            400, f"unknown pause reason (one of {', '.join(reasons)})", "bad_reason", "reason"
        )
    return paused, reason


async def pause_member(
    request: web.Request, extension: str, paused: bool, reason: str, queue: str | None = None
) -> None:
    """QueuePause for `extension`'s device, in `queue` or (None) every queue it is in.

    Returns once Asterisk took it; raises Refused when Asterisk refused, 503 when AMI is away.
    """
    # No Queue header: every queue the interface is in (app_queue set_member_paused). The
    # reason is one of the config's words (settings.PAUSE_REASON_CHARS), never free text.
    headers = [("Interface", request.app[AGENT_STATES].device(extension))]
    if queue is not None:
        headers.append(("Queue", queue))
    headers.append(("Paused", "true" if paused else "false"))
    if paused and reason:
        headers.append(("Reason", reason))
    ok, message = await _queue_action_everywhere(
        hosting_listeners(request, extension), "QueuePause", headers
    )
    if not ok:
        # "Interface not found": a member of no queue at all (or not of `queue`).
        raise Refused(409, "not_member", f"Asterisk refused the pause: {message}", message)


async def api_pause(request: web.Request) -> web.Response:
    """`POST /api/me/pause` {paused, reason}: QueuePause in every queue the agent is in.

    Answers `{"ok": true}` once Asterisk took it; the page waits for `agent.state`."""
    session, body = await require_post(request)
    paused, reason = read_pause(request, body)
    try:
        await pause_member(request, session.extension, paused, reason)
    except Refused as exc:
        raise exc.answer() from None
    log.info("agent %s %s (%s)", session.extension, "paused" if paused else "ready", reason)
    return web.json_response({"ok": True})


# Asterisk's refusals of QueueAdd/QueueRemove (manager_add_queue_member,
# manager_remove_queue_member in apps/app_queue.c) -> (status, code, what it means here).
QUEUE_REFUSALS = {
    "Unable to add interface: Already there": (409, "already_member", "already in {queue}"),
    "Unable to remove interface: Not there": (409, "not_member", "not in {queue}"),
    # A `member =>` line of queues.conf (the agent's own queues): only a change of the
    # config and a reload takes it out.
    "Member not dynamic": (
        409,
        "static_member",
        "a permanent member of {queue} (queues.conf): only the configuration can change that",
    ),
    "Unable to add interface to queue: No such queue": (
        404,
        "unknown_queue",
        "Asterisk has no queue {queue} (render and reload the configuration)",
    ),
    "Unable to remove interface from queue: No such queue": (
        404,
        "unknown_queue",
        "Asterisk has no queue {queue} (render and reload the configuration)",
    ),
}


async def set_member_queue(
    request: web.Request, extension: str, queue: str, member: bool, *, subject: str = "You are"
) -> None:
    """Log `extension` in to (QueueAdd, as a dynamic member) or out of (QueueRemove) `queue`.

    Returns once Asterisk took it; raises Refused (`subject` starts its text: "You are",
    "John Smith (1002) is") when Asterisk refused, 503 when AMI is away."""
    settings = request.app[SETTINGS].current
    device = request.app[AGENT_STATES].device(extension)
    if member:
        agent = settings.site.agent(extension)
        headers = [
            ("Queue", queue),
            ("Interface", device),
            ("MemberName", agent.name if agent is not None else extension),
            ("StateInterface", device),
        ]
        # A dynamic member rings where its phone is registered: that server only.
        link = agent_link(request, extension)
        ok, message = await _queue_action(link.listener, "QueueAdd", headers)
    else:
        ok, message = await _queue_action_everywhere(
            hosting_listeners(request, extension),
            "QueueRemove",
            [("Queue", queue), ("Interface", device)],
        )
    if not ok:
        status, code, text = QUEUE_REFUSALS.get(
            message, (502, "refused", "refused by Asterisk: {message}")
        )
        raise Refused(
            status, code, f"{subject} {text.format(queue=queue, message=message)}", message
        )


async def api_queue(request: web.Request) -> web.Response:
    """`POST /api/me/queues/{queue}` {member}: log in to (QueueAdd) or out of (QueueRemove)
    one queue as a dynamic member; the page waits for `agent.state`."""
    session, body = await require_post(request)
    name = request.match_info["queue"]
    settings = request.app[SETTINGS].current
    if settings.site.queue(name) is None:
        raise api_error(404, f"there is no queue {name!r}", "unknown_queue")
    member = body.get("member")
    if not isinstance(member, bool):
        raise api_error(400, "member must be true or false", "bad_field", "member")
    if name not in request.app[AGENT_STATES].allowed(session.extension):
        raise api_error(403, f"you may not log in to queue {name}", "queue_not_allowed")
    try:
        await set_member_queue(request, session.extension, name, member)
    except Refused as exc:
        raise exc.answer() from None
    log.info("agent %s %s queue %s", session.extension, "joined" if member else "left", name)
    return web.json_response({"ok": True})


def _number_param(request: web.Request) -> str:
    number = request.query.get("number", "")
    if not number.strip():
        raise api_error(400, "number is required", "required", "number")
    return number


async def api_normalize(request: web.Request) -> web.Response:
    """`GET /api/numbers/normalize?number=`: `{"number", "display"}` as the dial box would
    dial it, or 400 `{"error", "code": "bad_number", "field": "number"}`."""
    await require_api(request)
    try:
        number, display = phone.dial_number(
            _number_param(request), request.app[SETTINGS].current.console.default_region
        )
    except phone.DialNumberError as exc:
        raise api_error(400, str(exc), "bad_number", "number") from None
    return web.json_response({"number": number, "display": display})


async def api_history(request: web.Request) -> web.Response:
    """`GET /api/history?number=&limit=`: the caller's earlier calls (newest first) and their
    pending callback request; notes of calls another agent took only for supervisors."""
    session = await require_api(request)
    number = _number_param(request)
    if len(number) > 200:
        raise api_error(400, "number is too long", "bad_number", "number")
    limit_text = request.query.get("limit", "").strip()
    limit = HISTORY_LIMIT
    if limit_text:
        if not ascii_digits(limit_text) or not 1 <= int(limit_text) <= MAX_HISTORY_LIMIT:
            raise api_error(
                400, f"limit must be a whole number 1-{MAX_HISTORY_LIMIT}", "bad_field", "limit"
            )
        limit = int(limit_text)
    history = request.app[BRIDGE].history
    if history is None:
        return web.json_response({"calls": [], "callback": None})
    calls, callback = await history.lookup(number, session.extension, limit=limit)
    return web.json_response({"calls": calls, "callback": callback})


def add_routes(router: web.UrlDispatcher) -> None:
    """The agent desktop's API routes."""
    router.add_get("/api/me", api_me)
    router.add_post("/api/me/preferences", api_preferences)
    router.add_post("/api/me/pause", api_pause)
    router.add_post("/api/me/queues/{queue}", api_queue)
    router.add_get("/api/history", api_history)
    router.add_get("/api/numbers/normalize", api_normalize)
