"""Console login: signed session cookies, CSRF tokens, login rate limits.

* `POST /login` (form fields `extension`, `password`; docs/design.md#external-contract) checks the
  scrypt hash with `Store.verify_agent_password` and sets the session cookie: HttpOnly,
  SameSite=Strict, Secure behind https. The cookie is `<payload>.<HMAC-SHA256>`, payload = base64
  JSON {extension, session id, issued at}; the key is derived from `[server] secret_key`, else
  it is a random key kept in the store (`shared_secret`), made once by whichever instance
  opens the database first, so every instance on it accepts every session and sessions
  survive a restart. A key an older Centralita kept in `data_dir/secret_key` is moved into
  the store on the first start (its sessions stay valid), when the store has none yet.
* CSRF: every POST but the login carries the session's token (form field `csrf` or header
  `X-CSRF-Token`); the token is an HMAC of the session id, so it needs no server state. The
  login form itself has no session yet: it is refused when `Origin` names another site.
* Rate limits: failures per client IP and per extension in a sliding window, counted in the
  store (`login_failures`), so a flood spread over instances is limited as one; when
  exceeded the login answers 429 without even hashing (scrypt costs ~50 ms of CPU and
  16 MiB). An attempt counts as a failure from before its hash until it succeeds, and at most
  `MAX_HASHES` hashes run at once (`MAX_HASH_WAITING` more may wait; beyond, 503).
* `POST /logout` revokes the session id in the store (kept until its cookie would expire
  anyway) and closes the session's `/ws` sockets. Each agent has a session version in the
  store; a password change or `agent remove` moves it on, which voids every older cookie.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from centralita import metrics
from centralita.keys import AUTH, HUB, SETTINGS, STORE, TEMPLATES
from centralita.store import StoreBackend
from centralita.store.shared import SESSION_KEY, LoginAttempt, LoginLimit
from centralita.web import i18n
from centralita.web.i18n import N_

log = logging.getLogger("centralita.web")

COOKIE = "centralita_session"
SESSION_MAX_AGE_S = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
KEY_FILE = "secret_key"
MAX_FIELD = 200
# WebSocket close code for a session that ended (4000-4999: private use, RFC 6455 section 7.4.2).
WS_CLOSE_LOGGED_OUT = 4401
# Concurrent scrypt checks (16 MiB and ~50 ms of one core each), and logins queued for one.
MAX_HASHES = 4
MAX_HASH_WAITING = 64
# aiohttp's own limit on a request body (client_max_size) is 1 MiB; say so here too.
MAX_JSON_BODY = 1024**2
# How often an instance deletes the login failures that are out of every window.
PRUNE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in agent."""

    extension: str
    sid: str
    issued: float
    version: int = 0  # the agent's session version when issued (Store.session_version)


class Busy(Exception):
    """Too many logins are waiting to have their password checked."""


@dataclass(frozen=True, slots=True)
class RateLimiter:
    """At most `limit` failures per key within `window_s` seconds. The failures are rows of
    the store (`StoreBackend.record_login_attempt`), shared by every instance on it; `scope`
    keeps the IPs' keys apart from the extensions'."""

    scope: str
    limit: int
    window_s: float

    def limit_of(self, value: str) -> LoginLimit:
        return LoginLimit(f"{self.scope}:{value}", self.limit, self.window_s)


