"""The AMI feed: Asterisk's events, through the call tracker, to pops, webhooks and records.

`ami_ctx` runs one AMI listener (with its own call tracker) per Asterisk server for the app's
lifetime (`[[asterisk]]`, centralita/asterisks.py). Each call change of any server goes to
the one pop bridge (screen pops, with the time its event arrived: `TimedTracker`) and to the
one webhook sender; each `Cdr` event becomes a call record, written by the one `CdrWriter`
on its own task. The app serves even when an Asterisk's AMI is unreachable: its listener
retries in the background and `/healthz` reports `"ami": {"connected": false, ...}` with each
server's link (`ami_health`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from ami.calls import CallChange
from ami.cdr import CallRecord
from ami.client import AmiError, AmiListener
from ami.protocol import AmiMessage
from centralita.asterisks import AsteriskLink, Asterisks, KnownCalls, SharedTaps
from centralita.batchwriter import BatchWriter
from centralita.keys import (
    AMI,
    AMI_TAPS,
    ASTERISKS,
    BRIDGE,
    CDR_WRITER,
    FLOW_CONTEXT,
    SETTINGS,
    STORE,
    WEBHOOKS,
)
from centralita.settings import AsteriskSettings, Settings
from centralita.store import StoreBackend, StoreInputError
from dialplan.model import Site
from dialplan.names import OUTBOUND_CONTEXT

log = logging.getLogger("centralita.feed")


class TimedTracker(KnownCalls):
    """A CallTracker that notes when the event behind each change arrived.

    The listener hands changes to `on_change` in the order `handle` made them, so a FIFO of
    (change, time) pairs gives each change its event's arrival time (for the pop-latency
    metric: from the event's arrival to the socket send).
    """

    # What "arrived" means: by default the moment the parsed event reaches the tracker; a
    # benchmark may point this at the moment its bytes were read.
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: collections.deque[tuple[CallChange, float]] = collections.deque(
            maxlen=100_000
        )

    def handle(self, msg: AmiMessage) -> list[CallChange]:
        """Apply one message and remember when its changes arrived."""
        arrived = self.clock()
        changes = super().handle(msg)
        for change in changes:
            self.arrivals.append((change, arrived))
        return changes

    def arrival(self, change: CallChange) -> float | None:
        """When the event of `change` arrived (None for changes made by a resync)."""
        if self.arrivals and self.arrivals[0][0] is change:
            return self.arrivals.popleft()[1]
        # Not made by handle() (a resync), or earlier changes were dropped: find it, if at
        # all, and forget whatever precedes it.
        if not any(c is change for c, _ in self.arrivals):
            return None
        while True:
            first, arrived = self.arrivals.popleft()
            if first is change:
                return arrived


class CdrWriter(BatchWriter[CallRecord]):
    """Writes call records to the store on its own task, in order (`BatchWriter`).

    The listener runs its callbacks one after another; a SQLite commit per `Cdr` awaited
    there would make every pop behind it wait (bench/pop_bench.py: 400 records/s put p99
    in seconds). Records queue here instead (bounded) and pops go straight through.
    """

    def __init__(self, store: StoreBackend, maxsize: int = 100_000) -> None:
        super().__init__(self._write_records, name="call record", log=log, maxsize=maxsize)
        self.store = store

    async def _write_records(self, records: list[CallRecord]) -> int:
        written = 0
        for cdr in records:
            try:
                await self.store.upsert_cdr(cdr)
                written += 1
            except StoreInputError as exc:
                log.warning("Cdr event for %s not stored: %s", cdr.uniqueid, exc)
            except Exception:
                log.exception("Cdr event for %s not stored", cdr.uniqueid)
        return written

    def start(self, task_name: str = "centralita-cdr-writer") -> None:
        """Start writing in the background."""
        super().start(task_name)


async def ami_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run one AMI listener per Asterisk server: changes -> pops and webhooks, Cdr -> call
    records, every server into the same bridge, sender, writer and taps."""
    settings = app[SETTINGS].current
    site = settings.site
    bridge = app[BRIDGE]
    sender = app[WEBHOOKS]
    taps = app[AMI_TAPS]
    prefix = "PJSIP" if site.sip_driver == "pjsip" else "SIP"

    writer = CdrWriter(app[STORE])
    app[CDR_WRITER] = writer
    writer.start()

    async def on_cdr(cdr: CallRecord) -> None:
        writer.put(cdr)

    servers = settings.asterisks
    shared = SharedTaps(taps, [s.name for s in servers]) if len(servers) > 1 else None

    def listener_for(ast: AsteriskSettings) -> AmiListener:
        # Each server's tracker follows its own channels; the agents it tracks are the
        # ones whose phones may live there.
        tracker = TimedTracker(
            tracked_agents(site, ast),
            (prefix,),
            outbound_context=OUTBOUND_CONTEXT,
        )

        async def on_change(change: CallChange) -> None:
            try:
                await bridge.on_change(change, tracker.arrival(change))
            finally:
                await sender.on_change(change)

        return AmiListener(
            ast.ami_host,
            ast.ami_port,
            ast.ami_user,
            ast.ami_secret or "",
            tracker=tracker,
            on_change=on_change,
            on_cdr=on_cdr,
            ping_s=ast.ami_ping_s,
            ping_timeout_s=ast.ami_timeout_s,
            action_timeout_s=ast.ami_timeout_s,
            connect_timeout_s=ast.ami_timeout_s,
            # Every other reader of the stream (the agents' queue states, the wallboard...):
            # each sees every event, its lists (e.g. QueueStatus) are asked for after every
            # (re)connect, and it is told of the link's ups and downs (centralita/amitaps.py;
            # with several servers through SharedTaps, centralita/asterisks.py).
            on_event=taps.on_event,
            on_link=taps.on_link if shared is None else shared.on_link(ast.name),
            resync=taps.resyncs if shared is None else shared.resync(ast.name),
        )

    links = [AsteriskLink(ast, listener_for(ast)) for ast in servers]
    if shared is not None:
        for link in links:
            shared.attach(link.name, link.listener)
    asterisks = Asterisks(links, site.device)
    app[ASTERISKS] = asterisks
    app[AMI] = asterisks.first.listener
    flow_context = app.get(FLOW_CONTEXT)
    if flow_context is not None:
        flow_context.asterisks = asterisks  # survey call files: the carrying server's spool

    async def relist(link: AsteriskLink) -> None:
        try:
            await link.listener.relist()
        except AmiError as exc:  # the link dropped meanwhile: its next login asks anyway
            log.info("AMI %s: lists not asked again after the reload: %s", link.name, exc)

    def take_reload(new: Settings) -> None:
        for link in links:
            link.listener.tracker.set_agents(tracked_agents(new.site, link.settings))
            # New members' queue states, and a removed queue's members gone: QueueStatus again.
            task = asyncio.create_task(relist(link), name=f"ami-relist-{link.name}")
            relists.add(task)
            task.add_done_callback(relists.discard)

    relists: set[asyncio.Task[None]] = set()
    app[SETTINGS].on_reload("the AMI trackers", take_reload)
    for link in links:
        await link.listener.start()
    try:
        yield
    finally:
        for task in list(relists):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for link in links:
            await link.listener.stop()
        if shared is not None:
            await shared.stop()
        await writer.stop()


def tracked_agents(site: Site, server: AsteriskSettings) -> list[str]:
    """The agents whose calls a server's tracker follows: those whose phones may live there."""
    return [a.extension for a in site.agents if server.hosts(a.extension)]


def ami_health(app: web.Application) -> dict[str, object]:
    """The AMI part of /healthz: connected or away (and why), for each server."""
    asterisks = app.get(ASTERISKS)
    if asterisks is None:
        return {"ami": {"connected": False, "error": "not started"}}
    return {"ami": asterisks.health()}
