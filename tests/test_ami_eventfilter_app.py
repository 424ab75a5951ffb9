"""The whole app (tracker, agent states, wallboard, pops, stored call and queue rows) ends in
the same state whether Asterisk sends the runtime user every event of a queue call or only
those the rendered manager.conf's eventfilter lets through (dialplan/names.py
DEVICE_STATE_EVENT: no device states of app_queue's Queue: devices or of Local channels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from test_web_support import AMI_SECRET, TRACES, add_static_queues, web_settings

from ami.eventfilter import EventFilter, manager_conf_filter
from ami.protocol import AmiMessage
from ami.testing import FakeAmiServer, load_trace, rewrite
from centralita.app import create_app
from centralita.cmd_render import render_files
from centralita.keys import AMI, BRIDGE, CDR_WRITER, QUEUE_LOG, STORE, WALLBOARD
from centralita.pop import Change
from centralita.settings import Settings
from dialplan.names import DEVICE_STATE_EVENT

QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
CALLER = "1795301086.0"  # the trace's caller channel (its Linkedid)
IN_QUEUE = "1795301086.1"  # the Local channel half that waited in the queue
# Moments of the wallboard and the queue rows: when each run read its events.
CLOCK_FIELDS = ("now", "since", "longest_wait_since", "joined_at", "answered_at", "ended_at")


def device_state(device: str, state: str) -> AmiMessage:
    return AmiMessage.build(
        [
            ("Event", DEVICE_STATE_EVENT),
            ("Privilege", "call,all"),
            ("Device", device),
            ("State", state),
        ]
    )


def events_for(settings: Settings, driver: str) -> list[AmiMessage]:
    """Every phone registering (as Asterisk reports it), then the recorded queue call at the
    config's queue and agent 1002, as chan_sip or chan_pjsip would name them."""
    site = settings.site
    phones = [device_state(site.device(a.extension), "NOT_INUSE") for a in site.agents]
    renames = {"support-sip": "support-en", "SIP/1001": site.device("1002")}
    call = rewrite(load_trace(QUEUE_TRACE), renames)
    assert {m.value("Device") for m in call if m.name == DEVICE_STATE_EVENT} >= {
        "Queue:support-en",
        "Local/300@queue-sip",
        f"{driver}/1002",
    }
    return phones + call


def folder(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_clock(v) for k, v in value.items() if k not in CLOCK_FIELDS}
    if isinstance(value, list):
        return [without_clock(v) for v in value]
    return value


async def run_app(tmp_path: Path, driver: str, *, filtered: bool) -> dict[str, Any]:
    """Feed the call to the real app through the fake AMI; return what the app made of it."""
    settings = web_settings(tmp_path, 5038, sip=driver == "SIP")  # to render only
    event_filter = EventFilter()
    if filtered:
        conf = render_files(settings)["manager.conf"]
        event_filter = manager_conf_filter(conf, settings.asterisks[0].ami_user)
        assert event_filter
    async with FakeAmiServer(
        username="centralita", secret=AMI_SECRET, event_filter=event_filter
    ) as fake:
        settings = web_settings(tmp_path, fake.port, sip=driver == "SIP")
        add_static_queues(fake, settings)
        app = create_app(settings)
        pops: list[tuple[str, ...]] = []
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            listener = app[AMI]
            await listener.wait_connected(10.0)
            bridge = app[BRIDGE]
            publish = bridge.on_change

            async def record(change: Change, arrived: float | None = None) -> int:
                pops.append((change.kind, change.agent, change.call_id, change.number, change.name))
                return await publish(change, arrived)

            bridge.on_change = record  # type: ignore[method-assign]
            before = listener.stats.events
            events = events_for(settings, driver)
            sent = await fake.push_events(events)
            await listener.drain(10.0)
            await app[CDR_WRITER].drain(10.0)
            await app[QUEUE_LOG].drain(10.0)
            for _ in range(3):
                await listener.drain(10.0)
            read = listener.stats.events - before
            model = app[WALLBOARD].model
            model.refresh()
            tracker = listener.tracker
            site = settings.site
            devices = [site.device(a.extension) for a in site.agents]
            store = app[STORE]
            calls, _ = await store.list_calls(limit=50)
            return {
                "sent": sent,
                "read": read,
                "state": {
                    "wallboard": without_clock(model.snapshot()),
                    "devices": {d: tracker.device_state(d) for d in devices},
                    "busy": {a.extension: tracker.agent_busy(a.extension) for a in site.agents},
                    "open": tracker.snapshot(),
                    "pops": pops,
                    "popped": bridge.popped("1002", CALLER),
                    "calls": calls,
                    "queue_rows": without_clock(await store.queue_calls_of(IN_QUEUE)),
                },
            }
        finally:
            await runner.cleanup()


@pytest.mark.parametrize("driver", ["PJSIP", "SIP"])
async def test_the_app_ends_the_same_with_the_rendered_filter(tmp_path: Path, driver: str) -> None:
    full = await run_app(folder(tmp_path, "full"), driver, filtered=False)
    kept = await run_app(folder(tmp_path, "kept"), driver, filtered=True)
    # The filter dropped something (the Queue: and Local/ device states, among others) ...
    assert kept["read"] < full["read"]
    assert kept["sent"] == kept["read"] and full["sent"] == full["read"]
    # ... that changed nothing the app shows, stores or pops.
    assert kept["state"] == full["state"]
    state = full["state"]
    assert state["devices"][f"{driver}/1002"] == "NOT_INUSE"
    assert [p[0] for p in state["pops"]] == ["ringing", "answered", "ended"]
    assert state["popped"] is True
    assert state["calls"] and state["queue_rows"]
    queue = next(q for q in state["wallboard"]["queues"] if q["name"] == "support-en")
    assert queue["answered_today"] == 1
