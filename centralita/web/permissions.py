"""Who may see and do what in the web console, checked on the server for every request.

A member's console permission comes from their role (`[[roles]] console`: agent,
supervisor, quality or admin; `Site.console_permission`). Every page and API of the
supervisor and quality work calls one of these before it touches an object.
"""

from __future__ import annotations

from aiohttp import web

from centralita.keys import SETTINGS
from centralita.web.auth import Session

SUPERVISORS = frozenset({"supervisor", "admin"})
# Who may listen to recordings and the complaints box's messages.
LISTENERS = frozenset({"quality", "supervisor", "admin"})


def permission_of(request: web.Request, session: Session) -> str | None:
    """The session's member's console permission; None for a member no longer configured."""
    return request.app[SETTINGS].current.site.console_permission(session.extension)


def is_supervisor(request: web.Request, session: Session) -> bool:
    """Members whose role's console is `supervisor` or `admin` (and those listed in the
    deprecated `[console] supervisors`) see every call; other members their own."""
    return permission_of(request, session) in SUPERVISORS


def require_supervisor(request: web.Request, session: Session) -> None:
    """403 unless the member is a supervisor (or an admin)."""
    if not is_supervisor(request, session):
        raise web.HTTPForbidden(
            text="this page is for supervisors (a role whose console is supervisor or admin)"
        )


def may_listen(request: web.Request, session: Session) -> bool:
    """Quality staff, supervisors and admins: they hear recordings and the complaints box's
    messages, and see every call in /calls (quality staff without others' notes)."""
    return permission_of(request, session) in LISTENERS


def require_quality(request: web.Request, session: Session) -> None:
    """403 unless the member is quality staff, a supervisor or an admin."""
    if not may_listen(request, session):
        raise web.HTTPForbidden(text="this page is for quality staff and supervisors")
