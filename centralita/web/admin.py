"""`/admin`: members and queues, administered from the browser (console permission `admin`).

Every page and every POST checks on the server that the logged-in member's role has the
`admin` console permission (403 otherwise). A save edits the config file with the same code
and validation as `centralita member` (centralita.agents_admin: tomlkit keeps comments and
order; the whole config is loaded and rendered in memory before anything is written), then
renders the Asterisk files into `asterisk.conf_dir` when set and, when asked, reloads Asterisk
through the same AMI code as `centralita render --reload`. The page shows what changed in each
Asterisk file (secrets masked). On an error nothing is written and the form shows the message
on the field it names.

Two admins editing at once: each form carries the SHA-256 of the file it was made from (the
hidden field `version`); a save whose version is no longer the file's is refused with 409 and
nothing is written, so one admin's change is never silently lost to the other's.
"""

from __future__ import annotations

import asyncio
import difflib
import io
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from centralita import agents_admin
from centralita.agents_admin import (
    MemberFields,
    PendingChanges,
    config_hash,
    pending_changes,
)
from centralita.cmd_render import (
    ami_secret_for,
    reload_asterisk_async,
    reload_secret_for,
    render_files,
)
from centralita.keys import ADMIN_LOCK, SETTINGS, STORE
from centralita.settings import AsteriskSettings, Settings, parse_settings
from centralita.web.auth import Session, require_page, require_post
from centralita.web.console import render_page
from dialplan.model import QUEUE_STRATEGIES
from dialplan.render import write_rendered
from dialplan.validate import ConfigError

MEMBER_FIELDS = ("extension", "name", "role", "queues", "language", "voicemail", "password")
QUEUE_FIELDS = ("strategy", "timeout_s", "survey", "record")
MIN_PASSWORD = 8
# Lines of a rendered file that hold a secret: shown masked in the diff.
SECRET_LINE = re.compile(r"^(?P<key>\s*(?:password|secret)\s*=>?\s*).*$", re.M)
# Lines of the config (TOML) that hold a secret (`secret`, `ami_secret`, `secret_key`...).
CONFIG_SECRET_LINE = re.compile(
    r"^(?P<key>\s*[A-Za-z_]*(?:secret|password)[A-Za-z_]*\s*=\s*).*$", re.M
)
AUDIT_PAGE = 50
FIELD_OF_KEY = re.compile(r"^(?:(?:members|agents|queues)\[\d+\]\.)?(?P<field>[a-z_]+)$")


def setup_admin(app: web.Application) -> None:
    """Add the /admin routes."""
    app[ADMIN_LOCK] = asyncio.Lock()
    r = app.router
    r.add_get("/admin", admin_page)
    r.add_get("/admin/members/new", new_member_page)
    r.add_post("/admin/members", add_member)
    r.add_get("/admin/members/{extension:[0-9]{1,20}}", edit_member_page)
    r.add_post("/admin/members/{extension:[0-9]{1,20}}", edit_member)
    r.add_post("/admin/members/{extension:[0-9]{1,20}}/remove", remove_member)
    r.add_post("/admin/queues/{name}", edit_queue)
    r.add_get("/admin/audit", audit_page)
    r.add_post("/admin/apply", apply_file)


# ----------------------------------------------------------------------------- permission


async def require_admin(request: web.Request) -> Session:
    """The session of an admin (403 for every other member, server-side, on every request)."""
    session = await require_page(request)
    _check_admin(request, session)
    return session


async def require_admin_post(request: web.Request) -> tuple[Session, dict[str, object]]:
    session, body = await require_post(request)
    _check_admin(request, session)
    return session, body


def _check_admin(request: web.Request, session: Session) -> None:
    if request.app[SETTINGS].current.site.console_permission(session.extension) != "admin":
        raise web.HTTPForbidden(text="this page is for admins (a role whose console is admin)")


def _config_path(request: web.Request) -> Path:
    path = request.app[SETTINGS].current.file
    if path is None:
        raise web.HTTPConflict(
            text="the built-in demo cannot be edited: serve a config file of your own "
            "(centralita init DIR, then serve --config DIR/centralita.toml)"
        )
    return path


