"""Faults on a real Asterisk: Centralita away, Centralita restarting, Asterisk restarting."""

from __future__ import annotations

import asyncio

import pytest

from .amiwatch import AmiWatch, matches
from .people import Console, place_call
from .site import AMI_TEST_SECRET, AMI_TEST_USER, PHONE_AGENTS, Site

pytestmark = pytest.mark.asterisk


async def test_with_centralita_stopped_a_caller_reaches_the_fallback(
    site: Site, ami: AmiWatch, number: str
) -> None:
    site.stop_centralita()
    try:
        call = await place_call(ami, number=number)
        fallback = await call.reached("centralita-fallback", "s")
        assert fallback.value("AppData").startswith("Centralita fallback: AGISTATUS=FAILURE")
        # CENTRALITA_FALLBACK is queue:support-en (the demo's [server] fallback).
        joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=call.mark)
        assert joined.get("Queue") == "support-en"
        await call.hangup()
    finally:
        site.start_centralita()


async def test_a_centralita_restart_while_callers_wait_drops_no_call(
    site: Site, ami: AmiWatch, number: str
) -> None:
    # support-fr has no phone that answers: the caller waits there 6 s, then the callback
    # flow (FastAGI again) takes over. Centralita restarts while the caller waits.
    call = await place_call(ami, number=number)
    await call.listening("WAIT FOR DIGIT")
    await call.press("3")
    await ami.wait_for(matches("QueueCallerJoin", Channel=call.near, Queue="support-fr"))
    site.stop_centralita()
    site.start_centralita()
    callback = await ami.wait_for(
        lambda m: (
            m.name == "AGIExecStart"
            and m.get("Channel") == call.near
            and (m.get("Command") or "").startswith("GET DATA")
        ),
        after=call.mark,
    )
    assert callback.get("Context") == "centralita-callback"
    assert ami.seen(matches("Hangup", Channel=call.near), after=call.mark) == []
    await call.hangup()


async def test_after_an_asterisk_restart_the_ami_reconnects_and_pops_arrive(
    site: Site, ami: AmiWatch, number: str
) -> None:
    site.asterisk.stop()
    for _ in range(300):  # readiness poll: Centralita notices that AMI is gone
        health = site.health()
        if health is not None and not health["ami"]["connected"]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"Centralita still believes AMI is up: {site.health()}")
    site.asterisk.start()
    for phone in site.phones.values():
        phone.stop()
    site.start_phones()
    site.wait_phones_reachable()
    for _ in range(600):  # readiness poll: the listener's backoff reconnects it
        health = site.health()
        if health is not None and health["ami"]["connected"]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"AMI never reconnected:\n{site.centralita_log()}")

    async with AmiWatch("127.0.0.1", site.ami_port, AMI_TEST_USER, AMI_TEST_SECRET) as fresh:
        consoles = [Console(site, extension) for extension in PHONE_AGENTS]
        for console in consoles:
            await console.__aenter__()
        try:
            call = await place_call(fresh, number=number)
            await call.listening("WAIT FOR DIGIT")
            await call.press("2")
            connect = await fresh.wait_for(
                matches("AgentConnect", Channel=call.near), after=call.mark
            )
            agent = connect.value("Interface").split("/", 1)[1]
            answering = next(c for c in consoles if c.extension == agent)
            pop = await answering.wait_for("call.answered", call.linkedid)
            assert pop["number"] == number
            assert pop["agent"] == agent
            await call.hangup()
        finally:
            for console in consoles:
                await console.__aexit__(None, None, None)
