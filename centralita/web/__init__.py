"""The agent console and JSON API (filled in by the web feature)."""

from __future__ import annotations

from aiohttp import web


def setup_web(app: web.Application) -> None:
    """Add the console's routes to the application (none yet)."""
