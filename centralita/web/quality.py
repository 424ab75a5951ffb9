"""Quality: `/complaints` (low survey ratings, each with the caller's message from box 600)
and the playback of that message and of call recordings.

Who: quality staff, supervisors and admins (`permissions.require_quality`), checked on every
request; an agent gets 403 on each route. What is played is found by the server from the
object's id, never from a path or file name in the request:

- `GET /api/ratings/{id}/voicemail`: the rating, then the message its caller left in the
  complaints box, read from Asterisk's voicemail spool (`[asterisk] spool_dir`,
  centralita/voicemail.py) and matched to the rating there;
- `GET /api/calls/{uniqueid}/recording`: the call record with that Uniqueid in the store,
  then `<[asterisk] recordings_dir>/<Uniqueid>.wav`, the file MixMonitor writes
  (conf_templates/extensions.conf.j2, the record context).

The file must resolve inside its spool folder (no symlink or `..` leads out), and is sent by
aiohttp's FileResponse, which answers `Range: bytes=...` with 206 and the bytes asked for
(browsers fetch media in ranges and seek with them). Every playback is written to the audit
log (`playback.voicemail`, `playback.recording`): a browser fetches one playback in several
ranges, so one listener's requests for one file within AUDIT_WINDOW_S are one entry.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from centralita.keys import SETTINGS, STORE
from centralita.recordings import file_inside, recording_path
from centralita.store.records import Rating
from centralita.voicemail import Message, match_messages, read_box
from centralita.web.auth import Session, error, require_api, require_page
from centralita.web.console import render_page
from centralita.web.permissions import require_quality
from dialplan.names import MAILBOX_CONTEXT

AUDIO_TYPE = "audio/wav"
# One entry per listener and file for the range requests of one playback (and its seeks).
AUDIT_WINDOW_S = 600.0


@dataclass
class PlaybackAudit:
    """When each (listener, action, subject) was last written to the audit log."""

    last: dict[tuple[str, str, str], float]

    def due(self, key: tuple[str, str, str], now: float) -> bool:
        """True (and remembered) when `key` was not audited within AUDIT_WINDOW_S."""
        if len(self.last) > 10_000:  # forget the old ones, never growing for good
            self.last = {k: t for k, t in self.last.items() if now - t < AUDIT_WINDOW_S}
        seen = self.last.get(key)
        if seen is not None and now - seen < AUDIT_WINDOW_S:
            return False
        self.last[key] = now
        return True


PLAYBACK_AUDIT: web.AppKey[PlaybackAudit] = web.AppKey("centralita_playback_audit", PlaybackAudit)


@dataclass(frozen=True)
class ComplaintRow:
    """One line of /complaints, ready to show."""

    rating: Rating
    agent_name: str
    customer: str  # the contact's name when the number is linked to one, else the number
    contact: bool
    call_url: str | None
    voicemail_url: str | None
    message: Message | None


def _read_boxes(spools: list[Path], box: str) -> list[Message]:
    """The complaints box of every Asterisk server (a survey call leaves its message on the
    server that dialled it), oldest first."""
    messages = [m for spool in spools for m in read_box(spool, MAILBOX_CONTEXT, box)]
    messages.sort(key=lambda m: m.origtime or 0)
    return messages


async def _box_messages(request: web.Request) -> list[Message]:
    settings = request.app[SETTINGS].current
    spools = [server.spool_dir for server in settings.asterisks]
    # A folder of small files: read in a thread, so the event loop never waits on the disk.
    return await asyncio.to_thread(_read_boxes, spools, settings.site.survey.voicemail_box)


async def _customers(request: web.Request, numbers: set[str]) -> dict[str, str]:
    """Each number's contact name, for the numbers linked to a contact."""
    store = request.app[STORE]
    names = {}
    for number in numbers:
        contacts = await store.contacts_for_number(number)
        if contacts:
            names[number] = contacts[0].name
    return names


