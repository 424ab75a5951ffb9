"""The demo's pretend Asterisk: calls to a demo agent, played on a fake AMI port.

`centralita demo` serves the built-in demo with `ami.testing.FakeAmiServer` as its Asterisk.
`CallPlayer` replays a call recorded from a real Asterisk (queue-call.ami.txt, a copy of
tests/fixtures/asterisk-traces/ami-queue-sip-call.txt) over and over: a caller joins a queue,
the agent's phone rings, the agent answers, both hang up, and a call record follows. Each
replay gets fresh Uniqueids and Linkedid, today's date, the next caller of `CALLERS`, the demo's
queue and channel driver (`PJSIP/1001` for pjsip), so the console shows a new call every time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from ami.protocol import AmiMessage, parse_trace
from ami.testing import FakeAmiServer, rewrite

log = logging.getLogger("centralita.demo")

TRACE = "queue-call.ami.txt"
# What the recording holds, to be replaced in each replay.
RECORDED_AGENT = "SIP/1001"
RECORDED_QUEUE = "support-sip"
RECORDED_NUMBER = "+34915550123"
RECORDED_NAME = "Bob Customer"
RECORDED_ID_PREFIX = "1795301086."
RECORDED_BRIDGE = "75b0f6ff-6d16-4c01-8628-3e14e219eef9"
RECORDED_MINUTE = "2026-11-21 22:44"
# The recorder's own login and the Originate that placed the test caller: not the call's.
SKIPPED = frozenset({"FullyBooted", "SuccessfulAuth", "OriginateResponse"})


@dataclass(frozen=True)
class DemoCaller:
    number: str
    name: str  # the caller ID name the network sends
    contact: str | None  # a contact of that number made in the demo's store, or unknown
    company: str = ""


# A known customer, a known customer calling from abroad, and a stranger.
CALLERS = (
    DemoCaller("+34915550123", "Bob Customer", "Bob Customer", "ACME Iberia"),
    DemoCaller("+33612345678", "DUBOIS CLAIRE", "Claire Dubois", "Boulangerie Dubois"),
    DemoCaller("+447700900123", "Alex", None),
)


def recorded_call() -> list[AmiMessage]:
    """The recorded call's events (the recorder's own traffic left out)."""
    data = resources.files("centralita.demo").joinpath(TRACE).read_bytes()
    return [m for m in parse_trace(data) if m.kind == "event" and m.name not in SKIPPED]


class CallPlayer:
    """Plays a call to `agent` on `fake` every `every_s` seconds, in three acts."""

    def __init__(
        self,
        fake: FakeAmiServer,
        *,
        agent: str,
        queue: str,
        driver: str,
        every_s: float = 12.0,
        ring_s: float = 3.0,
        talk_s: float = 5.0,
        callers: Sequence[DemoCaller] = CALLERS,
    ) -> None:
        self.fake = fake
        self.agent = agent
        self.queue = queue
        self.channel = f"{'PJSIP' if driver == 'pjsip' else 'SIP'}/{agent}"
        self.every_s = every_s
        self.ring_s = ring_s
        self.talk_s = talk_s
        self.callers = callers
        self.events = recorded_call()
        self.played = 0
        self.stopping = False
        self._ids = itertools.count(int(time.time()))

    def call_events(self, caller: DemoCaller) -> list[AmiMessage]:
        """The recorded call as a new one: ids, date, caller, queue and agent replaced."""
        return rewrite(
            self.events,
            {
                RECORDED_ID_PREFIX: f"{next(self._ids)}.",
                RECORDED_BRIDGE: str(uuid.uuid4()),
                RECORDED_MINUTE: datetime.now().strftime("%Y-%m-%d %H:%M"),
                RECORDED_AGENT: self.channel,
                RECORDED_QUEUE: self.queue,
                RECORDED_NUMBER: caller.number,
                RECORDED_NAME: caller.name,
            },
        )

    async def play_one(self, caller: DemoCaller) -> None:
        """Ringing, a pause; answered, a pause; ended (with its call record)."""
        events = self.call_events(caller)
        ringing = 1 + next(i for i, m in enumerate(events) if m.name == "AgentCalled")
        answered = 1 + next(i for i, m in enumerate(events) if m.name == "AgentConnect")
        await self.fake.push_events(events[:ringing])
        await asyncio.sleep(self.ring_s)
        await self.fake.push_events(events[ringing:answered])
        await asyncio.sleep(self.talk_s)
        await self.fake.push_events(events[answered:])
        self.played += 1

    async def run(self) -> None:
        """Play calls until cancelled (or `stopping`), the first one at once."""
        for caller in itertools.cycle(self.callers):
            if self.stopping:
                return
            started = time.monotonic()
            log.info("demo: a call from %s to agent %s", caller.number, self.agent)
            await self.play_one(caller)
            await asyncio.sleep(max(1.0, self.every_s - (time.monotonic() - started)))
