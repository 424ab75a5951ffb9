"""Click-to-dial headers and number validation (sans-IO part of ami.originate)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ami.originate import build_originate, validate_dial_number
from ami.protocol import AmiParser, encode_action
from dialplan.names import OUTBOUND_CONTEXT


@pytest.mark.parametrize("number", ["1", "5550001", "+34915550123", "*97", "#31#", "0" * 32])
def test_valid_numbers_pass_unchanged(number: str) -> None:
    assert validate_dial_number(number) == number


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("", "empty"),
        ("0" * 33, "longer than 32"),
        ("555 0001", "not ' '"),
        ("555-0001", "not '-'"),
        ("555\r\n0001", "not '\\\\r'"),
        ("5550001\n", "not '\\\\n'"),
        ("12,34", "not ','"),
        ("1;2", "not ';'"),
        ("٣٤٥", "not '٣'"),  # Arabic-Indic digits are digits to Python, not to a dialplan
        ("34+1", "'\\+' may only start"),
        ("abc", "not 'a'"),
    ],
)
def test_invalid_numbers_are_refused_with_a_clear_message(number: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_dial_number(number)


def test_non_text_is_refused() -> None:
    with pytest.raises(ValueError, match="must be text"):
        validate_dial_number(5550001)


@given(st.text(max_size=40))
def test_whatever_passes_validation_is_safe_in_an_ami_header(number: str) -> None:
    try:
        validate_dial_number(number)
    except ValueError:
        return
    assert set(number) <= set("0123456789+*#")
    assert 1 <= len(number) <= 32


def test_build_originate_rings_the_agent_first() -> None:
    headers = build_originate(
        "PJSIP/1001", "+34600111222", callerid="0777", callerid_name="Centralita", action_id="a1"
    )
    assert headers == [
        ("ActionID", "a1"),
        ("Channel", "PJSIP/1001"),  # the agent's phone rings first
        ("Context", OUTBOUND_CONTEXT),  # then the customer through the outbound context
        ("Exten", "+34600111222"),
        ("Priority", "1"),
        ("Timeout", "30000"),
        ("CallerID", '"Centralita" <0777>'),
        ("Async", "true"),
        ("Variable", "CENTRALITA_DIAL=+34600111222"),
    ]
    (msg,) = AmiParser(expect_banner=False).receive_data(encode_action("Originate", headers))
    assert msg.get("Exten") == "+34600111222"


def test_build_originate_private_and_options() -> None:
    headers = build_originate(
        "SIP/1002",
        "600",
        context="out-trunk",
        callerid="0777",
        private=True,
        action_id="a2",
        timeout_ms=15_000,
    )
    assert ("CallerID", '"Anonymous" <0777>') in headers
    assert ("Context", "out-trunk") in headers
    assert ("Timeout", "15000") in headers
    assert [v for n, v in headers if n == "Variable"] == [
        "CENTRALITA_DIAL=600",
        "CENTRALITA_PRIVATE=1",
        "CALLERID(pres)=prohib",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"number": "600\r\nAction: Command"},
        {"agent_device": "PJSIP/1001\r\nVariable: X=1"},
        {"agent_device": "1001"},
        {"callerid": "0777\n"},
        {"callerid_name": 'Evil" <666>'},
        {"context": "a,b"},
        {"action_id": ""},
    ],
)
def test_build_originate_refuses_hostile_values(kwargs: dict[str, str]) -> None:
    args: dict[str, str] = {
        "agent_device": "PJSIP/1001",
        "number": "600",
        "callerid": "0777",
        "action_id": "a3",
    }
    args.update(kwargs)
    device, number = args.pop("agent_device"), args.pop("number")
    with pytest.raises(ValueError):
        build_originate(device, number, **args)  # type: ignore[arg-type]