async def complaints_page(request: web.Request) -> web.Response:
    """`GET /complaints`: ratings below the survey threshold, newest first, with the agent's
    name, the customer, a link to the call in /calls and the caller's message."""
    session = await require_page(request)
    require_quality(request, session)
    settings = request.app[SETTINGS].current
    threshold = settings.site.survey.threshold
    ratings = await request.app[STORE].list_ratings(below=threshold)
    matched = match_messages(ratings, await _box_messages(request))
    customers = await _customers(request, {r.callerid for r in ratings if r.callerid})
    rows = []
    for rating in reversed(ratings):
        agent = settings.site.agent(rating.agent)
        message = matched.get(rating.id)
        rows.append(
            ComplaintRow(
                rating=rating,
                agent_name=agent.name if agent else "",
                customer=customers.get(rating.callerid, rating.callerid),
                contact=rating.callerid in customers,
                call_url=f"/calls?{urlencode({'call': rating.call_id})}"
                if rating.call_id
                else None,
                voicemail_url=(
                    f"/api/ratings/{rating.id}/voicemail"
                    if message is not None and message.audio is not None
                    else None
                ),
                message=message,
            )
        )
    return render_page(request, "complaints.html", session, rows=rows, threshold=threshold)


async def _audited(
    request: web.Request, session: Session, action: str, subject: str, what: str
) -> None:
    if request.app[PLAYBACK_AUDIT].due((session.extension, action, subject), time.monotonic()):
        await request.app[STORE].add_audit(
            actor=session.extension, action=action, subject=subject, changes=what
        )


def _audio(path: Path, download_name: str) -> web.FileResponse:
    return web.FileResponse(
        path,
        headers={
            "Content-Type": AUDIO_TYPE,
            "Content-Disposition": f'inline; filename="{download_name}"',
            "Cache-Control": "no-store",  # a recording stays on the server, not in caches
        },
    )


async def voicemail_audio(request: web.Request) -> web.StreamResponse:
    """`GET /api/ratings/{rating_id}/voicemail`: the message the rating's caller left."""
    session = await require_api(request)
    require_quality(request, session)
    rating = await request.app[STORE].get_rating(int(request.match_info["rating_id"]))
    if rating is None:
        return error(request, 404, "there is no such rating")
    message = match_messages([rating], await _box_messages(request)).get(rating.id)
    if message is None or message.audio is None:
        return error(request, 404, f"the caller of rating {rating.id} left no message")
    settings = request.app[SETTINGS].current
    path = next(
        (
            found
            for server in settings.asterisks
            if (found := file_inside(message.audio, server.spool_dir)) is not None
        ),
        None,
    )
    if path is None:
        return error(request, 404, f"the message of rating {rating.id} is no longer there")
    box = settings.site.survey.voicemail_box
    await _audited(
        request, session, "playback.voicemail", f"rating {rating.id}", f"box {box} {message.name}"
    )
    return _audio(path, f"complaint-{rating.id}.wav")


async def recording_audio(request: web.Request) -> web.StreamResponse:
    """`GET /api/calls/{uniqueid}/recording`: MixMonitor's recording of a stored call."""
    session = await require_api(request)
    require_quality(request, session)
    records = await request.app[STORE].get_cdrs(request.match_info["uniqueid"])
    if not records:
        return error(request, 404, "there is no such call")
    uniqueid = records[0].uniqueid  # the name comes from the store's record
    path = recording_path(request.app[SETTINGS].current.site.recordings_dir, uniqueid)
    if path is None:
        return error(request, 404, f"call {uniqueid} has no recording")
    await _audited(request, session, "playback.recording", f"call {uniqueid}", path.name)
    return _audio(path, f"call-{uniqueid}.wav")


def add_routes(router: web.UrlDispatcher) -> None:
    """The quality pages and playback endpoints."""
    router.add_get("/complaints", complaints_page)
    router.add_get("/api/ratings/{rating_id:[0-9]{1,18}}/voicemail", voicemail_audio)
    router.add_get("/api/calls/{uniqueid:[A-Za-z0-9_.-]{1,150}}/recording", recording_audio)


def setup_quality(app: web.Application) -> None:
    """The app's playback audit memory and the routes."""
    app[PLAYBACK_AUDIT] = PlaybackAudit({})
    add_routes(app.router)
