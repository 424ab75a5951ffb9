"""Callbacks as work (issue 12): supervisors assign the requests callers left, agents call
them back from their console and close them with a note.

    GET  /callbacks[?status=]             the requests, their agent, attempts and notes
                                          (supervisors)
    GET  /api/callbacks/mine              the pending requests assigned to me, with attempts
    POST /api/callbacks/{id}/assign       {agent} ("" unassigns)              (supervisors)
    POST /api/callbacks/{id}/call         {which: number|alternative, private}  (its agent)
    POST /api/callbacks/{id}/close        {status: done|cancelled, note}
                                          (its agent, or a supervisor)

An agent only sees and acts on the requests assigned to them: another's is a 404, as if it
did not exist. The POSTs take JSON with the `X-CSRF-Token` header, or the /callbacks page's
forms with the `csrf` field (then the answer is a redirect back to the page). Each action is
in the audit log (`callback.assign|call|done|cancel`), and the agents concerned get
`{"type": "callbacks.changed", "pending": n}` on their `/ws` so their count moves at once.
Calling back is `/api/dial`'s own click-to-dial (`console.click_to_dial`); each call is an
attempt row, its result from the Originate's answer (docs/console.md#callbacks).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ami.originate import OriginateResult
from centralita.keys import FLOW_CONTEXT, HUB, SETTINGS, STORE
from centralita.store import (
    CALLBACK_STATUSES,
    MAX_NOTES,
    CallbackAttempt,
    CallbackRequest,
    StoreInputError,
)
from centralita.times import shown
from centralita.web.agent_api import api_error
from centralita.web.auth import (
    Session,
    ascii_digits,
    require_api,
    require_page,
    require_post,
)
from centralita.web.console import (
    DialRefused,
    click_to_dial,
    dial_json,
    render_page,
    wants_private,
)
from centralita.web.permissions import is_supervisor, require_supervisor
from dialplan.model import Site

log = logging.getLogger("centralita.web")

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CLOSED = {"done": "callback.done", "cancelled": "callback.cancel"}
# OriginateResponse Reason -> attempt result (ami.originate.REASONS; main/pbx.c:7770-7807).
RESULT_OF_REASON = {4: "answered", 3: "no_answer", 5: "busy"}


def assignable(site: Site) -> list[tuple[str, str]]:
    """(extension, name) of the members who take queue calls: those a callback may go to."""
    found = []
    for member in site.members:
        role = site.role_of(member.extension)
        if role is not None and role.queue_calls:
            found.append((member.extension, member.name))
    return found


def callback_json(callback: CallbackRequest, attempts: list[CallbackAttempt]) -> dict[str, Any]:
    """One request and its attempts, as the console's panel reads it."""
    return {
        "id": callback.id,
        "created_at": callback.created_at,
        "created": shown(callback.created_at),
        "callerid": callback.callerid,
        "number": callback.number,
        "alternative": callback.alternative,
        "language": callback.language,
        "queue": callback.queue,
        "status": callback.status,
        "assigned_to": callback.assigned_to,
        "note": callback.note,
        "attempts": [attempt_json(a) for a in attempts if a.callback_id == callback.id],
    }


def attempt_json(attempt: CallbackAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "agent": attempt.agent,
        "number": attempt.number,
        "started_at": attempt.started_at,
        "started": shown(attempt.started_at),
        "result": attempt.result,
        "reason": attempt.reason,
        "call_id": attempt.call_id,
    }


def attempt_result(result: OriginateResult) -> tuple[str, str]:
    """(result, reason) of an attempt from how the click-to-dial's Originate went."""
    outcome = RESULT_OF_REASON.get(result.reason if result.reason is not None else -1, "failed")
    if outcome == "answered" and not result.success:
        outcome = "failed"  # a Failure is one whatever its Reason says
    reason = result.reason_text
    if result.message:
        reason = f"{reason}: {result.message}"
    return outcome, reason


def _callback_id(request: web.Request) -> int:
    text = request.match_info["callback_id"]
    if not ascii_digits(text) or len(text) > 18:
        raise api_error(404, "there is no such callback", "unknown_callback")
    return int(text)


