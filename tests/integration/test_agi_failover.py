"""Several FastAGI instances on a real Asterisk (`[server] agi_instances`, docs/cluster.md).

The site's Centralita is rendered with instances whose first ones are down (a closed port:
Asterisk's connect is refused, res_agi.c launch_netscript, AGISTATUS=FAILURE), and the
dialplan reloaded. The caller must still reach a flow on the live instance; with every
instance down, the fallback. The site's own dialplan is put back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import tomlkit

from ami.protocol import AmiMessage

from .amiwatch import AmiWatch, matches
from .people import place_call
from .site import Site, free_tcp_port

pytestmark = pytest.mark.asterisk


@contextlib.contextmanager
def instances(site: Site, ports: list[int]) -> Iterator[None]:
    """The site rendered with `agi_instances` on these loopback ports, then as it was."""
    original = site.config.read_text(encoding="utf-8")
    doc = tomlkit.parse(original)
    server: Any = doc["server"]
    server["agi_instances"] = [f"127.0.0.1:{port}" for port in ports]
    site.config.write_text(tomlkit.dumps(doc), encoding="utf-8")
    try:
        site.render()
        site.asterisk.cli("dialplan reload")
        loaded = site.asterisk.cli("dialplan show main@centralita-ivr")
        assert [f"agi://127.0.0.1:{port}/language" in loaded for port in ports] == [True] * len(
            ports
        ), loaded
        yield
    finally:
        site.config.write_text(original, encoding="utf-8")
        site.render()
        site.asterisk.cli("dialplan reload")


def agi_attempts(ami: AmiWatch, channel: str, after: int) -> list[str]:
    """The AGI() applications the channel ran, in order (their AppData's URL)."""
    found: list[AmiMessage] = ami.seen(
        matches("Newexten", Channel=channel, Application="AGI"), after=after
    )
    return [(m.get("AppData") or "").split("/")[2] for m in found]


async def test_the_first_instance_down_the_caller_reaches_a_flow_on_the_next(
    site: Site, ami: AmiWatch, number: str
) -> None:
    closed = free_tcp_port()  # nothing listens there
    with instances(site, [closed, site.agi_port]):
        call = await place_call(ami, number=number)
        await call.listening("WAIT FOR DIGIT")  # the language flow, on the live instance
        await call.press("3")
        joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=call.mark)
        assert joined.get("Queue") == "support-fr"
        assert agi_attempts(ami, call.near, call.mark) == [
            f"127.0.0.1:{closed}",
            f"127.0.0.1:{site.agi_port}",
        ]
        fallback = matches("Newexten", Channel=call.near, Context="centralita-fallback")
        assert ami.seen(fallback, after=call.mark) == []
        await call.hangup()
        await call.ended()


async def test_every_instance_down_the_caller_reaches_the_fallback(
    site: Site, ami: AmiWatch, number: str
) -> None:
    first, second = free_tcp_port(), free_tcp_port()
    with instances(site, [first, second]):
        call = await place_call(ami, number=number)
        fallback = await call.reached("centralita-fallback", "s")
        assert fallback.value("AppData").startswith("Centralita fallback: AGISTATUS=FAILURE")
        assert agi_attempts(ami, call.near, call.mark) == [
            f"127.0.0.1:{first}",
            f"127.0.0.1:{second}",
        ]
        # CENTRALITA_FALLBACK is queue:support-en (the demo's [server] fallback).
        joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=call.mark)
        assert joined.get("Queue") == "support-en"
        await call.hangup()
        await call.ended()
