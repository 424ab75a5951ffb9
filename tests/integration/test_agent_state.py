"""The agent's state on a real Asterisk: pause and queue login through the console API.

POST /api/me/pause sends QueuePause without a Queue, so app_queue pauses the agent's device in
every queue it is in and sends one QueueMemberPause per queue (set_member_paused); the console
shows the pause only when those events come back as `agent.state`. An agent's own queues are
`member =>` lines of queues.conf: app_queue refuses to remove them ("Member not dynamic"),
while a queue of `[console] login_queues` is joined and left as a dynamic member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from .amiwatch import AmiWatch, matches
from .people import Console
from .site import Site

pytestmark = pytest.mark.asterisk

AGENT = "1002"  # a static member of support-en only (site.py)


async def state_until(
    console: Console, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
) -> dict[str, Any]:
    """The first `agent.state` the console received for which `predicate` holds."""

    async def scan() -> dict[str, Any]:
        while True:
            for message in console.messages:
                if message.get("type") == "agent.state" and predicate(message):
                    return message
            await asyncio.sleep(0.05)

    try:
        return await asyncio.wait_for(scan(), timeout)
    except TimeoutError:
        raise AssertionError(f"no such agent.state; got {console.messages}") from None


def queue(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(q for q in state["queues"] if q["queue"] == name)


async def test_pause_and_queue_login_go_through_asterisk_and_come_back(
    site: Site, ami: AmiWatch
) -> None:
    device = site.device(AGENT)
    async with Console(site, AGENT) as console:
        first = await state_until(console, lambda s: True)
        assert queue(first, "support-en")["member"] and not queue(first, "support-en")["dynamic"]
        assert queue(first, "support-fr")["status"] == "out"
        link = next(m for m in console.messages if m.get("type") == "link.asterisk")
        assert link["connected"] is True

        mark = ami.mark()
        status, body = await console.post("/api/me/pause", {"paused": True, "reason": "lunch"})
        assert (status, body) == (200, {"ok": True})
        paused = await ami.wait_for(
            matches("QueueMemberPause", Queue="support-en", Interface=device), after=mark
        )
        assert (paused.value("Paused"), paused.value("PausedReason")) == ("1", "lunch")
        assert paused.value("Membership") == "static"
        state = await state_until(console, lambda s: s["paused"])
        assert state["reason"] == "lunch"

        mark = ami.mark()
        status, _ = await console.post("/api/me/pause", {"paused": False})
        assert status == 200
        await ami.wait_for(
            matches("QueueMemberPause", Queue="support-en", Interface=device, Paused="0"),
            after=mark,
        )
        state = await state_until(console, lambda s: not s["paused"])
        assert queue(state, "support-en")["reason"] == ""

        # Its own queue: Asterisk refuses, the agent stays in.
        status, body = await console.post("/api/me/queues/support-en", {"member": False})
        assert (status, body["code"]) == (409, "static_member"), body

        mark = ami.mark()
        status, body = await console.post("/api/me/queues/support-fr", {"member": True})
        assert status == 200, body
        try:
            added = await ami.wait_for(
                matches("QueueMemberAdded", Queue="support-fr", Interface=device), after=mark
            )
            assert added.value("Membership") == "dynamic"
            assert added.value("MemberName") == "John Smith"
            state = await state_until(console, lambda s: queue(s, "support-fr")["member"])
            assert queue(state, "support-fr")["dynamic"] is True
            status, body = await console.post("/api/me/queues/support-fr", {"member": True})
            assert (status, body["code"]) == (409, "already_member"), body
        finally:
            mark = ami.mark()
            status, body = await console.post("/api/me/queues/support-fr", {"member": False})
            assert status == 200, body
        await ami.wait_for(
            matches("QueueMemberRemoved", Queue="support-fr", Interface=device), after=mark
        )
        state = await state_until(console, lambda s: not queue(s, "support-fr")["member"])
        assert queue(state, "support-fr")["status"] == "out"