@dataclass
class Current:
    """The config file as it is now: its text, version and settings."""

    path: Path
    text: str
    settings: Settings

    @property
    def version(self) -> str:
        return config_hash(self.text)


def _current(request: web.Request) -> Current:
    path = _config_path(request)
    try:
        text = path.read_text(encoding="utf-8")
        settings = parse_settings(text, str(path), path.resolve().parent, path)
    except ConfigError as exc:
        # Edited by hand into something invalid: /admin edits nothing until it is fixed.
        raise web.HTTPConflict(text=f"the config file does not load: {exc}") from None
    return Current(path, text, settings)


def _waiting(request: web.Request, current: Current) -> PendingChanges:
    """What the file holds that this running server does not use (yet)."""
    return pending_changes(request.app[SETTINGS].current, current.settings)


# ----------------------------------------------------------------------------- pages


async def admin_page(request: web.Request) -> web.Response:
    """`GET /admin`: the members and the queues."""
    session = await require_admin(request)
    return _admin(request, session, _current(request))


@dataclass
class MemberForm:
    """The values a member form shows (what the admin typed, after an error)."""

    extension: str = ""
    name: str = ""
    role: str = "agent"
    queues: list[str] = field(default_factory=list)
    language: str = "en"
    voicemail: bool = True
    new_secret: bool = False