def _key_file(data_dir: Path) -> bytes | None:
    """The key an older Centralita kept in `data_dir/secret_key`, if any."""
    try:
        key = bytes.fromhex((data_dir / KEY_FILE).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return key if len(key) >= 32 else None


async def load_key(secret_key: str | None, data_dir: Path, store: StoreBackend) -> bytes:
    """The signing key: derived from the configured secret, else the store's (made once by
    the first instance; from `data_dir/secret_key` when an older Centralita left one). The
    key is never logged."""
    if secret_key:
        return hashlib.sha256(b"centralita-session\0" + secret_key.encode()).digest()
    candidate = await asyncio.to_thread(_key_file, data_dir) or secrets.token_bytes(32)
    return await store.shared_secret(SESSION_KEY, candidate)


class Auth:
    """Issues and checks session cookies and CSRF tokens; holds the login rate limits."""

    def __init__(
        self,
        key: bytes,
        store: StoreBackend,
        *,
        max_age_s: float = SESSION_MAX_AGE_S,
        per_ip: RateLimiter | None = None,
        per_extension: RateLimiter | None = None,
        max_hashes: int = MAX_HASHES,
        max_hash_waiting: int = MAX_HASH_WAITING,
    ) -> None:
        self._key = key
        self._store = store
        self.max_age_s = max_age_s
        self.per_ip = per_ip or RateLimiter("ip", 20, 300.0)
        self.per_extension = per_extension or RateLimiter("ext", 5, 300.0)
        self._pruned_at = 0.0
        # At most `max_hashes` scrypt hashes at once (16 MiB each), and a bounded queue
        # behind them: a flood of logins costs bounded memory, not 16 MiB per request.
        self.max_hashes = max_hashes
        self._hash_slots = asyncio.Semaphore(max_hashes)
        self._hash_waiting = 0
        self.max_hash_waiting = max_hash_waiting
        self.hashes = 0  # hashes started, for tests and the benchmark

    @contextlib.asynccontextmanager
    async def hash_slot(self) -> AsyncIterator[None]:
        """Hold one of the `max_hashes` slots while checking a password; raises `Busy` when
        `max_hash_waiting` logins already wait for one."""
        if self._hash_waiting >= self.max_hash_waiting:
            raise Busy("too many logins at once")
        self._hash_waiting += 1
        try:
            await self._hash_slots.acquire()
        finally:
            self._hash_waiting -= 1
        try:
            self.hashes += 1
            yield
        finally:
            self._hash_slots.release()

    async def begin_attempt(self, ip: str, extension: str) -> LoginAttempt:
        """Count a login attempt from `ip` for `extension` as a failure until it succeeds;
        refused (nothing counted, `retry_after_s` > 0) when either is over its limit."""
        now = time.time()  # wall clock: the instances' clocks agree (NTP), monotonic ones not
        if now - self._pruned_at > PRUNE_EVERY_S:
            # Rows out of every window, at most once a minute per instance.
            self._pruned_at = now
            oldest = now - max(self.per_ip.window_s, self.per_extension.window_s)
            await self._store.prune_login_failures(oldest)
        return await self._store.record_login_attempt(
            (self.per_ip.limit_of(ip), self.per_extension.limit_of(extension)), now
        )

    async def take_back(self, attempt: LoginAttempt) -> None:
        """The attempt was never tried (the hash queue was full): it counts for nothing."""
        await self._store.forget_login_attempts(attempt.ids)

    async def succeeded(self, attempt: LoginAttempt, extension: str) -> None:
        """The attempt succeeded: it counts for nothing, and the extension's failures are
        forgotten (the address's others stay)."""
        await self._store.forget_login_attempts(
            attempt.ids, self.per_extension.limit_of(extension).key
        )

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def issue(self, extension: str, version: int = 0) -> tuple[str, Session]:
        """A new session for `extension` (at its session `version`) and its cookie value."""
        session = Session(extension, secrets.token_urlsafe(16), time.time(), version)
        body = json.dumps(
            {"e": extension, "s": session.sid, "t": int(session.issued), "v": version}
        )
        payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=")
        return payload.decode() + "." + self._sign(payload), session

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie value, or None when forged, expired or revoked."""
        if not cookie or len(cookie) > 1000 or "." not in cookie:
            return None
        payload_text, _, signature = cookie.rpartition(".")
        payload = payload_text.encode()
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
            session = Session(
                str(data["e"]), str(data["s"]), float(data["t"]), int(data.get("v", 0))
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            return None
        if time.time() - session.issued > self.max_age_s:
            return None
        return session

    def expires_at(self, session: Session) -> float:
        """When the session's cookie expires anyway (epoch seconds)."""
        return session.issued + self.max_age_s

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of a session."""
        return self._sign(b"csrf\0" + session.sid.encode())

    def check_csrf(self, session: Session, token: str | None) -> bool:
        """True when `token` is the session's CSRF token."""
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))


