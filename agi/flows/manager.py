"""Flow `manager`: send a returning caller to the agent who last dealt with them.

The lookup (`FlowContext.last_agent`) finds the most recent call record of this caller within
`manager.window_h`, with a disposition in `manager.dispositions` and an agent that the config
knows; callers are matched by their normalised number (centralita.phone), so `+34 915 550 123`,
`0034915550123` and `915550123` are one person. Withheld caller IDs and ones with fewer than
`manager.min_digits` digits skip the lookup.

If an agent is found, their device must be free: `GET FULL VARIABLE ${DEVICE_STATE(PJSIP/EXT)}`
(docs/asterisk-protocol.md#device-state) must say `NOT_INUSE`. Then the flow sets CENTRALITA_AGENT
and routes to `agent:EXT`; the dialplan rings the agent for `ring_s` and on no answer goes to the
fallback queue. Otherwise (no record, busy, ringing, unavailable, unknown) the call goes straight to
`manager.fallback`.
"""

from __future__ import annotations

from agi.flows.common import route
from agi.flows.context import FlowContext
from agi.router import flow
from agi.session import AgiSession
from dialplan.names import AGENT_VAR

PROMPTS: tuple[str, ...] = ()

# Caller IDs that mean "withheld" (chan_pjsip's `anonymous`, RFC 3323; `unknown` is what
# Asterisk puts in agi_callerid when there is none, res_agi.c setup_env). They hold no digits,
# so the digit count alone already skips them; the list keeps the log line honest.
WITHHELD = frozenset({"", "anonymous", "private", "unknown", "restricted", "unavailable"})


def lookup_allowed(callerid: str, min_digits: int) -> bool:
    """True when the caller ID is worth a lookup: not withheld and at least `min_digits`
    ASCII digits (only digits count: `+34 915 550 123` has 11)."""
    if callerid.strip().lower() in WITHHELD:
        return False
    return sum(1 for c in callerid if "0" <= c <= "9") >= min_digits


@flow("manager")
async def manager_flow(session: AgiSession, context: FlowContext) -> None:
    """Route to the caller's last agent if their device is free, else to the fallback queue."""
    site = context.site
    manager = site.manager
    callerid = session.request.callerid
    agent: str | None = None
    if lookup_allowed(callerid, manager.min_digits):
        agent = await context.last_agent(callerid)
    else:
        session.log.info("manager: caller ID withheld or too short; no lookup")
    if agent is not None and site.agent(agent) is not None:
        device = site.device(agent)
        state = (await session.get_full_variable(f"${{DEVICE_STATE({device})}}")).strip()
        # Tokens are upper case (ast_devstate_str), parsing is case-insensitive
        # (docs/asterisk-protocol.md#device-state).
        if state.upper() == "NOT_INUSE":
            session.log.info("manager: returning caller goes to agent %s", agent)
            await session.set_variable(AGENT_VAR, agent)
            await route(session, f"agent:{agent}")
            return
        session.log.info("manager: agent %s is %s; fallback %s", agent, state, manager.fallback)
    await route(session, str(manager.fallback))