def _member_form(
    request: web.Request,
    session: Session,
    current: Current,
    form: MemberForm,
    *,
    adding: bool,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    response = render_page(
        request,
        "admin_member.html",
        session,
        site=current.settings.site,
        version=current.version,
        form=form,
        adding=adding,
        errors=dict(errors or {}),
        conf_dir=current.settings.asterisk.conf_dir,
    )
    response.set_status(status)
    return response


async def new_member_page(request: web.Request) -> web.Response:
    session = await require_admin(request)
    current = _current(request)
    return _member_form(request, session, current, MemberForm(), adding=True)


async def edit_member_page(request: web.Request) -> web.Response:
    session = await require_admin(request)
    current = _current(request)
    member = current.settings.site.member(request.match_info["extension"])
    if member is None:
        raise web.HTTPNotFound(text="there is no member with that extension")
    form = MemberForm(
        extension=member.extension,
        name=member.name,
        role=member.role,
        queues=list(member.queues),
        language=member.language,
        voicemail=member.voicemail,
    )
    return _member_form(request, session, current, form, adding=False)


# ----------------------------------------------------------------------------- saving


def _text(body: Mapping[str, object], name: str, limit: int = 200) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise web.HTTPBadRequest(text=f"{name}: too long or not text")
    return value.strip()


async def _form_of(request: web.Request, body: Mapping[str, object]) -> MemberForm:
    posted = await request.post()  # aiohttp keeps it: read again for the repeated `queues`
    queues = [q for q in posted.getall("queues", []) if isinstance(q, str)]
    if len(queues) > 100 or any(len(q) > 100 for q in queues):
        raise web.HTTPBadRequest(text="queues: too many")
    return MemberForm(
        extension=_text(body, "extension", 20),
        name=_text(body, "name"),
        role=_text(body, "role", 100),
        queues=queues,
        language=_text(body, "language", 20),
        voicemail=body.get("voicemail") == "on",
        new_secret=body.get("new_secret") == "on",
    )


def _password(body: Mapping[str, object]) -> str | None:
    """The console password typed in the form, or None when left empty."""
    value = body.get("password", "")
    if not isinstance(value, str) or not value:
        return None
    if len(value) < MIN_PASSWORD or len(value) > 200 or any(ord(c) < 32 for c in value):
        raise ConfigError(
            "console password",
            "password",
            f"needs at least {MIN_PASSWORD} characters and no control characters",
        )
    return value


def field_of(error: ConfigError, fields: tuple[str, ...]) -> str:
    """The form field a ConfigError names ("members[3].role" -> "role"), else "" (the
    message then shows above the form)."""
    match = FIELD_OF_KEY.match(error.key)
    if match and match.group("field") in fields:
        return match.group("field")
    return ""


@dataclass
class Outcome:
    """What a save did, for the result page."""

    action: str
    subject: str
    diffs: dict[str, str]
    written: list[str]
    reload_output: str = ""
    reload_ok: bool = True
    secret: str = ""  # a generated SIP secret, shown once
    applied: bool = False  # the running server took the new file (centralita/live.py)
    apply_error: str = ""  # why it did not (the file is saved all the same)


async def _save(
    request: web.Request,
    current: Current,
    new_text: str,
    *,
    action: str,
    subject: str,
    reload: bool,
) -> Outcome:
    """Write the edited config, render, optionally reload. Called under ADMIN_LOCK, after
    the version check and the validation (nothing can fail for a config reason here)."""
    new_settings = parse_settings(
        new_text, str(current.path), current.path.resolve().parent, current.path
    )
    several = len(new_settings.asterisks) > 1
    outcome = Outcome(action, subject, {}, [])
    writes: list[tuple[AsteriskSettings, Path, dict[str, str], str]] = []
    # Each server's files (the same set for all when their members are the same), into its
    # own conf_dir, then each reloaded (centralita/cmd_render.py).
    for server in new_settings.asterisks:
        conf_dir = server.conf_dir
        if conf_dir is not None:
            ami_secret, _ = ami_secret_for(new_settings, conf_dir, server)
            reload_secret = reload_secret_for(new_settings, conf_dir, server)
        else:
            # Nothing is written: any secrets do, the same before and after (manager.conf equal).
            ami_secret = server.ami_secret or secrets.token_urlsafe(12)
            reload_secret = secrets.token_urlsafe(12)
        before = _rendered_or_nothing(current.settings, ami_secret, reload_secret, server.name)
        after = render_files(new_settings, ami_secret, reload_secret, server=server)
        for name, diff in _diffs(before, after).items():
            outcome.diffs[f"{server.name}/{name}" if several else name] = diff
        if conf_dir is not None:
            writes.append((server, conf_dir, after, reload_secret))
    agents_admin.save_config(current.path, new_text)
    reload_out, reload_err = io.StringIO(), io.StringIO()
    for server, conf_dir, files, reload_secret in writes:
        results = await asyncio.to_thread(write_rendered, conf_dir, files)
        outcome.written += [f"{r.status:>9}  {r.path}" for r in results]
        if reload:
            code = await reload_asterisk_async(
                new_settings, reload_secret, out=reload_out, err=reload_err, server=server
            )
            outcome.reload_ok = outcome.reload_ok and code == 0
    outcome.reload_output = reload_out.getvalue() + reload_err.getvalue()
    # After Asterisk's reload: the AMI lists a reload asks for again then hold the new members.
    try:
        outcome.applied = request.app[SETTINGS].apply(new_settings, new_text).applied
    except ConfigError as exc:
        outcome.apply_error = exc.reason
    return outcome


def _rendered_or_nothing(
    settings: Settings, ami_secret: str, reload_secret: str, server_name: str
) -> dict[str, str]:
    server = next((a for a in settings.asterisks if a.name == server_name), None)
    if server is None:
        return {}  # a server the config did not have before
    try:
        return render_files(settings, ami_secret, reload_secret, server=server)
    except ConfigError:
        return {}  # a file edited by hand into something render refuses: diff against nothing


def _diffs(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """A unified diff per changed Asterisk file, secret values masked."""
    diffs = {}
    for name in sorted(set(before) | set(after)):
        old = SECRET_LINE.sub(r"\g<key>********", before.get(name, ""))
        new = SECRET_LINE.sub(r"\g<key>********", after.get(name, ""))
        if old == new:
            continue
        lines = difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{name} (before)",
            f"{name} (after)",
            n=2,
        )
        diffs[name] = "".join(lines)
    return diffs


def _conflict(request: web.Request, session: Session) -> web.Response:
    response = render_page(request, "admin_conflict.html", session)
    response.set_status(409)
    return response


async def _apply(
    request: web.Request,
    session: Session,
    body: Mapping[str, object],
    edit: Callable[[str, str], str],
    *,
    action: str,
    subject: str,
    on_error: Callable[[Current, ConfigError], web.Response],
    after: Callable[[], Any] | None = None,
) -> web.Response | Outcome:
    """The one save path: version check, edit and validation, write, render, reload."""
    async with request.app[ADMIN_LOCK]:
        current = _current(request)
        if body.get("version") != current.version:
            return _conflict(request, session)
        try:
            new_text = await asyncio.to_thread(edit, current.text, str(current.path))
        except ConfigError as exc:
            return on_error(current, exc)
        outcome = await _save(
            request,
            current,
            new_text,
            action=action,
            subject=subject,
            reload=body.get("reload") == "on",
        )
        if after is not None:
            await after()
        await request.app[STORE].add_audit(
            actor=session.extension,
            action=action,
            subject=subject,
            changes=config_diff(current.text, new_text),
        )
    return outcome


def config_diff(before: str, after: str) -> str:
    """The config file's unified diff, secret values masked (what the audit log keeps)."""
    old = CONFIG_SECRET_LINE.sub(r"\g<key>********", before)
    new = CONFIG_SECRET_LINE.sub(r"\g<key>********", after)
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), "before", "after", n=1
    )
    return "".join(lines)


