"""Every key of the app's typed state (aiohttp `web.AppKey`s), in one leaf module.

Any module may import this one, and it imports no other module of the app at run time: the
types behind the keys are named under `TYPE_CHECKING` only (as aiohttp keeps its own keys
and types in a leaf module). So a handler reaches the store or the settings without
importing `centralita.app`, and the imports keep going one way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import asyncio

    import jinja2

    from agi.server import AgiServer
    from ami.client import AmiListener
    from centralita.agentstate import AgentStates
    from centralita.amitaps import AmiTaps
    from centralita.asterisks import Asterisks
    from centralita.context import AppFlowContext
    from centralita.crm import CrmClient
    from centralita.feed import CdrWriter
    from centralita.live import LiveSettings
    from centralita.pop import PopBridge, PopHub
    from centralita.queuelog import QueueEventWriter
    from centralita.store import StoreBackend
    from centralita.web.auth import Auth
    from centralita.web.wallboard import WallboardHub
    from centralita.webhooks import WebhookSender

# What a feature adds to /healthz: a part of its JSON body (`{"ami": {...}}`).
HealthCheck = Callable[[web.Application], dict[str, object]]

# Made by `centralita.app`: the settings (`.current`: what a reload applied last, see
# centralita/live.py), then one per cleanup context.
SETTINGS: web.AppKey[LiveSettings] = web.AppKey("settings")
STORE: web.AppKey[StoreBackend] = web.AppKey("store")
CRM: web.AppKey[CrmClient] = web.AppKey("crm")
FLOW_CONTEXT: web.AppKey[AppFlowContext] = web.AppKey("flow_context")
AGI_SERVER: web.AppKey[AgiServer] = web.AppKey("agi_server")
HEALTH_CHECKS: web.AppKey[list[HealthCheck]] = web.AppKey("health_checks")
# Every reader of the AMI stream besides the tracker registers here before the feed starts
# (centralita/amitaps.py).
AMI_TAPS: web.AppKey[AmiTaps] = web.AppKey("ami_taps")

# Made by the console (`centralita.web`).
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates")
AUTH: web.AppKey[Auth] = web.AppKey("auth")
HUB: web.AppKey[PopHub] = web.AppKey("pop_hub")
BRIDGE: web.AppKey[PopBridge] = web.AppKey("pop_bridge")
WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("webhooks")
# Each agent's queue state mirrored from AMI (centralita/agentstate.py), fed by the AMI feed.
AGENT_STATES: web.AppKey[AgentStates] = web.AppKey("agent_states")
# The supervisors' live wallboard: its model and open sockets (centralita/web/wallboard.py).
WALLBOARD: web.AppKey[WallboardHub] = web.AppKey("wallboard")

# Made by the AMI feed (`centralita.feed`): the listener and the call-record writer.
# `AMI` is the first (or only) server's listener; `ASTERISKS` every server's link
# (centralita/asterisks.py: which server an agent's phone or a call is on).
AMI: web.AppKey[AmiListener] = web.AppKey("ami")
ASTERISKS: web.AppKey[Asterisks] = web.AppKey("asterisks")
CDR_WRITER: web.AppKey[CdrWriter] = web.AppKey("cdr_writer")
# The queue-event log's writer (centralita/queuelog.py): AMI queue events -> the store.
QUEUE_LOG: web.AppKey[QueueEventWriter] = web.AppKey("queue_log")

# Made by /admin (`centralita.web.admin`): one config save at a time in this process (the
# version check and the write happen under it).
ADMIN_LOCK: web.AppKey[asyncio.Lock] = web.AppKey("admin_lock")
