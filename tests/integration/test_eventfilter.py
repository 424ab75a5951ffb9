"""The rendered manager.conf's eventfilter on a real Asterisk: the runtime user gets the events
the app reads (the tracker's, the queue's, Cdr, the CENTRALITA_* VarSets, the phones' device
states) and none of the rest (nor app_queue's Queue: or the Local channels' device states),
while the test's own user (no filter) sees everything of the same queue call."""

from __future__ import annotations

import pytest

from dialplan.names import AMI_EVENTS, DEVICE_STATE_EVENT, VARIABLE_PREFIX

from .amiwatch import AmiWatch, matches
from .people import place_call
from .site import Site

pytestmark = pytest.mark.asterisk


async def test_the_runtime_user_gets_only_the_events_the_app_reads(
    site: Site, ami: AmiWatch, number: str
) -> None:
    # A second session of the runtime user besides Centralita's own (site.py's secret).
    async with AmiWatch("127.0.0.1", site.ami_port, "centralita", "centralita-ami-secret") as app:
        # Login's own FullyBooted is written straight to the session after the response, past
        # the filters (main/manager.c action_login): counted before the mark, not in it.
        await app.wait_for(matches("FullyBooted"))
        app_mark = app.mark()
        call = await place_call(ami, number=number, name="Filtered Caller")
        await call.listening("STREAM FILE")
        await call.press("2")  # English: the queue
        await ami.wait_for(matches("AgentConnect", Channel=call.near), after=call.mark)
        await call.hangup()
        await call.ended()
        unfiltered = [m for m in ami.events[call.mark :] if m.kind == "event"]
        # Each event the app reads that Asterisk sent the test's user reaches the runtime
        # user too (waited for: the two sessions are written one after the other).
        for name in sorted({m.name for m in unfiltered if m.name in AMI_EVENTS}):
            await app.wait_for(matches(name), after=app_mark)
        await app.wait_for(
            lambda m: m.name == "VarSet" and m.value("Variable").startswith(VARIABLE_PREFIX),
            after=app_mark,
        )
        filtered = [m for m in app.events[app_mark:] if m.kind == "event"]

    seen_all = {m.name for m in unfiltered}
    seen_app = {m.name for m in filtered}
    # The call went through the dialplan and the queue: what the filter must drop was sent.
    assert {"Newexten", "VarSet"} <= seen_all
    assert any(not m.value("Variable").startswith(VARIABLE_PREFIX) for m in unfiltered)
    # The runtime user: the events the app reads, none other ...
    assert seen_app - {"VarSet"} <= AMI_EVENTS, seen_app - AMI_EVENTS
    assert "Newexten" not in seen_app
    varsets = [m.value("Variable") for m in filtered if m.name == "VarSet"]
    assert varsets and all(v.startswith(VARIABLE_PREFIX) for v in varsets), varsets
    assert {m.name for m in unfiltered if m.name in AMI_EVENTS} <= seen_app
    assert len(filtered) < len(unfiltered)
    # Device states: the phones' (header(Device) with starts_with), not the others'.
    phone = site.device("")
    devices_all = {m.value("Device") for m in unfiltered if m.name == DEVICE_STATE_EVENT}
    devices_app = {m.value("Device") for m in filtered if m.name == DEVICE_STATE_EVENT}
    assert any(not d.startswith(phone) for d in devices_all), devices_all
    assert devices_app and all(d.startswith(phone) for d in devices_app), devices_app
    assert {d for d in devices_all if d.startswith(phone)} <= devices_app