# ----------------------------------------------------------------------------- request helpers


async def current_session(request: web.Request) -> Session | None:
    """The logged-in agent of a request, or None: an agent removed from the config is out,
    and so is a session logged out or issued before a password change or removal (kept in
    the store, so a restart does not bring it back: issue 10, finding 3)."""
    session = request.app[AUTH].read(request.cookies.get(COOKIE))
    if session is None:
        return None
    if request.app[SETTINGS].current.site.agent(session.extension) is None:
        return None
    if not await request.app[STORE].session_valid(session.extension, session.sid, session.version):
        return None
    return session


def wants_json(request: web.Request) -> bool:
    """True for API callers (JSON accepted or sent), False for a browser form."""
    accept = request.headers.get("Accept", "")
    return (
        request.path.startswith("/api/")
        or "application/json" in accept
        or request.content_type == "application/json"
    )


def error(request: web.Request, status: int, message: str) -> web.Response:
    """A 4xx with a message, as JSON for API callers and as text otherwise."""
    if wants_json(request):
        return web.json_response({"error": message}, status=status)
    return web.Response(status=status, text=message + "\n")


def redirect(location: str) -> web.Response:
    """A 303 See Other to a path of ours."""
    return web.Response(status=303, headers={"Location": location})


async def require_page(request: web.Request) -> Session:
    """The session of a page request; redirects to /login without one."""
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther("/login")
    return session


async def require_api(request: web.Request) -> Session:
    """The session of an API GET; 401 without one."""
    session = await current_session(request)
    if session is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "log in first"}), content_type="application/json"
        )
    return session


async def require_post(request: web.Request) -> tuple[Session, dict[str, object]]:
    """The session and body of a POST that needs a valid session and CSRF token.

    The body is a JSON object or a form; the token comes from the `X-CSRF-Token` header or
    the `csrf` field. 401 without a session, 403 without the right token, 400 on a bad body.
    """
    session = await current_session(request)
    if session is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "log in first"}), content_type="application/json"
        )
    body: dict[str, object]
    if request.content_type == "application/json":
        data = await read_json(request)
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "the body must be a JSON object"}),
                content_type="application/json",
            )
        body = data
    else:
        body = dict(await request.post())
    token = request.headers.get(CSRF_HEADER) or body.get(CSRF_FIELD)
    if not request.app[AUTH].check_csrf(session, token if isinstance(token, str) else None):
        raise web.HTTPForbidden(
            text=json.dumps({"error": "missing or wrong CSRF token"}),
            content_type="application/json",
        )
    return session, body


def ascii_digits(text: str) -> bool:
    """True for a non-empty run of 0-9 only: `str.isdigit()` also accepts '²' and other
    digits that `int()` then refuses (a 500 instead of a 400: issue 10, finding 9)."""
    return bool(text) and text.isascii() and text.isdigit()


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise ValueError(f"{text} is not a finite number")
    return value


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")  # NaN, Infinity: not JSON (RFC 8259 section 6)


def parse_json(raw: bytes) -> object:
    """A request body as JSON; ValueError for bad JSON, non-finite numbers (NaN, Infinity,
    1e400) and nesting too deep for Python's parser (RecursionError, a 500 otherwise)."""
    if len(raw) > MAX_JSON_BODY:
        raise ValueError("the body is too large")
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None


async def read_json(request: web.Request) -> object:
    """The request's JSON body, or a 400 with the reason (see `parse_json`)."""
    try:
        return parse_json(await request.read())
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"the body is not valid JSON: {exc}"}),
            content_type="application/json",
        ) from None


def client_ip(request: web.Request) -> str:
    """The peer address; behind a proxy in `[server] trusted_proxies`, the client it names
    (centralita/web/proxy.py sets `request.remote`; no other X-Forwarded-For is believed)."""
    return request.remote or "unknown"


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser form post (curl, tests): no cross-site risk
        return True
    return origin == f"{request.scheme}://{request.host}"


# ----------------------------------------------------------------------------- handlers


