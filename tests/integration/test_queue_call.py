"""A queue call on a real Asterisk: the agent who answers gets the pop, and only that agent.

Every agent with a phone has the console open; Asterisk's AgentConnect says who answered.
The call record is read from the SQLite store itself (Centralita writes it from cdr_manager's
`Cdr` event), and the outcome the agent records through the console joins it in /api/calls.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from urllib.parse import urlencode

import pytest

from .amiwatch import AmiWatch, matches
from .people import Console, place_call
from .records import agent_of, stored_rows
from .site import PHONE_AGENTS, Site

pytestmark = pytest.mark.asterisk

CALLER_NAME = "Queue Caller"


async def test_the_pop_reaches_the_agent_who_answers_and_the_outcome_joins_the_record(
    site: Site, ami: AmiWatch, number: str
) -> None:
    async with AsyncExitStack() as stack:
        consoles = {
            ext: await stack.enter_async_context(Console(site, ext)) for ext in PHONE_AGENTS
        }
        call = await place_call(ami, number=number, name=CALLER_NAME)
        await call.listening("STREAM FILE")  # the welcome: a key cuts the menu short
        await call.press("2")  # English

        connect = await ami.wait_for(matches("AgentConnect", Channel=call.near), after=call.mark)
        assert connect.get("Queue") == "support-en"
        agent_channel = connect.value("DestChannel")
        assert agent_channel.startswith(site.device("")), agent_channel
        agent = agent_of(agent_channel)
        assert agent in PHONE_AGENTS, agent_channel
        console = consoles[agent]

        ringing = await console.wait_for("call.ringing", call.linkedid)
        answered = await console.wait_for("call.answered", call.linkedid)
        await call.hangup()
        ended = await console.wait_for("call.ended", call.linkedid)
        await call.ended()

        pops = console.for_call(call.linkedid)
        assert [m["type"] for m in pops] == ["call.ringing", "call.answered", "call.ended"]
        for message in (ringing, answered, ended):
            assert message["agent"] == agent
            assert message["direction"] == "in"
            assert message["number"] == number
            assert message["name"] == CALLER_NAME
            assert message["queue"] == "support-en"
            # The customer's leg: the Local half running our dialplan, whose CDR is written.
            assert message["uniqueid"] == call.uniqueid

        # Nobody else: an agent the queue never rang sees nothing of this call, and one it
        # rang without answering (not expected with one ring at a time) never sees it answered.
        rung = {
            agent_of(m.value("DestChannel"))
            for m in ami.seen(matches("AgentCalled", Channel=call.near), after=call.mark)
        }
        assert agent in rung
        for other, other_console in consoles.items():
            if other == agent:
                continue
            kinds = [m["type"] for m in other_console.for_call(call.linkedid)]
            if other in rung:
                assert "call.answered" not in kinds, (other, kinds)
            else:
                assert kinds == [], (other, kinds)

        # The call record Asterisk wrote (cdr_manager), as Centralita stored it.
        cdr = await ami.wait_for(
            lambda m: (
                m.name == "Cdr"
                and m.get("UniqueID") == call.uniqueid
                and (m.get("DestinationChannel") or "").startswith(agent_channel)
            ),
            after=call.mark,
        )
        assert cdr.get("Disposition") == "ANSWERED"
        rows = await stored_rows(
            site,
            "SELECT src, agent, disposition FROM cdr WHERE uniqueid = ? AND dstchannel = ?",
            call.uniqueid,
            agent_channel,
        )
        assert len(rows) == 1, rows
        assert rows[0] == (number, agent, "ANSWERED")

        # The agent records the outcome from the pop; it joins the record in /api/calls.
        status, body = await console.post(
            "/api/outcomes",
            {
                "call_id": answered["call_id"],
                "uniqueid": answered["uniqueid"],
                "outcome": "sale",
                "notes": "wants the yearly plan",
            },
        )
        assert status == 200, body
        outcomes = await stored_rows(
            site, "SELECT call_id, agent, outcome FROM outcomes WHERE call_id = ?", call.uniqueid
        )
        assert outcomes == [(call.uniqueid, agent, "sale")]
        status, listing = await console.get("/api/calls?" + urlencode({"customer": number}))
        assert status == 200, listing
        mine = [c for c in listing["calls"] if c["uniqueid"] == call.uniqueid]
        assert len(mine) == 1, listing
        assert mine[0]["agent"] == agent
        assert mine[0]["src"] == number
        assert mine[0]["outcome"] == "sale"
        assert mine[0]["outcome_agent"] == agent
        assert mine[0]["notes"] == "wants the yearly plan"
