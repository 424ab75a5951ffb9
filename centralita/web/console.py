"""Console pages and JSON API handlers.

Pages (server-rendered, autoescaped): `/` the agent console, `/calls` call records with
filters, paging, CSV export and each call's recording (for those who may listen);
`/callbacks` is in centralita/web/callbacks.py, `/complaints` in centralita/web/quality.py. API
under `/api/` (JSON): every POST needs the session and its CSRF token
(`centralita.web.auth.require_post`).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from ami.originate import (
    OriginateRefused,
    OriginateResult,
    Refusal,
    originate,
    validate_dial_number,
)
from centralita import csvlog, phone
from centralita.agentprefs import load_preferences
from centralita.asterisks import NoServer
from centralita.keys import (
    AGENT_STATES,
    ASTERISKS,
    AUTH,
    BRIDGE,
    HUB,
    SETTINGS,
    STORE,
    TEMPLATES,
)
from centralita.pop import SimpleChange, contact_json
from centralita.recordings import recording_path
from centralita.store import CallRow, StoreInputError
from centralita.times import shown
from centralita.web import agent_api, i18n
from centralita.web.auth import (
    Session,
    ascii_digits,
    current_session,
    error,
    parse_json,
    require_api,
    require_page,
    require_post,
    same_origin,
    wants_json,
)
from centralita.web.permissions import is_supervisor, may_listen
from centralita.webhooks import parse_callmyway
from dialplan.names import OUTBOUND_CONTEXT

log = logging.getLogger("centralita.web")

STATIC_DIR = Path(__file__).parent / "static"
HEARTBEAT_S = 25.0
PAGE_SIZE = 50
CSV_MAX_ROWS = 200_000
MAX_TEXT = 4000


# The page's language, found by `language_middleware` before the handler runs (so that
# rendering stays synchronous for every page handler); set and reset around each request.
UI_LANGUAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "centralita_ui_language", default=None
)
PAGE_PREFIXES = ("/api/", "/static/", "/ws", "/metrics", "/healthz")


async def page_language(request: web.Request, session: Session) -> str:
    """The language of an agent's pages: their own choice, else their configured language."""
    agent = request.app[SETTINGS].current.site.agent(session.extension)
    default = agent.language if agent else i18n.SOURCE_LANGUAGE
    prefs = await load_preferences(request.app[STORE], session.extension, default_language=default)
    return i18n.supported(prefs["ui_language"]) or i18n.SOURCE_LANGUAGE


@web.middleware
async def language_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Look up the logged-in agent's page language for the pages (not the API or files), the
    pages a form's POST answers with (/admin's results and errors) included."""
    language = None
    if not request.path.startswith(PAGE_PREFIXES):
        session = await current_session(request)
        if session is not None:
            language = await page_language(request, session)
    token = UI_LANGUAGE.set(language)
    try:
        return await handler(request)
    finally:
        UI_LANGUAGE.reset(token)  # a kept-alive connection serves its next request alike


def render_page(request: web.Request, name: str, session: Session, **values: Any) -> web.Response:
    settings = request.app[SETTINGS].current
    agent = settings.site.agent(session.extension)
    default = agent.language if agent else i18n.SOURCE_LANGUAGE
    language = values.pop("language", None) or UI_LANGUAGE.get() or default
    values = {**i18n.page_context(language), "path": request.path, **values}
    html = (
        request.app[TEMPLATES]
        .get_template(name)
        .render(
            extension=session.extension,
            agent_name=agent.name if agent else session.extension,
            csrf=request.app[AUTH].csrf_token(session),
            supervisor=is_supervisor(request, session),
            permission=settings.site.console_permission(session.extension),
            **values,
        )
    )
    return web.Response(text=html, content_type="text/html")


def _bad(message: str, field: str | None = None, code: str = "bad_field") -> web.HTTPBadRequest:
    """A 400 with the reason as JSON (raise it); `field` names the input at fault."""
    body = {"error": message, "code": code}
    if field is not None:
        body["field"] = field
    return web.HTTPBadRequest(text=json.dumps(body), content_type="application/json")


def _field(
    body: dict[str, object], name: str, *, required: bool = False, limit: int = MAX_TEXT
) -> str:
    value = body.get(name, "")
    if value is None:
        value = ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _bad(f"{name} must be text", name)
    value = value.strip()
    if required and not value:
        raise _bad(f"{name} is required", name, "required")
    if len(value) > limit or "\0" in value:
        raise _bad(f"{name} is too long or has a NUL character", name)
    return value


# ----------------------------------------------------------------------------- console + /ws


async def console_page(request: web.Request) -> web.Response:
    """`GET /`: the agent console (the pop, contacts, outcome form, click-to-dial), started
    from the body of `GET /api/me` (docs/console.md)."""
    session = await require_page(request)
    settings = request.app[SETTINGS].current
    config = await agent_api.me_json(request, session)
    return render_page(
        request,
        "console.html",
        session,
        language=config["ui_language"],
        dispositions=settings.site.dispositions,
        outbound_callerid=settings.site.outbound_callerid,
        config=config,
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    """`GET /ws`: the logged-in agent's pop stream (their own calls only), with heartbeat."""
    session = await current_session(request)
    if session is None:
        return error(request, 401, "log in first")
    # Cross-site WebSocket hijacking: a page elsewhere could open this socket with the
    # agent's cookie if SameSite were not honoured; the Origin check closes that door too.
    if not same_origin(request):
        return error(request, 403, "WebSocket from another site refused")
    hub = request.app[HUB]
    bridge = request.app[BRIDGE]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096)
    await ws.prepare(request)
    agent = session.extension
    if not hub.add(agent, ws, session.sid, session.version):
        await ws.close(code=1008, message=b"too many open consoles")
        return ws
    try:
        # The link to Asterisk and the agent's queue state first, then any open pop.
        states = request.app[AGENT_STATES]
        await ws.send_json(states.link_message())
        await ws.send_json(states.state(agent))
        for message in bridge.open_pops(agent):
            await ws.send_json(message)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str('{"type":"pong"}')
            # Anything else from the browser is ignored: the console acts through POSTs.
    finally:
        hub.remove(agent, ws)
    return ws


