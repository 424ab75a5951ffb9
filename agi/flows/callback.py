"""Flow `callback`: nobody answered in the queue, so the caller leaves a number to call back.

The dialplan runs it after Queue() ends with QUEUESTATUS TIMEOUT, JOINEMPTY, LEAVEEMPTY,
JOINUNAVAIL, LEAVEUNAVAIL or FULL (arg 1: the queue). The caller enters their number (`#`
ends it), hears it back and confirms with 1 or re-enters with 2; then the same for an
alternative number, which `#` alone skips. The request is stored as soon as the main number
is confirmed, given its alternative once that is confirmed, then appended to callbacks.csv,
and only then does the caller hear "we will call you back".

A caller who hangs up after confirming the main number still gets their callback, and so does
one whose instance dies while the alternative is asked (SIGKILL: no code of the flow runs
then, so the request must already be in the store; docs/cluster.md); nothing unconfirmed is
ever kept.
"""

from __future__ import annotations

from agi.flows.common import (
    PROMPT_CONFIRM_REENTER,
    PROMPT_GOODBYE,
    PROMPT_INVALID,
    PROMPT_YOU_ENTERED,
    read_confirmed_number,
    route,
)
from agi.flows.context import CallbackEntry, FlowContext
from agi.router import flow
from agi.session import AgiSession, CallerHangup

PROMPT_BUSY = "centralita/all-agents-busy"
PROMPT_ENTER = "centralita/enter-phone-number"
PROMPT_ALTERNATIVE = "centralita/enter-alternative"
PROMPT_THANKS = "centralita/callback-thanks"
PROMPTS = (
    PROMPT_BUSY,
    PROMPT_ENTER,
    PROMPT_ALTERNATIVE,
    PROMPT_THANKS,
    PROMPT_INVALID,
    PROMPT_YOU_ENTERED,
    PROMPT_CONFIRM_REENTER,
    PROMPT_GOODBYE,
)


@flow("callback")
async def callback_flow(session: AgiSession, context: FlowContext) -> None:
    """Take a callback request with a confirmed number and an optional alternative."""
    settings = context.site.callback
    request = session.request
    queue = request.arg(1) or request.query_value("queue", "") or ""
    await session.answer()
    await session.stream_file(PROMPT_BUSY)
    main = await read_confirmed_number(
        session,
        PROMPT_ENTER,
        min_digits=settings.min_digits,
        max_digits=settings.max_digits,
        timeout_s=settings.timeout_s,
        tries=settings.retries,
    )
    if main is None:
        await session.stream_file(PROMPT_GOODBYE)
        await route(session, "hangup")
        return

    def entry(alternative: str) -> CallbackEntry:
        return CallbackEntry(
            callerid=request.callerid,
            language=request.language,
            queue=queue,
            number=main.digits,
            alternative=alternative,
            uniqueid=request.uniqueid,
        )

    held = await context.hold_callback(entry(""))
    try:
        alternative = await read_confirmed_number(
            session,
            PROMPT_ALTERNATIVE,
            min_digits=settings.min_digits,
            max_digits=settings.max_digits,
            timeout_s=settings.timeout_s,
            tries=settings.retries,
            allow_skip=True,
        )
    except CallerHangup:
        # The main number was confirmed: that request stands (issue 3).
        await context.save_callback(entry(""), held)
        session.log.info("caller hung up after confirming %s; callback kept", main.digits)
        raise
    await context.save_callback(entry(alternative.digits if alternative else ""), held)
    await session.stream_file(PROMPT_THANKS)
    await route(session, "hangup")
