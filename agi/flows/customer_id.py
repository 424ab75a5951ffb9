"""Flow `customer-id` (arg 1: the node name): route on a customer ID the caller types.

The caller enters the ID (`#` ends it), hears "the number is" and the digits, and presses 1
to confirm. An empty, too short, too long or unconfirmed entry is asked again; after the
node's `retries` tries the call takes the node's failure destination. The confirmed ID is set
on the channel (CENTRALITA_CUSTOMER_ID) before anything else, so the screen pop shows it.

Modes:
- `none`: a confirmed ID is success.
- `crm-bool`: the CRM is asked (centralita.crm); `"true"` is success, anything else failure.
- `crm-destination`: `"X,Y"` is resolved by `dialplan.destinations` (1 queue, 2 time
  condition, 3 IVR, 5 hang up, 9 another node); `"true"`/`"false"` as in crm-bool; a
  malformed or unknown code is failure.
A CRM error (timeout, bad status, bad body, circuit open) is failure too.

A caller who hangs up while the CRM is being asked costs nothing: Asterisk's `HANGUP` line
arrives meanwhile, so the next command (setting the route) raises CallerHangup and the
answer is dropped. A node name the config does not define is a dialplan/config mismatch:
the flow raises, and the server logs it and routes the call to the server's fallback.
"""

from __future__ import annotations

from prometheus_client import Counter

from agi.flows.common import PROMPT_INVALID, route
from agi.flows.context import FlowContext
from agi.protocol import AgiError
from agi.router import flow
from agi.session import AgiSession
from dialplan.destinations import resolve_crm_destination
from dialplan.model import CustomerIdNode, Destination
from dialplan.names import CUSTOMER_ID_VAR

PROMPT_ID_IS = "centralita/customer-id-is"
PROMPT_CONFIRM = "centralita/confirm"
PROMPTS = ("centralita/enter-customer-id", PROMPT_ID_IS, PROMPT_CONFIRM, PROMPT_INVALID)

OUTCOMES = Counter(
    "centralita_customer_id_total",
    "Customer-ID node outcomes (success, failure, and why a failure happened)",
    ["node", "outcome"],
)


class UnknownNodeError(AgiError, LookupError):
    """The dialplan names a customer-ID node the config does not define."""


@flow("customer-id")
async def customer_id_flow(session: AgiSession, context: FlowContext) -> None:
    """Read and confirm a customer ID, ask the CRM if the node says so, then route."""
    name = session.request.arg(1) or session.request.query_value("node", "") or ""
    node = context.site.node(name)
    if node is None:
        session.log.error("customer-id: no node named %r in the config", name)
        raise UnknownNodeError(f"no customer-id node named {name!r}")
    await session.answer()
    customer_id = await read_customer_id(session, node)
    if customer_id is None:
        session.log.info("customer-id %s: no confirmed ID after %d tries", node.name, node.retries)
        await _finish(session, node, node.failure, "no-id")
        return
    await session.set_variable(CUSTOMER_ID_VAR, customer_id)
    if node.mode == "none":
        await _finish(session, node, node.success, "success")
        return
    reply = await context.ask_crm(node, customer_id)
    if reply.destination is None:
        session.log.warning("customer-id %s: CRM unusable: %s", node.name, reply.error)
        await _finish(session, node, node.failure, "crm-error")
        return
    answer = reply.destination
    if answer == "true":
        await _finish(session, node, node.success, "success")
    elif answer == "false" or node.mode == "crm-bool":
        await _finish(session, node, node.failure, "failure")
    else:
        target = resolve_crm_destination(context.site, answer)
        if target is None:
            session.log.warning(
                "customer-id %s: CRM destination %r is malformed or names nothing defined",
                node.name,
                answer,
            )
            await _finish(session, node, node.failure, "bad-destination")
        else:
            await _finish(session, node, target, "destination")


async def read_customer_id(session: AgiSession, node: CustomerIdNode) -> str | None:
    """The confirmed ID, or None when the node's tries ran out.

    One digit more than `max_digits` is read, so an over-long ID is refused rather than cut
    (GET DATA stops at its max digits, docs/asterisk-protocol.md#get-data).
    """
    timeout_ms = node.timeout_s * 1000
    for attempt in range(1, node.retries + 1):
        digits = (await session.get_data(node.prompt, timeout_ms, node.max_digits + 1)).digits
        if not (digits.isascii() and digits.isdigit()) or not (
            node.min_digits <= len(digits) <= node.max_digits
        ):
            session.log.info("customer-id %s: entry of %d keys refused", node.name, len(digits))
            if attempt < node.retries:
                await session.stream_file(PROMPT_INVALID)
            continue
        await session.stream_file(PROMPT_ID_IS)
        await session.say_digits(digits)
        answer = await session.get_data(PROMPT_CONFIRM, timeout_ms, 1)
        if answer.digits == "1":
            return digits
        session.log.info("customer-id %s: ID not confirmed (%r)", node.name, answer.digits)
    return None


async def _finish(
    session: AgiSession, node: CustomerIdNode, destination: Destination, outcome: str
) -> None:
    OUTCOMES.labels(node.name, outcome).inc()
    await route(session, str(destination))
