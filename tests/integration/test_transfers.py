"""Transfers through features.conf on a real Asterisk: the pop moves to the new agent.

The queue lets the agent transfer (`Queue(...,t)`), and features.conf maps `##` to a blind
and `*2` to an attended transfer. The agents' phones are sipp and send no DTMF, so the agent
"presses" the keys with AMI `PlayDTMF` and `Receive: true`, which queues the digit on the
agent's channel as if it had come from the phone (app_senddtmf.c manager_play_dtmf:
ast_queue_frame): the bridge reads it like any key the agent presses, matches it against the
feature map, and runs Asterisk's own transfer (bridge_basic.c), prompt and digit collection
included. No AMI transfer action (BlindTransfer, Atxfer) is used.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from .amiwatch import AmiWatch, matches
from .people import Call, Console, place_call
from .records import agent_of, stored_rows
from .records import store_agent_of as records_agent
from .site import PHONE_AGENTS, Site

pytestmark = pytest.mark.asterisk

CALLER_NAME = "Transfer Caller"
# The transferring member's endpoint context (their role's, test_roles.py): where a transfer
# dials. 1001 is the demo's supervisor; both contexts hold every agent with a phone.
TRANSFER_CONTEXT = {"1001": "supervisor", "1002": "agents", "1003": "agents"}


@dataclass
class Answered:
    call: Call
    agent: str  # who answered in the queue
    channel: str  # that agent's channel
    target: str  # another agent with a phone, to transfer to


async def answered_queue_call(
    site: Site, ami: AmiWatch, consoles: dict[str, Console], number: str
) -> Answered:
    call = await place_call(ami, number=number, name=CALLER_NAME)
    await call.listening("STREAM FILE")  # the welcome: a key cuts the menu short
    await call.press("2")
    connect = await ami.wait_for(matches("AgentConnect", Channel=call.near), after=call.mark)
    channel = connect.value("DestChannel")
    agent = agent_of(channel)
    assert agent in PHONE_AGENTS, channel
    await consoles[agent].wait_for("call.answered", call.linkedid)
    target = next(a for a in PHONE_AGENTS if a != agent)
    return Answered(call, agent, channel, target)


async def press_on_agent_phone(ami: AmiWatch, channel: str, keys: str) -> None:
    """The agent presses `keys` on the phone: DTMF received on the agent's channel.

    One key at a time, the next once the channel has read the last (its DTMFEnd), as a person
    presses them: queued all at once, digits that arrive while Asterisk still emulates the
    length of the previous one are deferred and were lost in the transfer's digit collection.
    """
    for key in keys:
        mark = ami.mark()
        reply = await ami.action(
            "PlayDTMF", Channel=channel, Digit=key, Duration="100", Receive="true"
        )
        assert reply.get("Response") == "Success", reply
        await ami.wait_for(
            matches("DTMFEnd", Channel=channel, Digit=key, Direction="Received"), after=mark
        )


def assert_customer_pop(message: dict[str, object], number: str, agent: str) -> None:
    assert message["number"] == number
    assert message["name"] == CALLER_NAME
    assert message["agent"] == agent
    assert message["direction"] == "in"


async def assert_the_new_agents_record(
    site: Site, ami: AmiWatch, console: Console, call: Call, agent: str
) -> None:
    """Asterisk wrote a record of the customer's call with `agent`; the outcome joins it."""
    await ami.wait_for(
        lambda m: (
            m.name == "Cdr"
            and m.get("UniqueID") == call.uniqueid
            and records_agent(m.value("DestinationChannel")) == agent
        ),
        after=call.mark,
    )
    rows = await stored_rows(
        site, "SELECT agent FROM cdr WHERE uniqueid = ? AND agent = ?", call.uniqueid, agent
    )
    assert rows == [(agent,)]
    status, body = await console.post(
        "/api/outcomes", {"call_id": call.linkedid, "uniqueid": call.uniqueid, "outcome": "sale"}
    )
    assert status == 200, body
    status, listing = await console.get("/api/calls?" + urlencode({"customer": call.number}))
    assert status == 200, listing
    # (A supervisor also sees the first agent's part of the call, a record of its own.)
    mine = [
        (c["outcome"], c["outcome_agent"])
        for c in listing["calls"]
        if c["uniqueid"] == call.uniqueid and c["agent"] == agent
    ]
    assert mine == [("sale", agent)], listing