async def login_page(request: web.Request) -> web.Response:
    """`GET /login`: the login form."""
    if await current_session(request) is not None:
        raise web.HTTPSeeOther("/")
    return _login_html(request, 200, None, {}, "")


def login_language(request: web.Request) -> str:
    """The login form's language: `?lang=` when given, else the browser's preference."""
    chosen = i18n.supported(request.query.get("lang"))
    return chosen or i18n.negotiate(request.headers.get("Accept-Language"))


def _login_html(
    request: web.Request, status: int, error: str | None, args: dict[str, object], ext: str
) -> web.Response:
    html = (
        request.app[TEMPLATES]
        .get_template("login.html")
        .render(
            error=error,
            error_args=args,
            extension=ext,
            **i18n.page_context(login_language(request)),
        )
    )
    return web.Response(text=html, content_type="text/html", status=status)


async def _login_form_error(
    request: web.Request, status: int, message: str, ext: str, **args: object
) -> web.Response:
    """The error as JSON for API callers (in English), else the form again with it (in the
    page's language: `message` is marked with N_ and formatted with `args` there)."""
    if wants_json(request):
        return web.json_response({"error": message % args if args else message}, status=status)
    return _login_html(request, status, message, args, ext)


async def login(request: web.Request) -> web.Response:
    """`POST /login` with `extension` and `password`: sets the session cookie."""
    auth = request.app[AUTH]
    if not same_origin(request):
        return error(request, 403, "login from another site refused")
    form = await request.post()
    extension = form.get("extension")
    password = form.get("password")
    if not isinstance(extension, str) or not isinstance(password, str):
        return await _login_form_error(request, 400, N_("extension and password are required"), "")
    extension = extension.strip()[:MAX_FIELD]
    ip = client_ip(request)
    # Counted as failures BEFORE hashing, so logins running at the same time (on any
    # instance) see each other: checked first and recorded after the ~50 ms hash, 300
    # concurrent guesses were all hashed (issue 10, finding 2). A success takes its
    # attempt back.
    attempt = await auth.begin_attempt(ip, extension)
    if not attempt.allowed:
        wait = attempt.retry_after_s
        metrics.LOGIN_ATTEMPTS.labels(result="limited").inc()
        limited = await _login_form_error(
            request,
            429,
            N_("too many failed logins; try again in %(seconds)s s"),
            extension,
            seconds=int(wait) + 1,
        )
        limited.headers["Retry-After"] = str(int(wait) + 1)
        return limited
    settings = request.app[SETTINGS].current
    known = settings.site.agent(extension) is not None
    try:
        async with auth.hash_slot():
            ok = await request.app[STORE].verify_agent_password(extension, password)
    except Busy:
        await auth.take_back(attempt)
        metrics.LOGIN_ATTEMPTS.labels(result="limited").inc()
        busy = await _login_form_error(
            request, 503, N_("too many logins at once; try again"), extension
        )
        busy.headers["Retry-After"] = "1"
        return busy
    if not (known and ok):
        metrics.LOGIN_ATTEMPTS.labels(result="failed").inc()
        log.info("console login failed for extension %r from %s", extension, ip)
        return await _login_form_error(request, 401, N_("wrong extension or password"), extension)
    await auth.succeeded(attempt, extension)
    cookie, session = auth.issue(extension, await request.app[STORE].session_version(extension))
    metrics.LOGIN_ATTEMPTS.labels(result="ok").inc()
    log.info("agent %s logged in to the console from %s", extension, ip)
    response: web.Response
    if wants_json(request):
        response = web.json_response({"extension": extension, "csrf": auth.csrf_token(session)})
    else:
        response = redirect("/")
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(auth.max_age_s),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """`POST /logout` (with the CSRF token): ends the session."""
    session, _ = await require_post(request)
    await request.app[STORE].revoke_session(session.sid, request.app[AUTH].expires_at(session))
    # The console's socket ends with the session, not at the next page load.
    await request.app[HUB].close_session(session.sid, code=WS_CLOSE_LOGGED_OUT)
    response: web.Response
    response = web.json_response({"ok": True}) if wants_json(request) else redirect("/login")
    response.del_cookie(COOKIE, path="/")
    return response