# ----------------------------------------------------------------------------- contacts


async def api_contacts(request: web.Request) -> web.Response:
    """`GET /api/contacts?number=N` (contacts with that number) or `?q=NAME` (search)."""
    await require_api(request)
    store = request.app[STORE]
    number = request.query.get("number", "").strip()
    query = request.query.get("q", "").strip()
    if len(number) > 100 or len(query) > 200:
        raise _bad("the query is too long")
    if number:
        found = await store.contacts_for_number(number)
    elif query:
        found = await store.search_contacts(query, limit=20)
    else:
        raise _bad("give number= or q=")
    return web.json_response({"contacts": [contact_json(c) for c in found]})


async def api_create_contact(request: web.Request) -> web.Response:
    """`POST /api/contacts` {name, company, number, notes}: a new contact (201)."""
    _, body = await require_post(request)
    name = _field(body, "name", required=True, limit=200)
    number = _field(body, "number", limit=100)
    try:
        contact = await request.app[STORE].create_contact(
            name=name,
            company=_field(body, "company", limit=200),
            numbers=[number] if number else [],
            notes=_field(body, "notes"),
        )
    except StoreInputError as exc:
        raise _bad(str(exc)) from None
    return web.json_response({"contact": contact_json(contact)}, status=201)


async def api_link_number(request: web.Request) -> web.Response:
    """`POST /api/contacts/{id}/numbers` {number}: link the caller's number to a contact."""
    _, body = await require_post(request)
    number = _field(body, "number", required=True, limit=100)
    try:
        contact = await request.app[STORE].add_contact_number(
            int(request.match_info["contact_id"]), number
        )
    except StoreInputError as exc:
        raise _bad(str(exc)) from None
    if contact is None:
        return error(request, 404, "there is no such contact")
    return web.json_response({"contact": contact_json(contact)})


# ----------------------------------------------------------------------------- outcomes