async def audit_page(request: web.Request) -> web.Response:
    """`GET /admin/audit[?page=N]`: who changed what, newest first."""
    session = await require_admin(request)
    text = request.query.get("page", "1")
    page = int(text) if text.isascii() and text.isdigit() and 0 < len(text) < 7 else 1
    page = max(page, 1)
    entries = await request.app[STORE].list_audit(
        limit=AUDIT_PAGE + 1, offset=(page - 1) * AUDIT_PAGE
    )
    return render_page(
        request,
        "admin_audit.html",
        session,
        entries=entries[:AUDIT_PAGE],
        page=page,
        more=len(entries) > AUDIT_PAGE,
    )


def _result(request: web.Request, session: Session, outcome: Outcome) -> web.Response:
    waiting = _waiting(request, _current(request))
    return render_page(request, "admin_result.html", session, outcome=outcome, waiting=waiting)


async def add_member(request: web.Request) -> web.Response:
    """`POST /admin/members`: add a member (the SIP secret is generated and shown once)."""
    session, body = await require_admin_post(request)
    form = await _form_of(request, body)
    secret = agents_admin.generate_secret()

    def edit(text: str, file: str, fields: MemberFields) -> str:
        return agents_admin.add_member(text, form.extension, fields, file=file)

    return await _save_member(request, session, body, form, secret, edit, adding=True)


async def edit_member(request: web.Request) -> web.Response:
    """`POST /admin/members/{extension}`: change a member's fields."""
    session, body = await require_admin_post(request)
    extension = request.match_info["extension"]
    form = await _form_of(request, body)
    form.extension = extension
    secret = agents_admin.generate_secret() if form.new_secret else None

    def edit(text: str, file: str, fields: MemberFields) -> str:
        return agents_admin.edit_member(text, extension, fields, file=file)

    return await _save_member(request, session, body, form, secret, edit, adding=False)


async def _save_member(
    request: web.Request,
    session: Session,
    body: Mapping[str, object],
    form: MemberForm,
    secret: str | None,
    edit: Callable[[str, str, MemberFields], str],
    *,
    adding: bool,
) -> web.Response:
    """What adding and editing a member share: the password, the fields, the save (with the
    form shown again on an error naming its field), and the new SIP secret shown once."""

    def on_error(current: Current, exc: ConfigError) -> web.Response:
        errors = {field_of(exc, MEMBER_FIELDS): f"{exc.key}: {exc.reason}"}
        return _member_form(
            request, session, current, form, adding=adding, errors=errors, status=422
        )

    try:
        password = _password(body)
    except ConfigError as exc:
        return on_error(_current(request), exc)
    fields = MemberFields(
        name=form.name,
        role=form.role,
        queues=form.queues,
        secret=secret,
        language=form.language or None,
        voicemail=form.voicemail,
    )

    async def set_password() -> None:
        if password is not None:
            await request.app[STORE].set_agent_password(form.extension, password)

    done = await _apply(
        request,
        session,
        body,
        lambda text, file: edit(text, file, fields),
        action="add member" if adding else "edit member",
        subject=form.extension,
        on_error=on_error,
        after=set_password,
    )
    if isinstance(done, web.Response):
        return done
    done.secret = secret or ""
    return _result(request, session, done)


