"""Customer-ID nodes on a real Asterisk, against a real aiohttp CRM (site.py).

The caller types an ID and confirms it; the node asks the CRM and routes on the answer:
`true` to the node's success, `false` to its failure, `X,Y` to the destination it codes
(1,3: queue id 3, support-fr). A CRM that is down (nothing listens) or slower than
[crm] timeout_s (it would answer `true`, too late) gives the failure destination.
"""

from __future__ import annotations

import pytest

from .amiwatch import AmiWatch, matches
from .people import place_call
from .site import CRM_DESTINATION, CRM_FALSE, CRM_SLOW, CRM_TRUE, Site
from .steps import Menu

pytestmark = pytest.mark.asterisk


@pytest.mark.parametrize(
    ("node", "customer", "context", "exten"),
    [
        pytest.param("vip-check", CRM_TRUE, "centralita-queue", "support-en", id="true"),
        pytest.param("vip-check", CRM_FALSE, "centralita-ivr", "main", id="false"),
        pytest.param(
            "crm-destination", CRM_DESTINATION, "centralita-queue", "support-fr", id="X,Y"
        ),
        pytest.param("crm-down", CRM_TRUE, "centralita-queue", "support-ar", id="crm-down"),
        pytest.param("vip-check", CRM_SLOW, "centralita-ivr", "main", id="crm-slow"),
    ],
)
async def test_the_crm_answer_routes_the_call(
    site: Site, ami: AmiWatch, number: str, node: str, customer: str, context: str, exten: str
) -> None:
    call = await place_call(ami, number=number, exten=node, context="centralita-customer-id")
    menu = Menu(call)
    await menu.answer("enter-customer-id", customer + "#")
    said = await menu.next("SAY DIGITS")
    assert customer in (said.get("Command") or "")
    await menu.answer("confirm", "1")
    # Where the route led: the first of the possible destinations the call reaches.
    routed = await ami.wait_for(
        lambda m: (
            matches("Newexten", Channel=call.near)(m)
            and m.get("Context")
            in ("centralita-queue", "centralita-ivr", "centralita-fallback", "centralita-time")
        ),
        after=call.mark,
    )
    assert (routed.get("Context"), routed.get("Extension")) == (context, exten)
    assert await call.variable("CENTRALITA_CUSTOMER_ID") == customer
    if node != "crm-down":
        assert customer in site.crm.asked  # the real CRM was asked
    if context == "centralita-queue":
        joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=call.mark)
        assert joined.get("Queue") == exten
    await call.hangup()
    await call.ended()