def _parse_date(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(f"{name} must be a date YYYY-MM-DD") from None


async def api_outcome(request: web.Request) -> web.Response:
    """`POST /api/outcomes` {call_id, uniqueid, outcome, notes, follow_up, contact_id}.

    The outcome is stored under `uniqueid` when given (the pop's `uniqueid`: the customer
    leg whose CDR Asterisk writes), else under `call_id`: cdr_manager sends no Linkedid
    unless mapped (docs/asterisk-protocol.md#cdr), so only the Uniqueid joins it to /calls.
    """
    session, body = await require_post(request)
    settings = request.app[SETTINGS].current
    call_id = _field(body, "call_id", required=True, limit=200)
    call_id = _field(body, "uniqueid", limit=200) or call_id
    outcome = _field(body, "outcome", required=True, limit=200)
    if outcome not in settings.site.dispositions:
        raise _bad(
            f"outcome must be one of {', '.join(settings.site.dispositions)}",
            "outcome",
            "bad_outcome",
        )
    follow_up = _parse_date(_field(body, "follow_up", limit=20), "follow_up")
    contact_text = _field(body, "contact_id", limit=20)
    contact_id: int | None = None
    if contact_text:
        if not ascii_digits(contact_text):
            raise _bad("contact_id must be a number")
        contact_id = int(contact_text)
    store = request.app[STORE]
    # Only a call this agent was on (popped to them, or its record names them), unless a
    # supervisor writes it: call ids are `epoch.seq`, easy to guess (issue 10, finding 1).
    if not (
        is_supervisor(request, session)
        or request.app[BRIDGE].popped(session.extension, call_id)
        or await store.took_part(call_id, session.extension)
    ):
        return error(request, 403, "you may only save outcomes of your own calls")
    try:
        saved = await store.save_outcome(
            call_id=call_id,
            agent=session.extension,
            outcome=outcome,
            notes=_field(body, "notes", limit=20000),
            follow_up=follow_up,
            contact_id=contact_id,
        )
    except StoreInputError as exc:
        raise _bad(str(exc)) from None
    return web.json_response(
        {
            "outcome": {
                "id": saved.id,
                "call_id": saved.call_id,
                "agent": saved.agent,
                "outcome": saved.outcome,
                "notes": saved.notes,
                "follow_up": saved.follow_up.isoformat() if saved.follow_up else None,
                "contact_id": saved.contact_id,
            }
        }
    )


async def api_dismiss(request: web.Request) -> web.Response:
    """`POST /api/pops/dismiss` {call_id}: close a pop on the agent's screen for good."""
    session, body = await require_post(request)
    call_id = _field(body, "call_id", required=True, limit=200)
    return web.json_response({"dismissed": request.app[BRIDGE].forget(session.extension, call_id)})


# ----------------------------------------------------------------------------- click-to-dial


class DialRefused(Exception):
    """A click-to-dial refused before anything reached Asterisk: `status` (409 the agent is
    on a call or their phone is registered nowhere, 503 AMI is away), `code` and why."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or ("ami_down" if status == 503 else "busy")


async def click_to_dial(
    request: web.Request, agent: str, raw: object, *, private: bool
) -> tuple[str, OriginateResult]:
    """Ring `agent`'s phone, then `raw` (as typed or stored): the one click-to-dial path of
    `/api/dial` and of calling a callback back (centralita/web/callbacks.py).

    Returns the number dialled and the OriginateResponse (matched by ActionID). Raises a 400
    (`_bad`) for a number that is not digits, `+`, `*`, `#` (so no CR/LF ever reaches an AMI
    header), and DialRefused while the agent is on a call or AMI is away.
    """
    settings = request.app[SETTINGS].current
    try:
        # Pasted text is cleaned (spaces, dashes, brackets, a national prefix) but a stray
        # CR/LF or a letter is refused, not trimmed; then the AMI-side check.
        number, _ = phone.dial_number(raw, settings.console.default_region)
        number = validate_dial_number(number)
    except ValueError as exc:
        raise _bad(str(exc), "number", "bad_number") from None
    if request.app[BRIDGE].busy(agent):
        raise DialRefused(409, f"agent {agent} is already on a call")
    asterisks = request.app.get(ASTERISKS)
    if asterisks is None:
        raise DialRefused(503, "Asterisk is not connected")
    try:
        # The server the agent's phone is registered on (centralita/asterisks.py): the
        # Originate rings the phone first, and only that server can.
        listener = asterisks.for_agent(agent).listener
    except NoServer as exc:
        if exc.code == "ami_down" and not asterisks.several:
            # One server: as before, Originate itself answers while AMI is away.
            listener = asterisks.first.listener
        else:
            raise DialRefused(exc.status, exc.message, exc.code) from None
    # The number was checked above and the rest comes from the validated settings: a
    # ValueError from originate would be our bug (500), not the client's (400).
    try:
        result = await originate(
            listener,
            agent,
            number,
            device=settings.site.device(agent),
            callerid=settings.site.outbound_callerid,
            private=private,
            context=OUTBOUND_CONTEXT,
        )
    except OriginateRefused as exc:
        raise DialRefused(409 if exc.reason is Refusal.AGENT_BUSY else 503, str(exc)) from None
    log.info(
        "click-to-dial by %s to %s: %s (%s)", agent, number, result.response, result.reason_text
    )
    return number, result


def dial_json(number: str, result: OriginateResult) -> dict[str, Any]:
    """How a click-to-dial went, as `/api/dial` answers it."""
    return {
        "ok": result.success,
        "number": number,
        "action_id": result.action_id,
        "response": result.response,
        "reason": result.reason,
        "reason_text": result.reason_text,
        "message": result.message,
    }


def wants_private(body: dict[str, object]) -> bool:
    """The dial's "hide my number" box, as a JSON boolean or a form's checkbox."""
    return body.get("private") in (True, "1", "true", "on", "yes")


async def api_dial(request: web.Request) -> web.Response:
    """`POST /api/dial` {number, private}: ring the agent's phone, then the customer.

    Refused (409) while the agent is on a call, 400 for a number that is not digits, `+`,
    `*`, `#`, 503 while AMI is away; otherwise the OriginateResponse (matched by ActionID)
    as JSON.
    """
    session, body = await require_post(request)
    try:
        number, result = await click_to_dial(
            request, session.extension, body.get("number"), private=wants_private(body)
        )
    except DialRefused as exc:
        if wants_json(request):
            return web.json_response({"error": exc.message, "code": exc.code}, status=exc.status)
        return error(request, exc.status, exc.message)
    return web.json_response(dial_json(number, result), status=200 if result.success else 502)


# ----------------------------------------------------------------------------- call records


def _filters(request: web.Request, session: Session) -> dict[str, Any]:
    q = request.query
    start = _parse_date(q.get("start", "").strip(), "start")
    end = _parse_date(q.get("end", "").strip(), "end")
    agent = q.get("agent", "").strip()
    customer = q.get("customer", "").strip()
    call = q.get("call", "").strip()
    if len(agent) > 80 or len(customer) > 200 or len(call) > 200:
        raise _bad("agent, customer or call is too long")
    viewer = None
    if not is_supervisor(request, session):
        viewer = session.extension  # only their own outcomes and notes
        if not may_listen(request, session):
            # An agent sees their own calls only; quality staff see every call (a
            # complaint links to its call, whose recording they review).
            agent = session.extension
    return {
        "start": start,
        "end": end,
        "agent": agent or None,
        "customer": customer or None,
        "viewer": viewer,
        "call": call or None,
    }


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name, "").strip()
    if not text:
        return default
    if not ascii_digits(text):
        raise _bad(f"{name} must be a whole number")
    return max(low, min(int(text), high))


def call_json(call: CallRow) -> dict[str, Any]:
    """One call record with its outcome, as JSON."""
    return {
        "uniqueid": call.uniqueid,
        "linkedid": call.linkedid,
        "start": shown(call.start),  # local time with its offset, as everywhere
        "src": call.src,
        "dst": call.dst,
        "agent": call.agent,
        "disposition": call.disposition,
        "duration": call.duration,
        "billsec": call.billsec,
        "contact": call.contact_name,
        "outcome": call.outcome,
        "outcome_agent": call.outcome_agent,
        "notes": call.notes,
        "follow_up": call.follow_up.isoformat() if call.follow_up else None,
    }


async def api_calls(request: web.Request) -> web.Response:
    """`GET /api/calls?offset=&limit=&start=&end=&agent=&customer=`: call records as JSON."""
    session = await require_api(request)
    filters = _filters(request, session)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    limit = _int_param(request, "limit", PAGE_SIZE, 1, 1000)
    calls, total = await request.app[STORE].list_calls(**filters, offset=offset, limit=limit)
    return web.json_response(
        {
            "calls": [call_json(c) for c in calls],
            "total": total,
            "offset": offset,
            "limit": limit,
        }
    )


async def calls_page(request: web.Request) -> web.Response:
    """`GET /calls`: call records by date range, agent and customer, with outcomes; paged."""
    session = await require_page(request)
    filters = _filters(request, session)
    page = _int_param(request, "page", 1, 1, 10**7)
    calls, total = await request.app[STORE].list_calls(
        **filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    query = {
        k: request.query.get(k, "").strip() for k in ("start", "end", "agent", "customer", "call")
    }
    kept = {k: v for k, v in query.items() if v}
    pages = max(1, -(-total // PAGE_SIZE))
    return render_page(
        request,
        "calls.html",
        session,
        calls=calls,
        total=total,
        page=page,
        pages=pages,
        query=query,
        prev_url=f"/calls?{urlencode({**kept, 'page': page - 1})}" if page > 1 else None,
        next_url=f"/calls?{urlencode({**kept, 'page': page + 1})}" if page < pages else None,
        csv_url=f"/calls.csv?{urlencode(kept)}",
        agents=request.app[SETTINGS].current.site.agents,
        dispositions=request.app[SETTINGS].current.site.dispositions,
        recorded=await _recorded(request, session, calls),
    )


async def _recorded(request: web.Request, session: Session, calls: list[CallRow]) -> set[str]:
    """The Uniqueids of `calls` with a recording on disk, for those who may listen (the
    files are checked in a thread: a page of stat() calls stays off the event loop)."""
    if not may_listen(request, session):
        return set()
    folder = request.app[SETTINGS].current.site.recordings_dir

    def existing() -> set[str]:
        return {c.uniqueid for c in calls if recording_path(folder, c.uniqueid) is not None}

    return await asyncio.to_thread(existing)


async def calls_csv(request: web.Request) -> web.StreamResponse:
    """`GET /calls.csv`: the filtered call records as CSV (formula cells neutralised)."""
    session = await require_page(request)
    filters = _filters(request, session)
    store = request.app[STORE]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="calls.csv"',
        }
    )
    await response.prepare(request)
    await response.write(csvlog.encode_row(csvlog.CALLS_HEADER))
    offset = 0
    while offset < CSV_MAX_ROWS:
        calls, _ = await store.list_calls(**filters, offset=offset, limit=1000)
        if not calls:
            break
        await response.write(b"".join(csvlog.encode_row(csvlog.call_row(c)) for c in calls))
        offset += len(calls)
    await response.write_eof()
    return response


# ----------------------------------------------------------------------------- CallMyWay in


def _peer_allowed(request: web.Request) -> bool:
    remote = request.remote
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(peer, strict=False)
        for peer in request.app[SETTINGS].current.server.allowed_peers
    )


EVENTS_SECRET_HEADER = "X-Centralita-Secret"  # noqa: S105 (a header name)
EVENTS_SIGNATURE_HEADER = "X-Centralita-Signature"


def _event_signed(request: web.Request, raw: bytes, secret: str) -> bool:
    """The shared secret as a header, or `sha256=<hex HMAC-SHA256 of the body>`."""
    given = request.headers.get(EVENTS_SECRET_HEADER)
    if given is not None:
        return hmac.compare_digest(given.encode(), secret.encode())
    signature = request.headers.get(EVENTS_SIGNATURE_HEADER, "")
    if not signature.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature[len("sha256=") :].lower().encode(), expected.encode())


async def api_callmyway(request: web.Request) -> web.Response:
    """`POST /api/events/callmyway`: a CallMyWay callStart/callEnd pops the agent's screen.

    Accepted from `[server] allowed_peers` only (no browser session: a PBX posts this), as
    `application/json`, with `[server] events_secret` in the `X-Centralita-Secret` header or
    `X-Centralita-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    `data.endpoint_id` names the agent; `type` out means the agent called `dnis`, otherwise
    `ani` called the agent. Answers `{"ack": "ok"}`; a bad body gets 400 with a message.
    """
    if not _peer_allowed(request):
        return web.json_response({"error": "this address may not post events"}, status=403)
    raw = await request.read()  # (bounded by client_max_size) so the connection can be reused
    secret = request.app[SETTINGS].current.server.events_secret
    if not secret:
        return web.json_response(
            {"error": "events are off: set [server] events_secret to accept them"}, status=403
        )
    # application/json only: a page in a browser on an allowed address can send text/plain
    # (a "simple" request) without a CORS preflight, but not application/json.
    if request.content_type != "application/json":
        return web.json_response({"error": "the body must be application/json"}, status=415)
    if not _event_signed(request, raw, secret):
        return web.json_response(
            {"error": f"missing or wrong {EVENTS_SECRET_HEADER} or {EVENTS_SIGNATURE_HEADER}"},
            status=401,
        )
    try:
        body = parse_json(raw)
    except ValueError as exc:
        return web.json_response({"error": f"the body is not valid JSON: {exc}"}, status=400)
    try:
        action, data = parse_callmyway(body)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    agent = data["endpoint_id"]
    if request.app[SETTINGS].current.site.agent(agent) is None:
        return web.json_response({"error": f"endpoint_id {agent!r} is not an agent"}, status=400)
    direction = "out" if data["type"] == "out" else "in"
    number = data["dnis"] if direction == "out" else data["ani"]
    if action == "callStart":
        kind = "answered" if data["connect_time"] else "ringing"
    else:
        kind = "ended"
    change = SimpleChange(
        kind=kind, call_id=data["callid"], direction=direction, number=number, agent=agent
    )
    await asyncio.shield(request.app[BRIDGE].on_change(change))
    return web.json_response({"ack": "ok"})
