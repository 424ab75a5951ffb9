"""Typed app state of the console (aiohttp `AppKey`s), kept apart to avoid import cycles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    import jinja2

    from centralita.pop import PopBridge, PopHub
    from centralita.web import CdrWriter
    from centralita.web.auth import Auth
    from centralita.webhooks import WebhookSender

HUB: web.AppKey[PopHub] = web.AppKey("pop_hub")
BRIDGE: web.AppKey[PopBridge] = web.AppKey("pop_bridge")
AUTH: web.AppKey[Auth] = web.AppKey("auth")
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates")
WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("webhooks")
# The AmiListener (ami/client.py) while the app runs; Any keeps this module free of it.
AMI: web.AppKey[Any] = web.AppKey("ami")
CDR_WRITER: web.AppKey[CdrWriter] = web.AppKey("cdr_writer")