async def _visible(request: web.Request, session: Session, *, own: bool) -> CallbackRequest:
    """The request of the URL, if this member may act on it: its agent, or (unless `own`)
    a supervisor. Another agent's is a 404, as an unknown one."""
    callback = await request.app[STORE].get_callback(_callback_id(request))
    if callback is None:
        raise api_error(404, "there is no such callback", "unknown_callback")
    mine = callback.assigned_to == session.extension
    if not mine and (own or not is_supervisor(request, session)):
        raise api_error(404, "there is no such callback", "unknown_callback")
    return callback


def _pending(callback: CallbackRequest) -> None:
    if callback.status != "pending":
        raise api_error(409, f"callback {callback.id} is {callback.status}", "callback_closed")


async def push_count(request: web.Request, *agents: str) -> None:
    """Tell each agent's open consoles their new count of pending callbacks."""
    store = request.app[STORE]
    hub = request.app[HUB]
    for agent in dict.fromkeys(a for a in agents if a):
        pending = await store.count_callbacks("pending", assigned_to=agent)
        await hub.send(agent, {"type": "callbacks.changed", "pending": pending})


def _answer(request: web.Request, body: dict[str, object], data: dict[str, Any]) -> web.Response:
    """JSON for the console; a redirect back to /callbacks (and its filter) for the page's
    forms."""
    if request.content_type not in FORM_TYPES:
        return web.json_response(data)
    back = body.get("back")
    query = {"status": back} if back in CALLBACK_STATUSES else {}
    raise web.HTTPSeeOther("/callbacks" + (f"?{urlencode(query)}" if query else ""))


def _text(body: dict[str, object], name: str, limit: int) -> str:
    value = body.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise api_error(400, f"{name} must be text", "bad_field", name)
    value = value.strip()
    if len(value) > limit or "\0" in value:
        raise api_error(400, f"{name} is too long or has a NUL character", "bad_field", name)
    return value


# ----------------------------------------------------------------------------- the page


async def callbacks_page(request: web.Request) -> web.Response:
    """`GET /callbacks[?status=pending]`: every request with its agent, attempts and note;
    assign, close (supervisors)."""
    session = await require_page(request)
    require_supervisor(request, session)
    status = request.query.get("status", "").strip() or None
    store = request.app[STORE]
    try:
        callbacks = await store.list_callbacks(status)
    except StoreInputError as exc:
        raise api_error(400, str(exc), "bad_status", "status") from None
    attempts = await store.list_callback_attempts([c.id for c in callbacks])
    by_callback: dict[int, list[CallbackAttempt]] = {}
    for attempt in attempts:
        by_callback.setdefault(attempt.callback_id, []).append(attempt)
    agents = assignable(request.app[SETTINGS].current.site)
    return render_page(
        request,
        "callbacks.html",
        session,
        callbacks=callbacks,
        attempts=by_callback,
        agents=agents,
        agent_names={m.extension: m.name for m in request.app[SETTINGS].current.site.members},
        status=status or "",
        max_note=MAX_NOTES,
    )


# ----------------------------------------------------------------------------- the API


async def api_mine(request: web.Request) -> web.Response:
    """`GET /api/callbacks/mine`: the pending requests assigned to me, oldest first."""
    session = await require_api(request)
    store = request.app[STORE]
    callbacks = await store.list_callbacks("pending", assigned_to=session.extension)
    attempts = await store.list_callback_attempts([c.id for c in callbacks])
    return web.json_response(
        {"pending": len(callbacks), "callbacks": [callback_json(c, attempts) for c in callbacks]}
    )


async def api_assign(request: web.Request) -> web.Response:
    """`POST /api/callbacks/{id}/assign` {agent}: give a pending request to an agent who
    takes queue calls ("" takes it back); supervisors only."""
    session, body = await require_post(request)
    if not is_supervisor(request, session):
        raise api_error(403, "only supervisors assign callbacks", "not_supervisor")
    store = request.app[STORE]
    callback = await store.get_callback(_callback_id(request))
    if callback is None:
        raise api_error(404, "there is no such callback", "unknown_callback")
    _pending(callback)
    agent = _text(body, "agent", 40)
    if agent and agent not in dict(assignable(request.app[SETTINGS].current.site)):
        raise api_error(400, f"{agent!r} does not take queue calls", "bad_agent", "agent")
    updated = await store.assign_callback(callback.id, agent)
    if updated is None:
        raise api_error(404, "there is no such callback", "unknown_callback")
    await store.add_audit(
        actor=session.extension,
        action="callback.assign",
        subject=f"callback {callback.id}",
        changes=f"{callback.assigned_to or '-'} -> {agent or '-'}",
    )
    log.info("callback %s assigned to %r by %s", callback.id, agent, session.extension)
    await push_count(request, callback.assigned_to, agent)
    return _answer(request, body, {"ok": True, "callback": callback_json(updated, [])})


