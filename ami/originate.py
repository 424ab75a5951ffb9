"""Click-to-dial: AMI `Originate` that rings the agent's phone first, then the customer.

`build_originate()` makes the headers (sans-IO); `originate()` sends them through an
`AmiListener` and waits, bounded, for the `OriginateResponse` with the same ActionID
(docs/asterisk-protocol.md#originate; ami-click2dial.txt: `Reason: 4` when the agent answered).

The agent's device is the `Channel`, so Asterisk calls the agent; once the agent answers, the
channel runs `Exten` = the number in the outbound context (Priority 1), whose dialplan dials
the customer. `Variable: CENTRALITA_DIAL=<number>` tells the tracker (and the dialplan) who is
being called. Every value passes `validate_dial_number()` or the AMI encoder: no CR/LF (and no
comma, which Originate's `Variable` would split on, main/manager.c:1707-1747) reaches Asterisk.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
from dataclasses import dataclass

from ami.client import AmiError, AmiListener
from dialplan.names import DIAL_VAR, OUTBOUND_CONTEXT, PRIVATE_VAR

DIAL_CHARS = frozenset("0123456789+*#")
MAX_DIAL_LENGTH = 32

# OriginateResponse `Reason` = control-frame code (main/pbx.c:7770-7807,
# docs/asterisk-protocol.md#originate).
REASONS = {
    0: "failed",
    1: "hung up",
    3: "no answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}


class Refusal(enum.Enum):
    """Why a click-to-dial was refused before anything was sent."""

    AGENT_BUSY = "agent busy"  # the tracker has the agent on a call (or dialling one)
    AMI_AWAY = "AMI away"  # no logged-in AMI connection


class OriginateRefused(AmiError):
    """The click-to-dial was refused before anything was sent: `reason` says why."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """How a click-to-dial ended.

    response: the OriginateResponse's `Success`/`Failure`, or `Error` when Asterisk refused
    the action, or `Timeout` when no OriginateResponse came in time. reason: Asterisk's code
    (4 answered, 5 busy, 3 no answer, 8 congestion, 1 hung up, 0 failed) or None.
    """

    success: bool
    action_id: str
    response: str
    reason: int | None
    reason_text: str
    message: str = ""
    channel: str = ""
    uniqueid: str = ""


def validate_dial_number(number: object) -> str:
    """The number itself if it is 1-32 of `0-9 + * #` (`+` only first); else ValueError."""
    if not isinstance(number, str):
        raise ValueError("the number to dial must be text")
    if not number:
        raise ValueError("the number to dial is empty")
    if len(number) > MAX_DIAL_LENGTH:
        raise ValueError(f"the number to dial is longer than {MAX_DIAL_LENGTH} characters")
    for ch in number:
        if ch not in DIAL_CHARS:
            raise ValueError(f"the number to dial may only contain digits, +, * and #, not {ch!r}")
    if "+" in number[1:]:
        raise ValueError("'+' may only start the number to dial")
    return number


def _check_device(device: str) -> str:
    tech, slash, resource = device.partition("/")
    # Asterisk requires a '/' (Error `Invalid channel`, main/manager.c:5314-5321); '&' and ','
    # would make Dial-style multi-targets or split arguments.
    if not slash or not tech or not resource or any(c in device for c in "&,\r\n\0 \t"):
        raise ValueError(f"{device!r} is not a device like PJSIP/1001")
    return device


def build_originate(
    agent_device: str,
    number: str,
    *,
    context: str = OUTBOUND_CONTEXT,
    callerid: str,
    callerid_name: str = "",
    private: bool = False,
    action_id: str,
    timeout_ms: int = 30_000,
) -> list[tuple[str, str]]:
    """The headers of the click-to-dial Originate (without `Action`), in sending order.

    callerid: the number the customer sees (the config's outbound caller ID); callerid_name
    an optional name. private: present the call as "Anonymous" with presentation prohibited
    (`CALLERID(pres)=prohib`) and set `CENTRALITA_PRIVATE=1` for the dialplan.
    """
    number = validate_dial_number(number)
    device = _check_device(agent_device)
    callerid = validate_dial_number(callerid)
    if any(c in callerid_name for c in '"<>\\\r\n\0'):
        raise ValueError("the caller ID name may not contain quotes, <, >, \\ or line breaks")
    if not context or any(c in context for c in ",;[]\r\n\0 "):
        raise ValueError(f"{context!r} is not a dialplan context name")
    if not action_id:
        raise ValueError("the Originate needs an ActionID to match its OriginateResponse")
    if private:
        shown = f'"Anonymous" <{callerid}>'
    elif callerid_name:
        shown = f'"{callerid_name}" <{callerid}>'
    else:
        shown = f"<{callerid}>"
    headers = [
        ("ActionID", action_id),
        ("Channel", device),
        ("Context", context),
        ("Exten", number),
        # Always send Priority: Exten without it is an error (docs/asterisk-protocol.md#originate).
        ("Priority", "1"),
        ("Timeout", str(int(timeout_ms))),  # ms the agent's phone rings (default 30000)
        ("CallerID", shown),
        ("Async", "true"),  # answer now, OriginateResponse later (as above)
        ("Variable", f"{DIAL_VAR}={number}"),
    ]
    if private:
        headers += [("Variable", f"{PRIVATE_VAR}=1"), ("Variable", "CALLERID(pres)=prohib")]
    return headers


def new_action_id() -> str:
    """A fresh, unguessable ActionID for one click-to-dial."""
    return f"c2d-{secrets.token_hex(8)}"


async def originate(
    listener: AmiListener,
    agent: str,
    number: str,
    *,
    device: str,
    callerid: str,
    callerid_name: str = "",
    private: bool = False,
    context: str = OUTBOUND_CONTEXT,
    ring_timeout_s: float = 30.0,
    response_timeout_s: float | None = None,
) -> OriginateResult:
    """Place a click-to-dial for `agent` (whose phone is `device`) to `number`.

    Raises ValueError for a bad number (before anything is sent) and OriginateRefused when
    the agent is already on a call or AMI is not connected. Otherwise returns how it went:
    the OriginateResponse matched by ActionID, or a failure (Error, Timeout, connection lost).
    """
    number = validate_dial_number(number)
    action_id = new_action_id()
    headers = build_originate(
        device,
        number,
        context=context,
        callerid=callerid,
        callerid_name=callerid_name,
        private=private,
        action_id=action_id,
        timeout_ms=int(ring_timeout_s * 1000),
    )
    tracker = listener.tracker
    if tracker.agent_busy(agent):
        raise OriginateRefused(Refusal.AGENT_BUSY, f"agent {agent} is already on a call")
    if not listener.connected:
        raise OriginateRefused(
            Refusal.AMI_AWAY, f"Asterisk is not connected: {listener.last_error or 'connecting'}"
        )
    # No await between the busy check and this: a second click now finds the agent busy.
    tracker.expect_originate(action_id, agent, number)
    wait_s = response_timeout_s if response_timeout_s is not None else ring_timeout_s + 15.0
    try:
        return await send_originate(listener, headers, action_id, wait_s)
    finally:
        tracker.forget_originate(action_id)


async def send_originate(
    listener: AmiListener, headers: list[tuple[str, str]], action_id: str, wait_s: float
) -> OriginateResult:
    """Send an async Originate (`headers` carry `action_id`) and wait, at most `wait_s`, for
    its OriginateResponse: how it went, never an exception for Asterisk's answers."""
    waiter = listener.expect_event(action_id, "OriginateResponse")
    try:
        try:
            ack = await listener.action("Originate", headers)
        except AmiError as exc:
            return OriginateResult(False, action_id, "Error", None, "not sent", str(exc))
        if not ack.is_success:
            message = ack.value("Message")
            return OriginateResult(False, action_id, "Error", None, "refused", message)
        try:
            event = await asyncio.wait_for(waiter, wait_s)
        except TimeoutError:
            return OriginateResult(
                False,
                action_id,
                "Timeout",
                None,
                "no answer from Asterisk",
                f"no OriginateResponse within {wait_s:g} s",
            )
        except AmiError as exc:
            return OriginateResult(False, action_id, "Error", None, "connection lost", str(exc))
        response = event.value("Response")
        reason_text = event.value("Reason")
        reason = int(reason_text) if reason_text.isdigit() else None
        return OriginateResult(
            success=response == "Success",
            action_id=action_id,
            response=response,
            reason=reason,
            reason_text=REASONS.get(reason, "unknown") if reason is not None else "unknown",
            channel=event.value("Channel"),
            uniqueid=event.value("Uniqueid"),
        )
    finally:
        listener.cancel_expect(action_id)