async def remove_member(request: web.Request) -> web.Response:
    """`POST /admin/members/{extension}/remove`: remove a member and their console password."""
    session, body = await require_admin_post(request)
    extension = request.match_info["extension"]
    if extension == session.extension:
        raise web.HTTPBadRequest(text="an admin cannot remove themselves here")

    def on_error(current: Current, exc: ConfigError) -> web.Response:
        return _admin_with_error(request, session, current, f"{exc.key}: {exc.reason}", "")

    def edit(text: str, file: str) -> str:
        return agents_admin.remove_member(text, extension, file=file)

    async def forget_password() -> None:
        await request.app[STORE].remove_agent_password(extension)

    done = await _apply(
        request,
        session,
        body,
        edit,
        action="remove member",
        subject=extension,
        on_error=on_error,
        after=forget_password,
    )
    if isinstance(done, web.Response):
        return done
    return _result(request, session, done)


def _admin_with_error(
    request: web.Request,
    session: Session,
    current: Current,
    message: str,
    queue: str,
    errors: Mapping[str, str] | None = None,
) -> web.Response:
    response = _admin(
        request,
        session,
        current,
        page_error=message if not errors else "",
        queue_errors=dict(errors or {}),
        queue_error_name=queue,
    )
    response.set_status(422)
    return response


def _admin(
    request: web.Request, session: Session, current: Current, **shown: object
) -> web.Response:
    """The /admin page: members, queues, what the file holds that the server does not use;
    `shown` overrides the page's messages (page_error, queue_errors, queue_error_name,
    applied)."""
    page: dict[str, object] = {
        "page_error": "",
        "queue_errors": {},
        "queue_error_name": "",
        "applied": None,
    }
    page.update(shown)
    return render_page(
        request,
        "admin.html",
        session,
        site=current.settings.site,
        waiting=_waiting(request, current),
        version=current.version,
        strategies=QUEUE_STRATEGIES,
        conf_dir=current.settings.asterisk.conf_dir,
        **page,
    )


async def apply_file(request: web.Request) -> web.Response:
    """`POST /admin/apply`: the running server takes the config file now, as on SIGHUP (for
    a hand edit: a save in /admin applies at once)."""
    session, _ = await require_admin_post(request)
    async with request.app[ADMIN_LOCK]:
        current = _current(request)
        live = request.app[SETTINGS]
        before = live.text
        try:
            done = live.apply(current.settings, current.text)
        except ConfigError as exc:
            response = _admin(request, session, current, page_error=f"{exc.key}: {exc.reason}")
            response.set_status(422)
            return response
        if done.applied:
            await request.app[STORE].add_audit(
                actor=session.extension,
                action="apply config file",
                subject=current.path.name,
                # What the hand edit brought since the file the server last read.
                changes="" if before is None else config_diff(before, current.text),
            )
    return _admin(request, session, current, applied=done.applied)


async def edit_queue(request: web.Request) -> web.Response:
    """`POST /admin/queues/{name}`: strategy, callback timeout, survey and recording on or
    off (a form sends a ticked box only: an unticked one is off)."""
    session, body = await require_admin_post(request)
    name = request.match_info["name"]
    strategy = _text(body, "strategy", 40)
    timeout_text = _text(body, "timeout_s", 10)
    survey = body.get("survey") == "on"
    record = body.get("record") == "on"

    def on_error(current: Current, exc: ConfigError) -> web.Response:
        found = field_of(exc, QUEUE_FIELDS)
        message = f"{exc.key}: {exc.reason}"
        if not found:
            return _admin_with_error(request, session, current, message, name)
        return _admin_with_error(request, session, current, message, name, {found: message})

    try:
        timeout_s = int(timeout_text)
    except ValueError:
        return on_error(
            _current(request),
            ConfigError("form", "timeout_s", f"{timeout_text!r} is not a whole number"),
        )

    def edit(text: str, file: str) -> str:
        return agents_admin.edit_queue(
            text,
            name,
            strategy=strategy,
            timeout_s=timeout_s,
            survey=survey,
            record=record,
            file=file,
        )

    done = await _apply(
        request, session, body, edit, action="edit queue", subject=name, on_error=on_error
    )
    if isinstance(done, web.Response):
        return done
    return _result(request, session, done)
