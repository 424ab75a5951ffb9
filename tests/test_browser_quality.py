"""Quality in headless Chromium: the caller's message from box 600 plays in /complaints and a
call's recording plays from its row in /calls, in English, French and Arabic, with axe-core.

The spool is the fixture laid out as Asterisk's (tests/quality_support.py). Chromium runs
with `--autoplay-policy=no-user-gesture-required` so that the test may call `play()` itself;
the player must then really play: `play()` resolves and `currentTime` moves on.
Screenshots go to `artifacts/`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ARGS, CHROMIUM
from quality_support import CALL_ID, QUALITY, SUPERVISOR, quality_env

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed", allow_module_level=True)

from playwright.async_api import Browser, Page, expect  # noqa: E402
from test_browser_console import logged_in, shot  # noqa: E402
from test_browser_desk import axe_violations  # noqa: E402

# Resolves when the element played: play() resolved and the playhead passed 1.2 s.
PLAYS = """async (audio) => {
  audio.currentTime = 0;
  await audio.play();
  await new Promise((resolve, reject) => {
    const stuck = () => reject(new Error('currentTime stuck at ' + audio.currentTime));
    const deadline = setTimeout(stuck, 8000);
    const tick = () =>
      audio.currentTime > 1.2 ? (clearTimeout(deadline), resolve()) : setTimeout(tick, 50);
    tick();
  });
  audio.pause();
  return {time: audio.currentTime, duration: audio.duration, paused: audio.paused};
}"""


@pytest.fixture
async def player() -> AsyncIterator[Browser]:
    """Chromium that lets a page start audio without a click."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*ARGS, "--autoplay-policy=no-user-gesture-required"],
            headless=True,
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def played(page: Page, selector: str) -> dict[str, Any]:
    result: dict[str, Any] = await page.locator(selector).first.evaluate(PLAYS)
    return result


@pytest.mark.parametrize("language", ["en", "fr", "ar"])
async def test_the_complaint_message_from_box_600_plays(
    tmp_path: Path, player: Browser, language: str
) -> None:
    async with quality_env(tmp_path) as quality:
        env = quality.env
        page = await logged_in(player, env, QUALITY, language=language)
        await page.set_viewport_size({"width": 1360, "height": 720})
        await page.goto(env.url + "complaints")
        await expect(page.locator("html")).to_have_attribute("lang", language)
        row = page.locator(f'tr[data-rating-id="{quality.rating_id}"]')
        await expect(row.locator(".agent")).to_contain_text("John Smith")
        await expect(row.locator(".customer")).to_contain_text("Lucía Fernández")
        audio = row.locator("audio.voicemail")
        await expect(audio).to_have_attribute("src", f"/api/ratings/{quality.rating_id}/voicemail")
        state = await played(page, f'tr[data-rating-id="{quality.rating_id}"] audio')
        assert state["time"] > 1.2 and abs(state["duration"] - 3.0) < 0.1, state
        found = await axe_violations(page)
        assert found == [], json.dumps(found, indent=1)
        await shot(page, f"quality-complaints-{language}")
        # The call link opens that call's records in /calls.
        await row.locator("a.call-link").click()
        await expect(page.locator("#one-call")).to_contain_text(CALL_ID)
        await expect(page.locator("#calls-table tbody tr")).to_have_count(1)
        audited = [e for e in await env.store.list_audit() if e.action == "playback.voicemail"]
        assert [(e.actor, e.subject) for e in audited] == [(QUALITY, f"rating {quality.rating_id}")]


async def test_a_recording_plays_from_its_row_in_calls(tmp_path: Path, player: Browser) -> None:
    async with quality_env(tmp_path) as quality:
        env = quality.env
        page = await logged_in(player, env, SUPERVISOR, language="en")
        await page.set_viewport_size({"width": 1360, "height": 720})
        await page.goto(env.url + "calls")
        row = page.locator(f'tr[data-uniqueid="{CALL_ID}"]')
        await expect(page.locator(".play-recording")).to_have_count(1)
        await row.locator(".play-recording").click()
        opened = f'tr[data-uniqueid="{CALL_ID}"] + tr.player-row audio.recording'
        await expect(page.locator(opened)).to_have_count(1)
        await expect(row.locator(".play-recording")).to_have_attribute("aria-expanded", "true")
        state = await played(page, opened)
        assert state["time"] > 1.2, state
        found = await axe_violations(page)
        assert found == [], json.dumps(found, indent=1)
        await shot(page, "quality-calls-recording")
        await row.locator(".play-recording").click()  # closes the player again
        await expect(page.locator(opened)).to_have_count(0)
        entries = [e for e in await env.store.list_audit() if e.action == "playback.recording"]
        assert [(e.actor, e.subject) for e in entries] == [(SUPERVISOR, f"call {CALL_ID}")]
