"""The returning caller on a real Asterisk: a real earlier call sends them straight to their agent.

The earlier call is an English queue call an agent's phone answers; its record comes from
cdr_manager through Centralita into the store, and only then does the caller call again into
the `manager` destination (`s@centralita-manager`). With that agent's phone free, the call
goes to the agent; with the phone in use (another call kept up on it), to the queue
(`[manager] fallback`).
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from ami.protocol import AmiMessage

from .amiwatch import WAIT_S, AmiWatch, matches
from .people import Call, place_call
from .site import Site

pytestmark = pytest.mark.asterisk


def agents_on_record(site: Site, number: str) -> list[str]:
    """The agents of the call records the store holds for caller `number` (read directly)."""
    with sqlite3.connect(site.database) as db:
        rows = db.execute(
            "SELECT agent FROM cdr WHERE src = ? AND agent != '' ORDER BY start", (number,)
        ).fetchall()
    return [str(r[0]) for r in rows]


async def earlier_call(site: Site, ami: AmiWatch, number: str) -> str:
    """A real call an agent answers; returns the agent once its record is in the store."""
    call = await place_call(ami, number=number)
    await call.listening("STREAM FILE")  # a key interrupts the welcome (flow language)
    await call.press("2")
    connect = await ami.wait_for(matches("AgentConnect", Channel=call.near), after=call.mark)
    agent = connect.value("Interface").split("/", 1)[1]
    await call.hangup()
    # cdr_manager's record of the queue call, as Asterisk sent it...
    cdr = await ami.wait_for(
        matches("Cdr", UniqueID=call.uniqueid, Disposition="ANSWERED"), after=call.mark
    )
    assert (cdr.get("DestinationChannel") or "").startswith(site.device(agent) + "-"), cdr
    # ...and as Centralita stored it (nothing on the AMI marks that write).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while agent not in agents_on_record(site, number):
        assert loop.time() < deadline, f"no record of {number}:\n{site.centralita_log()}"
        await asyncio.sleep(0.2)
    return agent


async def returning_call(ami: AmiWatch, number: str) -> tuple[Call, AmiMessage]:
    """The caller calls again into the `manager` destination; returns where the flow sent them."""
    call = await place_call(ami, number=number, exten="s", context="centralita-manager")
    routed = await ami.wait_for(
        lambda m: (
            matches("Newexten", Channel=call.near)(m)
            and m.get("Context") in ("centralita-agent", "centralita-queue")
        ),
        after=call.mark,
    )
    return call, routed


async def test_a_returning_caller_goes_to_their_agent_or_to_the_queue_when_busy(
    site: Site, ami: AmiWatch, number: str
) -> None:
    agent = await earlier_call(site, ami, number)
    device = site.device(agent)

    # The agent's phone is free: straight to the agent, whose phone rings and answers.
    call, routed = await returning_call(ami, number)
    assert (routed.get("Context"), routed.get("Extension")) == ("centralita-agent", agent)
    assert await call.variable("CENTRALITA_AGENT") == agent
    answered = await ami.wait_for(
        matches("DialEnd", Channel=call.near, DialStatus="ANSWER"), after=call.mark
    )
    assert answered.value("DestChannel").startswith(device + "-")
    await call.hangup()
    await call.ended()
    await ami.wait_for(matches("Hangup", Channel=answered.value("DestChannel")), after=call.mark)

    # Another call is kept up on the agent's phone: the caller goes to the queue instead.
    mark = ami.mark()
    busy = await ami.originate(
        Channel=device, Application="Wait", Data="120", CallerID='"Busy line" <5550100>'
    )
    assert busy.get("Response") == "Success", busy
    busy_channel = busy.value("Channel")
    try:
        await ami.wait_for(matches("DeviceStateChange", Device=device, State="INUSE"), after=mark)
        state = await ami.action("Getvar", Variable=f"DEVICE_STATE({device})")
        assert state.get("Value") == "INUSE", state
        call, routed = await returning_call(ami, number)
        assert (routed.get("Context"), routed.get("Extension")) == (
            "centralita-queue",
            "support-en",
        )
        joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=mark)
        assert joined.get("Queue") == "support-en"
        connect = await ami.wait_for(matches("AgentConnect", Channel=call.near), after=mark)
        assert connect.get("Interface") != device  # ringinuse = no: the busy phone is skipped
        assert not ami.seen(
            matches("DialBegin", Channel=call.near, DestChannel=device + "-*"), after=mark
        )
        await call.hangup()
        await call.ended()
    finally:
        await ami.action("Hangup", Channel=busy_channel)