async def test_a_blind_transfer_moves_the_pop_to_the_new_agent(
    site: Site, ami: AmiWatch, number: str
) -> None:
    async with AsyncExitStack() as stack:
        consoles = {
            ext: await stack.enter_async_context(Console(site, ext)) for ext in PHONE_AGENTS
        }
        got = await answered_queue_call(site, ami, consoles, number)
        call, target = got.call, got.target
        mark = ami.mark()
        await press_on_agent_phone(ami, got.channel, "##" + target)

        transfer = await ami.wait_for(
            matches("BlindTransfer", TransfererChannel=got.channel), after=mark
        )
        assert transfer.get("Result") == "Success", transfer
        context = TRANSFER_CONTEXT[got.agent]
        assert (transfer.get("Context"), transfer.get("Extension")) == (context, target)
        # The customer's own channel now dials the new agent's phone, which answers.
        await ami.wait_for(
            matches(
                "DialEnd",
                Channel=call.near,
                DestChannel=site.device(target) + "-*",
                DialStatus="ANSWER",
            ),
            after=mark,
        )

        old = await consoles[got.agent].wait_for("call.ended", call.linkedid)
        assert_customer_pop(old, number, got.agent)
        ringing = await consoles[target].wait_for("call.ringing", call.linkedid)
        answered = await consoles[target].wait_for("call.answered", call.linkedid)
        for message in (ringing, answered):
            assert_customer_pop(message, number, target)
            assert message["uniqueid"] == call.uniqueid  # the outcome joins the same record

        await call.hangup()
        await consoles[target].wait_for("call.ended", call.linkedid)
        kinds = [m["type"] for m in consoles[target].for_call(call.linkedid)]
        assert kinds == ["call.ringing", "call.answered", "call.ended"]
        kinds = [m["type"] for m in consoles[got.agent].for_call(call.linkedid)]
        assert kinds == ["call.ringing", "call.answered", "call.ended"]
        third = next(a for a in PHONE_AGENTS if a not in (got.agent, target))
        assert consoles[third].for_call(call.linkedid) == []
        await assert_the_new_agents_record(site, ami, consoles[target], call, target)


async def test_an_attended_transfer_moves_the_pop_to_the_new_agent(
    site: Site, ami: AmiWatch, number: str
) -> None:
    async with AsyncExitStack() as stack:
        consoles = {
            ext: await stack.enter_async_context(Console(site, ext)) for ext in PHONE_AGENTS
        }
        got = await answered_queue_call(site, ami, consoles, number)
        call, target = got.call, got.target
        mark = ami.mark()
        await press_on_agent_phone(ami, got.channel, "*2" + target)

        # Asterisk calls the new agent for the consultation (through a Local channel into the
        # transfer context); the new agent's phone answers.
        consult = await ami.wait_for(
            matches("DialEnd", DestChannel=site.device(target) + "-*", DialStatus="ANSWER"),
            after=mark,
        )
        target_channel = consult.value("DestChannel")
        await ami.wait_for(matches("BridgeEnter", Channel=target_channel), after=mark)
        # The first agent hangs up: that completes the transfer (bridge_basic.c, transferer
        # hangup in the consulting state).
        await ami.action("Hangup", Channel=got.channel)
        transfer = await ami.wait_for(matches("AttendedTransfer"), after=mark)
        assert transfer.get("Result") == "Success", transfer
        assert transfer.get("OrigTransfererChannel") == got.channel

        old = await consoles[got.agent].wait_for("call.ended", call.linkedid)
        assert_customer_pop(old, number, got.agent)
        answered = await consoles[target].wait_for("call.answered", call.linkedid)
        assert_customer_pop(answered, number, target)
        assert answered["uniqueid"] == call.uniqueid

        # The customer now talks to the new agent: that phone stays up until the caller hangs
        # up, and its pop ends then.
        assert not ami.seen(matches("Hangup", Channel=target_channel), after=mark)
        hangup = ami.mark()
        await call.hangup()
        await ami.wait_for(matches("Hangup", Channel=target_channel), after=hangup)
        await consoles[target].wait_for("call.ended", call.linkedid)
        # Asterisk gives the consultation call (a Local channel requested by the transferer)
        # the transferer's Linkedid, so the new agent's pop is the customer's from the
        # consultation on, and the transfer keeps it: one ringing, answered, ended.
        for console, agent in ((consoles[target], target), (consoles[got.agent], got.agent)):
            pops = console.for_call(call.linkedid)
            assert [m["type"] for m in pops] == ["call.ringing", "call.answered", "call.ended"]
            for message in pops:
                assert_customer_pop(message, number, agent)
        third = next(a for a in PHONE_AGENTS if a not in (got.agent, target))
        assert consoles[third].for_call(call.linkedid) == []
        await assert_the_new_agents_record(site, ami, consoles[target], call, target)
