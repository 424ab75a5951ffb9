"""Listen-in's Asterisk side: the spy Originate's headers (ami/spy.py) and the supervisors-only
spy context of the rendered dialplan, which no other context can reach."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from ami.protocol import AmiMessage, encode_action
from ami.spy import build_spy_originate, check_spy_target
from ami.tracker import CallTracker
from centralita.cmd_render import render_files
from centralita.settings import demo_text, parse_settings
from dialplan.names import HANGUP_CONTEXT, SPY_CONTEXT, SPY_MODES, SPY_TARGET_VAR, ref
from dialplan.render import SPY_OPTIONS
from dialplan.validate import ConfigError

SECTION = re.compile(r"^\[([^\]]+)\]$", re.MULTILINE)


def headers(**overrides: Any) -> list[tuple[str, str]]:
    args: dict[str, Any] = {
        "agent": "1002",
        "agent_device": "PJSIP/1002",
        "channel": "PJSIP/1002-0000000a",
        "action_id": "spy-1",
    }
    args.update(overrides)
    mode = args.pop("mode", "listen")
    phone = args.pop("phone", "PJSIP/1001")
    return build_spy_originate(phone, mode, **args)


def test_the_spy_originate_rings_the_supervisor_into_the_spy_context() -> None:
    assert headers(mode="whisper", timeout_ms=20_000) == [
        ("ActionID", "spy-1"),
        ("Channel", "PJSIP/1001"),
        ("Context", SPY_CONTEXT),
        ("Exten", "whisper"),
        ("Priority", "1"),
        ("Timeout", "20000"),
        ("CallerID", '"whisper 1002" <1002>'),
        ("Async", "true"),
        ("Variable", f"{SPY_TARGET_VAR}=PJSIP/1002-0000000a"),
    ]
    # Through the one AMI encoder, as sent.
    wire = encode_action("Originate", headers())
    assert wire.count(b"\r\n") == 11 and wire.endswith(b"\r\n\r\n")
    assert b"\r\nVariable: CENTRALITA_SPY_TARGET=PJSIP/1002-0000000a\r\n" in wire


@pytest.mark.parametrize(
    "channel",
    [
        "PJSIP/10020-0000000a",  # another device whose name starts with the agent's
        "PJSIP/1003-0000000a",
        "PJSIP/1002",  # a device, not a channel
        "PJSIP/1002-0000000a,qB",  # would add ChanSpy options
        "PJSIP/1002-0000000a\r\nAction: Command",
        "Local/1002@agents-00000001;2",
        "",
    ],
)
def test_only_a_channel_of_the_agents_own_device_is_a_target(channel: str) -> None:
    with pytest.raises(ValueError, match="channel of PJSIP/1002"):
        headers(channel=channel)
    assert check_spy_target("SIP/1002", "SIP/1002-00000003") == "SIP/1002-00000003"


@pytest.mark.parametrize(
    "overrides",
    [
        {"mode": "spy"},
        {"mode": "listen,B"},
        {"phone": "PJSIP/1001&PJSIP/1003"},
        {"phone": "1001"},
        {"agent": "1002>"},
        {"agent_device": "PJSIP/1002,x", "channel": "PJSIP/1002,x-0000000a"},
        {"action_id": ""},
    ],
)
def test_bad_values_are_refused_before_anything_is_sent(overrides: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        headers(**overrides)


# --------------------------------------------------------------------------- the tracker


def event(name: str, *headers: tuple[str, str]) -> AmiMessage:
    return AmiMessage.build([("Event", name), ("Privilege", "call,all"), *headers])


def originate_dial(variable: str) -> list[AmiMessage]:
    """What Asterisk sends when an Originate dials 1001's phone: the Originate's variable
    set on the new channel, then DialBegin without a caller (main/pbx.c pbx_outgoing_attempt
    sets the variables before main/dial.c begin_dial_channel publishes the dial)."""
    dest = [
        ("DestChannel", "PJSIP/1001-00000007"),
        ("DestChannelState", "0"),
        ("DestCallerIDNum", "1002"),
        ("DestUniqueid", "1800000000.7"),
        ("DestLinkedid", "1800000000.7"),
    ]
    return [
        event(
            "VarSet",
            ("Channel", "PJSIP/1001-00000007"),
            ("Uniqueid", "1800000000.7"),
            ("Linkedid", "1800000000.7"),
            ("Variable", variable),
            ("Value", "PJSIP/1002-00000003"),
        ),
        event("DialBegin", *dest, ("DialString", "1001")),
    ]


def test_a_listen_in_rings_the_supervisors_phone_without_a_pop() -> None:
    tracker = CallTracker(["1001", "1002"], ("PJSIP",))
    changes = [c for m in originate_dial(SPY_TARGET_VAR) for c in tracker.handle(m)]
    assert changes == []
    # The same Originate without the spy variable is a click-to-dial: the phone pops.
    other = CallTracker(["1001", "1002"], ("PJSIP",))
    changes = [c for m in originate_dial("CENTRALITA_OTHER") for c in other.handle(m)]
    assert [(c.kind, c.agent) for c in changes] == [("ringing", "1001")]


# --------------------------------------------------------------------------- the dialplan


def sections(text: str) -> dict[str, list[str]]:
    """Each context's config lines (comments and blank lines left out)."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        match = SECTION.match(line)
        if match:
            current = match.group(1)
            out[current] = []
        elif line and not line.startswith(";"):
            out.setdefault(current, []).append(line)
    return out


