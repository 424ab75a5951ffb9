"""Time conditions on a real Asterisk: a condition that excludes the present routes outside.

The site's `closed` condition is open all week but lists today (in its time zone, with the
days either side so that midnight during a run changes nothing) as a holiday, so Asterisk's
own clock must send the call to its `outside` destination, voicemail:600.
"""

from __future__ import annotations

import pytest
import tomlkit

from .amiwatch import AmiWatch, matches
from .people import place_call
from .site import Site

pytestmark = pytest.mark.asterisk


def holidays(site: Site, condition: str) -> list[str]:
    doc = tomlkit.parse(site.config.read_text(encoding="utf-8"))
    for tc in doc["time_conditions"]:
        if tc["name"] == condition:
            return [str(day) for day in tc["holidays"]]
    raise AssertionError(f"no time condition {condition} in the site config")


async def test_a_condition_that_excludes_the_present_routes_outside(
    site: Site, ami: AmiWatch, number: str
) -> None:
    call = await place_call(ami, number=number, exten="closed", context="centralita-time")
    voicemail = await ami.wait_for(
        matches("Newexten", Channel=call.near, Application="VoiceMail"), after=call.mark
    )
    assert voicemail.get("Context") == "centralita-voicemail"
    assert (voicemail.get("AppData") or "").startswith("600@")
    # Asterisk's own date (STRFTIME in the condition's time zone) matched a holiday...
    assert await call.variable("CENTRALITA_TODAY") in holidays(site, "closed")
    # ...and the call never went the `inside` way (queue:support-en).
    queued = matches("Newexten", Channel=call.near, Context="centralita-queue")
    assert not ami.seen(queued, after=call.mark)
    await call.hangup()
    await call.ended()
