"""Flow `language`: welcome, the language menu, and the queue of the chosen language.

Each option is spoken in its own language (`<code>/centralita/menu`, found by Asterisk under
`sounds/<code>/centralita/`). A valid key sets CHANNEL(language), CENTRALITA_QUEUE and
CENTRALITA_ROUTE=queue:NAME and ends: the dialplan plays the recording notice, starts
MixMonitor and runs Queue. A wrong key is told so and the menu repeats; silence after the
retries goes to the configured default route.
"""

from __future__ import annotations

from agi.flows.common import PROMPT_INVALID, route
from agi.flows.context import FlowContext
from agi.router import flow
from agi.session import AgiSession
from dialplan.names import QUEUE_VAR

PROMPT_WELCOME = "centralita/welcome"
# Every key interrupts the welcome and the menu: Asterisk discards a key that is not an escape
# digit of the playing prompt (res_agi.c STREAM FILE), and a caller who pressed a wrong key
# should hear "invalid option", not silence.
ANY_KEY = "0123456789*#"
PROMPTS = (PROMPT_WELCOME, PROMPT_INVALID, "centralita/menu")


@flow("language")
async def language_flow(session: AgiSession, context: FlowContext) -> None:
    """Pick a language, then route to that language's queue."""
    site = context.site
    ivr = site.ivr
    by_digit = {lang.digit: lang for lang in site.languages}
    digits = ANY_KEY
    await session.answer()
    key = (await session.stream_file(ivr.welcome, digits)).digit
    for attempt in range(ivr.retries + 1):
        if key is None:
            for lang in site.languages:
                key = (await session.stream_file(lang.prompt, digits)).digit
                if key is not None:
                    break
        if key is None:
            key = await session.wait_for_digit(ivr.timeout_s * 1000)
        if key is None:
            continue  # silence: say the menu again
        chosen = by_digit.get(key)
        if chosen is not None:
            await session.set_variable("CHANNEL(language)", chosen.code)
            await session.set_variable(QUEUE_VAR, chosen.queue)
            await route(session, f"queue:{chosen.queue}")
            return
        session.log.info("invalid menu key %r (attempt %d)", key, attempt + 1)
        key = (await session.stream_file(ivr.invalid, digits)).digit
    session.log.info("no language chosen; default route %s", ivr.default)
    await route(session, str(ivr.default))
