"""The console's static files: versioned URLs and cache headers.

Pages link every file as `/static/<name>?v=<hash of its content>` (`static_url`), so a
browser may keep it for a year (`immutable`) and a new release, whose files hash
differently, is fetched at once. A file asked for without its version (a font named in the
CSS, an ES module imported by another) must be revalidated each time (`no-cache`), cheaply:
its ETag and Last-Modified answer 304 when unchanged.

The files are served from memory (`serve_static`), read once per change of their
modification time. aiohttp's own static route opens each file in a worker thread
(web_fileresponse.py `FileResponse.prepare`), and a request cancelled while it waits for that
thread (a browser leaving a page that still loads scripts) leaks the open file; the console's
files are small (under a megabyte in all) and the same for every agent.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/static/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

_versions: dict[str, tuple[float, str]] = {}


@dataclass(frozen=True, slots=True)
class _StaticFile:
    mtime_ns: int
    body: bytes
    etag: str
    last_modified: str
    content_type: str


_files: dict[Path, _StaticFile] = {}
_ROOT = STATIC_DIR.resolve()


def _static_file(name: str) -> _StaticFile | None:
    """The file `name` under STATIC_DIR as last read (None: absent, or outside the folder)."""
    path = (_ROOT / name).resolve()
    if not path.is_relative_to(_ROOT):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    known = _files.get(path)
    if known is None or known.mtime_ns != st.st_mtime_ns:
        try:
            body = path.read_bytes()
        except OSError:
            return None
        known = _StaticFile(
            mtime_ns=st.st_mtime_ns,
            body=body,
            etag=f'"{st.st_mtime_ns:x}-{len(body):x}"',
            last_modified=formatdate(st.st_mtime, usegmt=True),
            content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        )
        _files[path] = known
    return known


async def serve_static(request: web.Request) -> web.StreamResponse:
    """GET /static/{path}: a console file, or 304 when the browser's copy is current."""
    found = _static_file(request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    headers = {"ETag": found.etag, "Last-Modified": found.last_modified}
    if found.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, content_type=found.content_type, headers=headers)


def static_url(name: str) -> str:
    """`/static/<name>?v=<first 12 hex digits of its SHA-256>` (cached by modification time)."""
    path = STATIC_DIR / name
    mtime = path.stat().st_mtime
    known = _versions.get(name)
    if known is None or known[0] != mtime:
        known = (mtime, hashlib.sha256(path.read_bytes()).hexdigest()[:12])
        _versions[name] = known
    return f"{PREFIX}{name}?v={known[1]}"


@web.middleware
async def cache_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Long-lived caching for versioned static URLs, revalidation for the others."""
    response = await handler(request)
    if request.path.startswith(PREFIX) and response.status in (200, 304):
        versioned = "v" in request.query
        response.headers["Cache-Control"] = IMMUTABLE if versioned else REVALIDATE
    return response
