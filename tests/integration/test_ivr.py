"""The language menu on a real Asterisk: keys, a wrong key, silence."""

from __future__ import annotations

import pytest

from .amiwatch import AmiWatch, matches
from .people import place_call
from .site import Site

pytestmark = pytest.mark.asterisk


@pytest.mark.parametrize(
    ("key", "language", "queue"),
    [("1", "ar", "support-ar"), ("2", "en", "support-en"), ("3", "fr", "support-fr")],
)
async def test_each_language_key_leads_to_its_queue(
    site: Site, ami: AmiWatch, number: str, key: str, language: str, queue: str
) -> None:
    call = await place_call(ami, number=number)
    await call.listening("WAIT FOR DIGIT")
    await call.press(key)
    joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=call.mark)
    assert joined.get("Queue") == queue
    assert await call.variable("CHANNEL(language)") == language
    assert await call.variable("CENTRALITA_QUEUE") == queue
    await call.hangup()
    await call.ended()


async def test_a_wrong_key_then_a_right_one(site: Site, ami: AmiWatch, number: str) -> None:
    call = await place_call(ami, number=number)
    await call.listening("WAIT FOR DIGIT")
    await call.press("9")
    invalid = await ami.wait_for(
        lambda m: (
            m.name == "AGIExecStart"
            and m.get("Channel") == call.near
            and "invalid-option" in (m.get("Command") or "")
        ),
        after=call.mark,
    )
    await call.listening("WAIT FOR DIGIT", after=ami.events.index(invalid))
    await call.press("2")
    joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=call.mark)
    assert joined.get("Queue") == "support-en"
    assert await call.variable("CHANNEL(language)") == "en"
    await call.hangup()


async def test_silence_through_the_retries_takes_the_default_route(
    site: Site, ami: AmiWatch, number: str
) -> None:
    call = await place_call(ami, number=number)
    joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=call.mark)
    assert joined.get("Queue") == "support-en"  # [ivr] default
    menus = [
        m
        for m in ami.seen(matches("AGIExecStart", Channel=call.near), after=call.mark)
        if (m.get("Command") or "").startswith("WAIT FOR DIGIT")
    ]
    assert len(menus) == 2  # the first menu and [ivr] retries = 1
    await call.hangup()
