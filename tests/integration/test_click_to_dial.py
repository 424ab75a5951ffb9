"""Click-to-dial through the console API on a real Asterisk.

POST /api/dial makes Centralita send an Originate whose Channel is the agent's device: Asterisk
calls the agent's phone first, and only once it answers runs the outbound context, which dials
the customer (here `Local/<number>@centralita-test-customer`, the test site's trunk). While
the agent is on that call, a second dial is refused with 409.
"""

from __future__ import annotations

import pytest

from dialplan.names import OUTBOUND_CONTEXT

from .amiwatch import AmiWatch, matches
from .people import Console
from .records import stored_rows
from .site import Site

pytestmark = pytest.mark.asterisk

AGENT = "1002"


async def test_the_agent_rings_first_then_the_customer_and_a_second_dial_is_refused(
    site: Site, ami: AmiWatch, number: str
) -> None:
    async with Console(site, AGENT) as console:
        mark = ami.mark()
        status, body = await console.post("/api/dial", {"number": number})
        # The API answers with the OriginateResponse: Success, reason 4 = the agent answered.
        assert status == 200, body
        assert (body["ok"], body["response"], body["reason"]) == (True, "Success", 4), body

        # Asterisk's own account, in order: the agent's device channel is created and
        # answered, then (and only then) it runs the outbound context, which dials the customer.
        # The Originate's own answer names the channel it made (AMI events reach every
        # session; this one carries Centralita's ActionID).
        originated = await ami.wait_for(
            matches("OriginateResponse", ActionID=body["action_id"]), after=mark
        )
        agent_channel = originated.value("Channel")
        assert agent_channel.startswith(site.device(AGENT) + "-"), agent_channel
        agent_new = await ami.wait_for(matches("Newchannel", Channel=agent_channel), after=mark)
        agent_up = await ami.wait_for(
            matches("Newstate", Channel=agent_channel, ChannelStateDesc="Up"), after=mark
        )
        outbound = await ami.wait_for(
            matches("Newexten", Channel=agent_channel, Context=OUTBOUND_CONTEXT), after=mark
        )
        assert outbound.get("Extension") == number
        customer_new = await ami.wait_for(
            matches("Newchannel", Channel=f"Local/{number}@centralita-test-customer-*"),
            after=mark,
        )
        dial = await ami.wait_for(
            matches("DialBegin", Channel=agent_channel, DestChannel="Local/*"), after=mark
        )
        assert dial.value("DestChannel").startswith(f"Local/{number}@centralita-test-customer-")
        order = [ami.events.index(m) for m in (agent_new, agent_up, outbound, customer_new, dial)]
        assert order == sorted(order), order
        # The customer (the far half of the Local trunk channel) answers in the test context.
        await ami.wait_for(
            matches("DialEnd", Channel=agent_channel, DialStatus="ANSWER"), after=mark
        )
        # (Matched by number: a survey call of an earlier test may be answering there too.)
        await ami.wait_for(
            matches(
                "Newexten",
                Channel=f"Local/{number}@centralita-test-customer-*",
                Context="centralita-test-customer",
                Application="Answer",
            ),
            after=mark,
        )

        # The agent's console shows the call: outgoing, to the number dialled.
        call_id = agent_new.value("Linkedid")
        ringing = await console.wait_for("call.ringing", call_id)
        answered = await console.wait_for("call.answered", call_id)
        for message in (ringing, answered):
            assert (message["direction"], message["number"], message["agent"]) == (
                "out",
                number,
                AGENT,
            )

        # A second dial while on the call: refused, and Asterisk is asked for nothing.
        second = ami.mark()
        status, body = await console.post("/api/dial", {"number": number[:-1] + "9"})
        assert status == 409, body
        assert "already on a call" in str(body)

        await ami.action("Hangup", Channel=agent_channel)
        await console.wait_for("call.ended", call_id)
        assert not ami.seen(matches("Newchannel", Channel=site.device(AGENT) + "-*"), after=second)
        assert not ami.seen(matches("OriginateResponse"), after=second)

        # The call record: Asterisk writes it for the agent's channel (the one that dialled,
        # `DestinationChannel` is the trunk's); it is the agent's call, and the outcome
        # recorded from the pop joins it.
        cdr = await ami.wait_for(matches("Cdr", Channel=agent_channel), after=mark)
        assert cdr.get("Disposition") == "ANSWERED"
        assert cdr.get("DestinationContext") == OUTBOUND_CONTEXT
        assert answered["uniqueid"] == cdr.get("UniqueID")
        rows = await stored_rows(
            site,
            "SELECT dst, agent, disposition FROM cdr WHERE uniqueid = ?",
            answered["uniqueid"],
        )
        assert rows == [(number, AGENT, "ANSWERED")]
        status, body = await console.post(
            "/api/outcomes",
            {"call_id": call_id, "uniqueid": answered["uniqueid"], "outcome": "sale"},
        )
        assert status == 200, body
        status, listing = await console.get("/api/calls")
        assert status == 200, listing
        mine = [c for c in listing["calls"] if c["uniqueid"] == answered["uniqueid"]]
        assert [(c["agent"], c["dst"], c["outcome"]) for c in mine] == [(AGENT, number, "sale")]
