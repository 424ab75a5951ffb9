"""The supervisors' wallboard in headless Chromium: it follows a recorded queue call as it
joins, waits (turning amber, then red past the service level), is answered and ends; an
action the supervisor API refuses says why; axe-core finds nothing serious; Arabic is right
to left; the kiosk view. Screenshots go to `artifacts/wallboard-*.png`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import CHROMIUM
from test_browser_console import QUEUE_TRACE, logged_in, shot
from test_browser_desk import axe_violations
from test_web_support import WebEnv, console_env

from ami.testing import load_trace, rewrite
from centralita.keys import SETTINGS

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.async_api import Browser, Page, Route, ViewportSize, expect  # noqa: E402

WALL: ViewportSize = {"width": 1600, "height": 1000}


def short_service_level(text: str) -> str:
    """support-en answers within 4 s (so a test sees a wait turn amber, then red, quickly)."""
    return text.replace(
        'name = "support-en"\nid = 2\n', 'name = "support-en"\nid = 2\nservice_level_s = 4\n', 1
    )


async def wallboard(
    browser: Browser, env: WebEnv, *, language: str = "en", path: str = "wallboard"
) -> Page:
    # Carmen Ruiz (1100): a supervisor who takes no queue calls (Amira, 1001, is a supervisor
    # who takes calls too, and may not listen to her own).
    page = await logged_in(browser, env, "1100", language=language)
    await page.set_viewport_size(WALL)
    await page.goto(env.url + path)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=15_000)
    await expect(page.locator("#wb-link")).to_have_attribute("data-state", "live")
    return page


def until(events: list, name: str) -> int:  # type: ignore[type-arg]
    return 1 + next(i for i, m in enumerate(events) if m.name == name)


async def test_the_wallboard_follows_a_call_that_joins_waits_is_answered_and_ends(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True, edit=short_service_level) as env:
        await env.wait_ami()
        page = await wallboard(browser, env)
        tile = page.locator(".wb-queue[data-queue='support-en']")
        amira = page.locator("#wb-agents tr[data-extension='1001']")
        await expect(tile.locator(".wb-waiting")).to_have_text("0")
        await expect(tile).to_have_attribute("data-level", "ok")
        await expect(tile.locator(".wb-count[data-kind='free'] .wb-count-n")).to_have_text("3")
        await expect(tile.locator(".wb-sl + .wb-label")).to_have_text("answered within 4 s")
        await expect(amira.locator(".wb-state")).to_have_attribute("data-state", "free")
        await expect(page.locator(".wb-queue")).to_have_count(3)
        await expect(page.locator("#wb-agents tr")).to_have_count(3)
        await shot(page, "wallboard-idle")

        events = rewrite(load_trace(QUEUE_TRACE), {"support-sip": "support-en"})
        joined = until(events, "QueueCallerJoin")
        await env.ami.replay_trace(events[:joined])
        await expect(tile.locator(".wb-waiting")).to_have_text("1")
        # A caller waits: amber at half the service level, red beyond it, by the page's clock.
        await expect(tile).to_have_attribute("data-level", "warn", timeout=5_000)
        await expect(tile).to_have_attribute("data-level", "alert", timeout=5_000)
        await expect(tile.locator(".wb-longest")).not_to_have_text("–")
        await shot(page, "wallboard-waiting")

        called = until(events, "AgentCalled")
        await env.ami.replay_trace(events[joined:called])
        await expect(amira.locator(".wb-state")).to_have_attribute("data-state", "ringing")
        await expect(tile.locator(".wb-count[data-kind='ringing'] .wb-count-n")).to_have_text("1")

        connected = until(events, "AgentConnect")
        await env.ami.replay_trace(events[called:connected])
        await expect(amira.locator(".wb-state")).to_have_attribute("data-state", "on_call")
        await expect(amira.locator(".wb-state")).to_contain_text("On a call")
        await expect(tile.locator(".wb-waiting")).to_have_text("0")
        await expect(tile.locator(".wb-longest")).to_have_text("–")
        await expect(tile.locator(".wb-count[data-kind='on_call'] .wb-count-n")).to_have_text("1")
        await expect(tile.locator(".wb-sl")).to_have_text("100%")
        await expect(amira.locator(".wb-spy[data-mode='listen']")).to_be_enabled()
        await shot(page, "wallboard-answered")

        await env.ami.replay_trace(events[connected:])
        await expect(amira.locator(".wb-state")).to_have_attribute("data-state", "free")
        await expect(tile.locator(".wb-today")).to_have_text("Today: 1 answered, 0 abandoned")
        await expect(tile).to_have_attribute("data-level", "ok")
        await expect(amira.locator(".wb-spy[data-mode='listen']")).to_be_disabled()
        await expect(amira.locator(".wb-time")).to_have_text("0:00", timeout=3_000)
        await shot(page, "wallboard-ended")


async def test_an_action_the_api_refuses_shows_why(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await wallboard(browser, env)
        sent: list[tuple[str, object]] = []

        async def refuse(route: Route) -> None:
            sent.append((route.request.url, json.loads(route.request.post_data or "null")))
            await route.fulfill(
                status=409,
                content_type="application/json",
                body=json.dumps(
                    {"error": "Asterisk refused: Interface not found", "code": "refused"}
                ),
            )

        await page.route("**/api/supervisor/**", refuse)
        john = page.locator("#wb-agents tr[data-extension='1002']")
        await john.locator(".wb-reason").select_option("training")
        await john.locator(".wb-pause").click()
        status = page.locator("#wb-status")
        await expect(status).to_have_attribute("data-ok", "false")
        await expect(status).to_have_text("John Smith: Asterisk refused: Interface not found")
        assert sent == [
            (env.url + "api/supervisor/agents/1002/pause", {"paused": True, "reason": "training"})
        ]
        # Nothing changed on the board: it follows Asterisk's events only.
        await expect(john.locator(".wb-state")).to_have_attribute("data-state", "free")
        await shot(page, "wallboard-refused")

        await john.locator(".wb-chip[data-queue='support-fr']").click()
        await expect(status).to_have_text("John Smith: Asterisk refused: Interface not found")
        assert sent[-1] == (
            env.url + "api/supervisor/agents/1002/queues/support-fr",
            {"logged_in": True},
        )


async def test_axe_the_languages_and_the_kiosk_view(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await wallboard(browser, env)
        assert await axe_violations(page) == []
        # Full screen through the Fullscreen API, and back.
        full = page.locator("#wb-fullscreen")
        await full.click()
        await expect(full).to_have_attribute("aria-pressed", "true")
        await expect(full).to_have_text("Leave full screen")
        assert await page.evaluate("document.fullscreenElement === document.documentElement")
        await full.click()
        await expect(full).to_have_attribute("aria-pressed", "false")
        assert await page.evaluate("document.fullscreenElement === null")
        await page.close()

        arabic = await wallboard(browser, env, language="ar")
        html = arabic.locator("html")
        await expect(html).to_have_attribute("dir", "rtl")
        await expect(arabic.locator("h1")).to_have_text("لوحة المتابعة")
        await expect(arabic.locator("#wb-link")).to_have_text("مباشر")
        await expect(
            arabic.locator("#wb-agents tr[data-extension='1001'] .wb-state")
        ).to_contain_text("متاح")
        # Right to left: the first queue tile sits on the right.
        first = await arabic.locator(".wb-queue").first.bounding_box()
        last = await arabic.locator(".wb-queue").last.bounding_box()
        assert first is not None and last is not None and first["x"] > last["x"]
        assert await axe_violations(arabic) == []
        await shot(arabic, "wallboard-arabic")
        await arabic.close()

        french = await wallboard(browser, env, language="fr", path="wallboard?kiosk=1")
        await expect(french.locator("h1")).to_have_text("Tableau mural")
        await expect(french.locator(".topbar")).to_be_hidden()
        await expect(french.locator(".wb-actions")).to_have_count(0)
        await expect(french.locator("#wb-kiosk")).to_have_attribute("href", "/wallboard")
        assert await axe_violations(french) == []
        await shot(french, "wallboard-kiosk-fr")


async def test_a_pause_clicked_on_the_wallboard_reaches_asterisk_as_queuepause(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await wallboard(browser, env)
        john = page.locator("#wb-agents tr[data-extension='1002']")
        tile = page.locator(".wb-queue[data-queue='support-en']")
        await expect(john.locator(".wb-state")).to_have_attribute("data-state", "free")
        await john.locator(".wb-reason").select_option("lunch")
        await john.locator(".wb-pause").click()
        action = await env.ami.wait_for_action("QueuePause")
        headers = dict(action.headers)
        assert (headers["Interface"], headers["Paused"], headers["Reason"]) == (
            "SIP/1002",
            "true",
            "lunch",
        )
        # The board changes when app_queue's QueueMemberPause comes back.
        await expect(john.locator(".wb-state")).to_have_attribute("data-state", "paused")
        await expect(john.locator(".wb-state")).to_contain_text("Paused: lunch")
        await expect(john.locator(".wb-pause")).to_have_text("Unpause")
        await expect(tile.locator(".wb-count[data-kind='paused']")).to_contain_text("(lunch)")
        await expect(page.locator("#wb-status")).to_have_text("John Smith: pause sent.")
        audit = await env.store.list_audit()
        assert [
            (a.actor, a.action, a.subject) for a in audit if a.action.startswith("supervisor.")
        ] == [("1100", "supervisor.pause", "1002")]
        await shot(page, "wallboard-paused")

        await john.locator(".wb-pause").click()
        await expect(john.locator(".wb-state")).to_have_attribute("data-state", "free")
        unpause = dict(env.ami.actions_named("QueuePause")[-1].headers)
        assert (unpause["Interface"], unpause["Paused"]) == ("SIP/1002", "false")

        # Log John in to support-fr from his chip: QueueAdd, then the chip turns solid.
        chip = john.locator(".wb-chip[data-queue='support-fr']")
        await expect(chip).to_have_attribute("data-member", "false")
        await chip.click()
        added = dict((await env.ami.wait_for_action("QueueAdd")).headers)
        assert (added["Queue"], added["Interface"]) == ("support-fr", "SIP/1002")
        await expect(chip).to_have_attribute("data-member", "true")
        await expect(
            page.locator(".wb-queue[data-queue='support-fr'] .wb-count[data-kind='logged_in']")
        ).to_contain_text("2")
        # His own queue (queues.conf) is not a button: only the configuration changes it.
        own = john.locator(".wb-chip[data-queue='support-en']")
        assert await own.evaluate("e => e.tagName") == "SPAN"


async def test_an_open_wallboard_follows_a_new_config(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await wallboard(browser, env)
        await expect(page.locator(".wb-queue")).to_have_count(3)
        site = env.settings.site
        sales = replace(site.queues[0], name="sales", id=9)
        nadia = replace(site.agents[2], extension="1010", name="Nadia Ben", queues=("sales",))
        members = (nadia, *(m for m in site.members if m.extension != "1002"))
        queues = (sales, *(q for q in site.queues if q.name != "support-ar"))
        new_site = replace(site, queues=queues, members=members)
        # A reload (centralita/live.py): every part takes the new site, in start-up order.
        assert env.app[SETTINGS].apply(replace(env.settings, site=new_site)).applied
        # Rows gone and rows added, in the new config's order, without a reload.
        tiles = page.locator(".wb-queue")
        await expect(tiles).to_have_count(3)
        assert await tiles.evaluate_all("ts => ts.map(t => t.dataset.queue)") == [
            "sales",
            "support-en",
            "support-fr",
        ]
        rows = page.locator("#wb-agents tr")
        await expect(rows).to_have_count(3)
        assert await rows.evaluate_all("rs => rs.map(r => r.dataset.extension)") == [
            "1010",
            "1001",
            "1003",
        ]
        await expect(page.locator("#wb-agents tr[data-extension='1010']")).to_contain_text(
            "Nadia Ben"
        )
        await shot(page, "wallboard-new-config")
