"""Flow `language` end to end through the simulator."""

from __future__ import annotations

import pytest
from conftest import FlowEnv

from agi.testing import Caller, place_call

MENU = ["ar/centralita/menu", "en/centralita/menu", "fr/centralita/menu"]


@pytest.mark.parametrize(
    ("key", "code", "queue"),
    [("1", "ar", "support-ar"), ("2", "en", "support-en"), ("3", "fr", "support-fr")],
)
async def test_each_language_option(flow_env: FlowEnv, key: str, code: str, queue: str) -> None:
    result = await place_call("127.0.0.1", flow_env.port, Caller(script="language", keys=[key]))
    assert result.language == code
    assert result.variables["CENTRALITA_QUEUE"] == queue
    assert result.route == f"queue:{queue}"
    # The welcome is interrupted by the key: each option was on offer, in its own language.
    assert result.heard == ["centralita/welcome"]


async def test_key_after_the_menu(flow_env: FlowEnv) -> None:
    # Silence after the first menu (WAIT FOR DIGIT times out); the key then interrupts the
    # menu's second round at its first option.
    result = await place_call(
        "127.0.0.1", flow_env.port, Caller(script="language", keys=[None, "2"])
    )
    assert result.heard == ["centralita/welcome", *MENU, MENU[0]]
    assert result.commands.count("WAIT FOR DIGIT 10000") == 1
    assert result.route == "queue:support-en"


@pytest.mark.parametrize("wrong", ["9", "*", "#", "0"])
async def test_wrong_key_then_a_valid_one(flow_env: FlowEnv, wrong: str) -> None:
    result = await place_call(
        "127.0.0.1", flow_env.port, Caller(script="language", keys=[None, wrong, "3"])
    )
    # Any key interrupts the menu; a wrong one is told so, and the valid key then cuts the
    # "invalid option" prompt short.
    assert result.heard == [
        "centralita/welcome",
        *MENU,
        MENU[0],
        "centralita/invalid-option",
    ]
    assert result.route == "queue:support-fr"
    assert result.language == "fr"


async def test_silence_after_the_retries_goes_to_the_default(flow_env: FlowEnv) -> None:
    retries = flow_env.settings.site.ivr.retries
    result = await place_call(
        "127.0.0.1", flow_env.port, Caller(script="language", keys=[None] * (retries + 1))
    )
    assert result.heard == ["centralita/welcome", *(MENU * (retries + 1))]
    assert [c for c in result.commands if c.startswith("WAIT FOR DIGIT")] == [
        "WAIT FOR DIGIT 10000"
    ] * (retries + 1)
    assert result.route == str(flow_env.settings.site.ivr.default)
    assert "CENTRALITA_QUEUE" not in result.variables
    assert result.language == "en"


async def test_wrong_keys_only_go_to_the_default(flow_env: FlowEnv) -> None:
    result = await place_call(
        "127.0.0.1", flow_env.port, Caller(script="language", keys=["9", "8", "7", "6"])
    )
    assert result.heard.count("centralita/invalid-option") == 3
    assert result.route == "queue:support-en"  # the demo's default
    assert "CENTRALITA_QUEUE" not in result.variables


async def test_wrong_key_during_the_welcome_as_asterisk_plays_it(flow_env: FlowEnv) -> None:
    # keys_per_prompt: a key not among a prompt's escape digits would be dropped, as a real
    # Asterisk does (agi-fidelity/*/unescaped-key.txt); every key is one here, so the wrong
    # key is heard and told so, and the right one interrupts "invalid option".
    caller = Caller(script="language", keys=["9", "3"], keys_per_prompt=True)
    result = await place_call("127.0.0.1", flow_env.port, caller)
    assert result.heard[:2] == ["centralita/welcome", "centralita/invalid-option"]
    assert not any(c.startswith("WAIT FOR DIGIT") for c in result.commands)
    assert result.route == "queue:support-fr"
