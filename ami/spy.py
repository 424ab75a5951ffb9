"""Listen-in, whisper and barge: the AMI `Originate` that rings a supervisor's own phone and,
once answered, runs `ChanSpy` on one agent's channel (dialplan/names.py SPY_CONTEXT).

`build_spy_originate()` makes the headers (sans-IO); `spy()` sends them through an
`AmiListener` and waits, bounded, for the `OriginateResponse` (ami/originate.py
send_originate), which comes once the supervisor answered (or the phone gave up).

Nothing from the request reaches the dialplan as text of its own: the mode must be one of
names.SPY_MODES and becomes the extension, whose dialplan holds ChanSpy's options; the agent's
channel comes from the call tracker and must be a channel of the agent's own device
(`PJSIP/1002-0000000a`) before it is set as names.SPY_TARGET_VAR. Every header then goes
through the AMI encoder (ami/protocol.py), and no value holds a comma, which Originate's
`Variable` would split on (main/manager.c:1707-1747).
"""

from __future__ import annotations

import re
import secrets

from ami.client import AmiListener
from ami.originate import OriginateResult, send_originate
from dialplan.names import SPY_CONTEXT, SPY_MODES, SPY_TARGET_VAR

# The suffix Asterisk gives a device's channels: `-` and an 8-digit hex counter
# ("PJSIP/%s-%08x" in chan_pjsip.c chan_pjsip_new, "SIP/%s-%08x" in chan_sip.c sip_new).
_CHANNEL_SUFFIX = r"-[0-9A-Za-z]{1,16}"
_DEVICE = re.compile(r"(?:PJSIP|SIP)/[0-9A-Za-z_.+-]{1,40}")
_EXTENSION = re.compile(r"[0-9A-Za-z_.+-]{1,40}")


def check_spy_target(agent_device: str, channel: str) -> str:
    """The channel itself when it is one of `agent_device`'s channels; else ValueError."""
    if not _DEVICE.fullmatch(agent_device):
        raise ValueError(f"{agent_device!r} is not a device like PJSIP/1002")
    if not re.fullmatch(re.escape(agent_device) + _CHANNEL_SUFFIX, channel):
        raise ValueError(f"{channel!r} is not a channel of {agent_device}")
    return channel


def build_spy_originate(
    supervisor_device: str,
    mode: str,
    *,
    agent: str,
    agent_device: str,
    channel: str,
    action_id: str,
    timeout_ms: int = 30_000,
) -> list[tuple[str, str]]:
    """The headers of the spy Originate (without `Action`), in sending order.

    Rings `supervisor_device`; once answered, the call runs `mode` in SPY_CONTEXT, spying on
    `channel` (which must belong to `agent_device`). The supervisor's phone shows the mode and
    the agent's extension as the caller.
    """
    if mode not in SPY_MODES:
        raise ValueError(f"mode must be one of {', '.join(SPY_MODES)}")
    if not _DEVICE.fullmatch(supervisor_device):
        raise ValueError(f"{supervisor_device!r} is not a device like PJSIP/1001")
    if not _EXTENSION.fullmatch(agent):
        raise ValueError(f"{agent!r} is not an extension")
    target = check_spy_target(agent_device, channel)
    if not action_id:
        raise ValueError("the Originate needs an ActionID to match its OriginateResponse")
    return [
        ("ActionID", action_id),
        ("Channel", supervisor_device),
        ("Context", SPY_CONTEXT),
        ("Exten", mode),
        ("Priority", "1"),
        ("Timeout", str(int(timeout_ms))),  # ms the supervisor's phone rings
        ("CallerID", f'"{mode} {agent}" <{agent}>'),
        ("Async", "true"),
        ("Variable", f"{SPY_TARGET_VAR}={target}"),
    ]


async def spy(
    listener: AmiListener,
    supervisor_device: str,
    mode: str,
    *,
    agent: str,
    agent_device: str,
    channel: str,
    ring_timeout_s: float = 30.0,
) -> OriginateResult:
    """Ring the supervisor's phone into ChanSpy on `channel`; how the Originate ended.

    Raises ValueError for a bad mode, device or channel (before anything is sent)."""
    action_id = f"spy-{secrets.token_hex(8)}"
    headers = build_spy_originate(
        supervisor_device,
        mode,
        agent=agent,
        agent_device=agent_device,
        channel=channel,
        action_id=action_id,
        timeout_ms=int(ring_timeout_s * 1000),
    )
    return await send_originate(listener, headers, action_id, ring_timeout_s + 15.0)
