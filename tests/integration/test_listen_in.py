"""Listen-in on a real Asterisk: a supervisor listens to an agent's queue call from their phone.

The supervisor (1001, whose role's console is `supervisor`, with a sipp phone) first pauses
themself and 1003 in support-en through the supervisor API (QueuePause with a Queue), so the
caller's queue rings 1002 only. Once 1002 talks to the caller, `POST
/api/supervisor/agents/1002/spy` makes Centralita originate a call to the supervisor's own
phone into the supervisors-only spy context; the phone answers and ChanSpy runs on 1002's
channel (Asterisk's `ChanSpyStart` names it as the spyee). When the caller hangs up, ChanSpy
(option `u`: that one channel) ends and the supervisor's call with it. The spy call makes no
screen pop and no call record; the audit log keeps it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from dialplan.names import SPY_CONTEXT, SPY_TARGET_VAR

from .amiwatch import AmiWatch, matches
from .people import Console, place_call
from .records import stored_rows
from .site import Site

pytestmark = pytest.mark.asterisk

SUPERVISOR = "1001"
AGENT = "1002"
OTHER = "1003"  # also in support-en: paused for the test, so the queue rings AGENT
QUEUE = "support-en"


@asynccontextmanager
async def paused_in_queue(console: Console, *extensions: str) -> AsyncIterator[None]:
    """Pause `extensions` in QUEUE through the supervisor API; unpause them afterwards (the
    site is shared by the tests that follow)."""
    try:
        for extension in extensions:
            status, body = await console.post(
                f"/api/supervisor/agents/{extension}/pause",
                {"paused": True, "reason": "meeting", "queue": QUEUE},
            )
            assert (status, body) == (200, {"ok": True}), (extension, body)
        yield
    finally:
        for extension in extensions:
            await console.post(
                f"/api/supervisor/agents/{extension}/pause", {"paused": False, "queue": QUEUE}
            )


async def test_the_supervisors_phone_rings_and_chanspy_listens_to_the_agents_channel(
    site: Site, ami: AmiWatch, number: str
) -> None:
    before = ami.mark()
    async with (
        Console(site, SUPERVISOR) as supervisor,
        Console(site, AGENT) as agent,
        paused_in_queue(supervisor, SUPERVISOR, OTHER),
    ):
        # The pauses reached app_queue: one QueueMemberPause each, in support-en only.
        for extension in (SUPERVISOR, OTHER):
            await ami.wait_for(
                matches(
                    "QueueMemberPause",
                    Queue=QUEUE,
                    Interface=site.device(extension),
                    Paused="1",
                    PausedReason="meeting",
                ),
                after=before,
            )
        await ami.wait_free_member(QUEUE, site.device(AGENT))
        call = await place_call(ami, number=number, name="Listened Caller")
        await call.listening("STREAM FILE")
        await call.press("2")  # English: support-en
        connect = await ami.wait_for(matches("AgentConnect", Channel=call.near), after=call.mark)
        agent_channel = connect.value("DestChannel")
        assert agent_channel.startswith(site.device(AGENT) + "-"), agent_channel
        await agent.wait_for("call.answered", call.linkedid)
        await ami.wait_for(matches("BridgeEnter", Channel=agent_channel), after=call.mark)

        mark = ami.mark()
        status, body = await supervisor.post(
            f"/api/supervisor/agents/{AGENT}/spy", {"mode": "listen"}
        )
        if status == 409 and body.get("code") == "no_call":
            # Centralita reads the same AMI stream as the test: let its tracker catch up with
            # the bridge once, then ask again.
            await asyncio.sleep(1.0)
            status, body = await supervisor.post(
                f"/api/supervisor/agents/{AGENT}/spy", {"mode": "listen"}
            )
        assert (status, body) == (200, {"ok": True, "channel": agent_channel}), body

        # Asterisk rang the supervisor's own phone (sipp answered it) into the spy context...
        answered = await ami.wait_for(
            matches("OriginateResponse", Response="Success", Context=SPY_CONTEXT), after=mark
        )
        spyer = answered.value("Channel")
        assert spyer.startswith(site.device(SUPERVISOR) + "-"), spyer
        assert answered.get("Exten") == "listen"
        await ami.wait_for(matches("Newstate", Channel=spyer, ChannelStateDesc="Up"), after=mark)
        target = await ami.wait_for(
            matches("VarSet", Channel=spyer, Variable=SPY_TARGET_VAR), after=mark
        )
        assert target.get("Value") == agent_channel
        chanspy = await ami.wait_for(
            matches("Newexten", Channel=spyer, Context=SPY_CONTEXT, Application="ChanSpy"),
            after=mark,
        )
        assert chanspy.get("AppData") == f"{agent_channel},qu"
        # ... and ChanSpy runs on the agent's channel.
        start = await ami.wait_for(matches("ChanSpyStart", SpyerChannel=spyer), after=mark)
        assert start.get("SpyeeChannel") == agent_channel

        # The listen-in is in the audit log: who listened to whom, on which channel.
        rows = await stored_rows(
            site,
            "SELECT actor, subject, changes FROM audit_log WHERE action = ? AND changes LIKE ?",
            "supervisor.listen",
            f"%{agent_channel}%",
        )
        assert [(actor, subject) for actor, subject, _ in rows] == [(SUPERVISOR, AGENT)]

        # The caller hangs up: the agent's channel goes, ChanSpy stops, the supervisor's
        # call ends.
        await call.hangup()
        await ami.wait_for(matches("ChanSpyStop", SpyeeChannel=agent_channel), after=mark)
        await ami.wait_for(matches("Hangup", Channel=spyer), after=mark)
        await ami.wait_for(matches("Hangup", Channel=agent_channel), after=mark)
        await agent.wait_for("call.ended", call.linkedid)

        # The spy call is no call: no screen pop on the supervisor's console, and no call
        # record (its CDR is disabled in the spy context; the agent's call has its own).
        await ami.wait_for(
            lambda m: (
                m.name == "Cdr"
                and m.get("UniqueID") == call.uniqueid
                and (m.get("DestinationChannel") or "").startswith(agent_channel)
            ),
            after=call.mark,
        )
        assert [m for m in supervisor.messages if m.get("type", "").startswith("call.")] == []
        assert ami.seen(matches("Cdr", Channel=spyer), after=mark) == []

        # Nothing to listen to any more.
        status, body = await supervisor.post(
            f"/api/supervisor/agents/{AGENT}/spy", {"mode": "listen"}
        )
        assert (status, body["code"]) == (409, "no_call"), body
