"""The console's static files: versioned URLs and cache headers.

Pages link every file as `/static/<name>?v=<hash of its content>` (`static_url`), so a
browser may keep it for a year (`immutable`) and a new release, whose files hash
differently, is fetched at once. A file asked for without its version (a font named in the
CSS, an ES module imported by another) must be revalidated each time (`no-cache`); aiohttp
answers that with its ETag and Last-Modified (304 when unchanged).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/static/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

_versions: dict[str, tuple[float, str]] = {}


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