def rendered(driver: str) -> dict[str, str]:
    text = demo_text().replace('sip_driver = "pjsip"', f'sip_driver = "{driver}"')
    return render_files(parse_settings(text, "centralita.toml", Path("site"), Path("x")))


@pytest.mark.parametrize("driver", ["pjsip", "sip"])
def test_the_spy_context_runs_chanspy_per_mode_on_the_checked_target(driver: str) -> None:
    contexts = sections(rendered(driver)["extensions.conf"])
    spy = contexts[SPY_CONTEXT]
    target = ref(SPY_TARGET_VAR)
    for i, mode in enumerate(SPY_MODES):
        no_cdr, first, chanspy, hangup = spy[4 * i : 4 * i + 4]
        assert no_cdr == f"exten => {mode},1,Set(CDR_PROP(disable)=1)"
        assert first.startswith(" same => n,GotoIf(")
        assert f"FILTER(-0-9A-Za-z_./,{target})" in first and f"?{HANGUP_CONTEXT},s,1)" in first
        assert chanspy == f" same => n,ChanSpy({target},{SPY_OPTIONS[mode]})"
        assert hangup == " same => n,Hangup()"
    assert spy[-1] == f"exten => i,1,Goto({HANGUP_CONTEXT},s,1)"
    assert len(spy) == 4 * len(SPY_MODES) + 1
    # q everywhere (no beep), w to whisper, B to barge, u: one exact channel.
    assert SPY_OPTIONS == {"listen": "qu", "whisper": "qwu", "barge": "qBu"}


@pytest.mark.parametrize("driver", ["pjsip", "sip"])
def test_no_other_context_and_no_phone_reaches_the_spy_context(driver: str) -> None:
    files = rendered(driver)
    contexts = sections(files["extensions.conf"])
    assert SPY_CONTEXT in contexts
    for name, lines in contexts.items():
        if name == SPY_CONTEXT:
            continue
        # No include, Goto, Gosub, Dial(Local/...@) or hangup handler names it.
        assert [line for line in lines if SPY_CONTEXT in line] == [], name
    # The phones' own contexts (the SIP endpoints' `context`) are role contexts.
    sip = files["pjsip.conf" if driver == "pjsip" else "sip.conf"]
    phone_contexts = set(re.findall(r"^context = (\S+)$", sip, re.MULTILINE))
    assert phone_contexts and SPY_CONTEXT not in phone_contexts
    assert phone_contexts <= set(contexts)


def test_no_role_may_name_its_context_after_the_spy_context() -> None:
    doc = tomlkit.parse(demo_text())
    doc["roles"][0]["context"] = SPY_CONTEXT
    with pytest.raises(ConfigError) as info:
        parse_settings(tomlkit.dumps(doc), "centralita.toml", Path("site"), Path("x"))
    assert info.value.key == "roles[0].context"