async def api_call(request: web.Request) -> web.Response:
    """`POST /api/callbacks/{id}/call` {which, private}: call the request's number (or its
    alternative) back through the click-to-dial path; the attempt is stored with the
    Originate's result. Only the agent it is assigned to."""
    session, body = await require_post(request)
    callback = await _visible(request, session, own=True)
    _pending(callback)
    which = body.get("which", "number")
    if which not in ("number", "alternative"):
        raise api_error(400, "which must be number or alternative", "bad_field", "which")
    number = callback.alternative if which == "alternative" else callback.number
    if not number:
        raise api_error(400, "this callback has no alternative number", "bad_number", "which")
    store = request.app[STORE]
    attempt = await store.add_callback_attempt(callback.id, agent=session.extension, number=number)
    if attempt is None:
        raise api_error(404, "there is no such callback", "unknown_callback")
    await store.add_audit(
        actor=session.extension,
        action="callback.call",
        subject=f"callback {callback.id}",
        changes=f"attempt {attempt.id} to {number}",
    )
    try:
        dialled, result = await click_to_dial(
            request, session.extension, number, private=wants_private(body)
        )
    except DialRefused as exc:
        await store.finish_callback_attempt(attempt.id, result="failed", reason=exc.message)
        raise api_error(exc.status, exc.message, exc.code) from None
    except web.HTTPBadRequest:
        await store.finish_callback_attempt(attempt.id, result="failed", reason="bad number")
        raise
    outcome, reason = attempt_result(result)
    await store.finish_callback_attempt(
        attempt.id, result=outcome, reason=reason, call_id=result.uniqueid
    )
    attempts = await store.list_callback_attempts([callback.id])
    data = dial_json(dialled, result)
    data["attempt"] = attempt_json(next(a for a in attempts if a.id == attempt.id))
    data["callback"] = callback_json(callback, attempts)
    return web.json_response(data, status=200 if result.success else 502)


async def api_close(request: web.Request) -> web.Response:
    """`POST /api/callbacks/{id}/close` {status, note}: done or cancelled, with a note; its
    agent or a supervisor."""
    session, body = await require_post(request)
    callback = await _visible(request, session, own=False)
    status = body.get("status")
    if status not in CLOSED:
        raise api_error(400, "status must be done or cancelled", "bad_field", "status")
    assert isinstance(status, str)
    note = _text(body, "note", MAX_NOTES)
    _pending(callback)
    closed = await request.app[STORE].close_callback(
        callback.id, status=status, by=session.extension, note=note
    )
    if closed is None:
        raise api_error(404, "there is no such callback", "unknown_callback")
    await request.app[STORE].add_audit(
        actor=session.extension,
        action=CLOSED[status],
        subject=f"callback {callback.id}",
        changes=note,
    )
    # callbacks.csv gets a row on every change of status, as from the flow and the CLI.
    await request.app[FLOW_CONTEXT].csv_files.callback_changed(closed)
    log.info("callback %s %s by %s", callback.id, status, session.extension)
    await push_count(request, callback.assigned_to)
    return _answer(request, body, {"ok": True, "callback": callback_json(closed, [])})


def add_routes(router: web.UrlDispatcher) -> None:
    """The callbacks page and its API."""
    router.add_get("/callbacks", callbacks_page)
    router.add_get("/api/callbacks/mine", api_mine)
    router.add_post("/api/callbacks/{callback_id}/assign", api_assign)
    router.add_post("/api/callbacks/{callback_id}/call", api_call)
    router.add_post("/api/callbacks/{callback_id}/close", api_close)
