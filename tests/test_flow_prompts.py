"""Every prompt id any flow plays exists for every configured language, as 8 kHz mono WAV."""

from __future__ import annotations

import importlib

import pytest

from agi.flows import FLOW_MODULES
from centralita import sounds
from centralita.settings import load_settings


def flow_prompts() -> set[str]:
    prompts: set[str] = set()
    for name in FLOW_MODULES:
        module = importlib.import_module(f"agi.flows.{name}")
        prompts.update(module.PROMPTS)
    site = load_settings(None).site
    prompts.update({site.ivr.welcome, site.ivr.invalid})
    prompts.update(node.prompt for node in site.customer_id)
    return prompts


def test_every_flow_declares_its_prompts() -> None:
    assert "centralita/welcome" in flow_prompts()
    assert "centralita/rate-call" in flow_prompts()


@pytest.mark.parametrize("prompt", sorted(flow_prompts()))
def test_prompt_exists_in_every_language(prompt: str) -> None:
    languages = [lang.code for lang in load_settings(None).site.languages]
    assert languages == ["ar", "en", "fr"]
    for code in languages:
        path = sounds.prompt_path(code, prompt)
        assert path.is_file(), path
        assert sounds.wav_problems(path) == [], path


def test_each_language_menu_is_spoken_in_its_own_language() -> None:
    for lang in load_settings(None).site.languages:
        # `ar/centralita/menu` is found by Asterisk under sounds/ar/ whatever the channel's
        # language (main/file.c fileexists_core falls back to the name without a language).
        code, _, prompt = lang.prompt.partition("/")
        assert code == lang.code
        path = sounds.prompt_path(code, prompt)
        assert path.is_file() and sounds.wav_problems(path) == []
