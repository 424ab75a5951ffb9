"""Small pieces the flows share: reading a number with read-back and confirmation, routing."""

from __future__ import annotations

from dataclasses import dataclass

from agi.session import AgiSession
from dialplan.names import ROUTE_VAR

PROMPT_INVALID = "centralita/invalid-option"
PROMPT_YOU_ENTERED = "centralita/you-entered"
PROMPT_CONFIRM_REENTER = "centralita/confirm-reenter"
PROMPT_GOODBYE = "centralita/goodbye"


async def route(session: AgiSession, destination: str) -> None:
    """Tell the dialplan where the call goes next: the flow decides, the dialplan acts
    (principle 1 in docs/design.md#principles)."""
    await session.set_variable(ROUTE_VAR, destination)


@dataclass(frozen=True)
class NumberEntry:
    digits: str
    skipped: bool = False  # `#` alone, where skipping is allowed


async def read_confirmed_number(
    session: AgiSession,
    prompt: str,
    *,
    min_digits: int,
    max_digits: int,
    timeout_s: int,
    tries: int,
    allow_skip: bool = False,
) -> NumberEntry | None:
    """Ask for a number, read it back, and let the caller confirm (1) or re-enter (2).

    `#` ends the entry (GET DATA's terminator, docs/asterisk-protocol.md#get-data). One more digit
    than `max_digits` is read so that an over-long entry is refused rather than silently cut.
    Returns None when the tries run out; with `allow_skip`, `#` alone skips.
    """
    timeout_ms = timeout_s * 1000
    for _ in range(tries):
        data = await session.get_data(prompt, timeout_ms, max_digits + 1)
        digits = data.digits
        if allow_skip and not digits and not data.timed_out:
            return NumberEntry("", skipped=True)
        if not digits.isdigit() or not min_digits <= len(digits) <= max_digits:
            # Empty, too short, too long, or holding `*`: ask again.
            await session.stream_file(PROMPT_INVALID)
            continue
        await session.stream_file(PROMPT_YOU_ENTERED)
        await session.say_digits(digits)
        answer = await session.get_data(PROMPT_CONFIRM_REENTER, timeout_ms, 1)
        if answer.digits == "1":
            return NumberEntry(digits)
        if answer.digits != "2":
            await session.stream_file(PROMPT_INVALID)
    return None
