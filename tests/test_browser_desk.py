"""The agent desk in headless Chromium: alerts, agent state, several pops, wrap-up across a
reload, history, languages, the tablet width and an axe-core accessibility check.

The real app runs on loopback with the fake AMI (`ami.testing.FakeAmiServer`) on a real
socket and a real SQLite file; Playwright drives Debian's `chromium`. Screenshots go to
`artifacts/desk-*.png`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM
from test_browser_console import ARTIFACTS, CALLER, QUEUE_TRACE, logged_in, shot
from test_web_support import WebEnv, console_env

from ami.testing import load_trace, rewrite

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.async_api import Browser, Page, expect  # noqa: E402

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
SECOND_CALLER = "+34915550999"

# Spies installed before any page script runs: the ring sound's play(), and a stand-in for
# the Notification API (headless Chromium has no notification service to grant it).
SPIES = """
window.__played = [];
HTMLMediaElement.prototype.play = function () {
  window.__played.push(this.currentSrc || this.src);
  return Promise.resolve();
};
window.__notifications = [];
window.__permissionAsked = 0;
class FakeNotification {
  constructor(title, options) {
    window.__notifications.push({ title: title, body: (options || {}).body || "" });
  }
  close() {}
}
FakeNotification.permission = "default";
FakeNotification.requestPermission = function () {
  window.__permissionAsked += 1;
  FakeNotification.permission = "granted";
  return Promise.resolve("granted");
};
window.Notification = FakeNotification;
window.__titles = [];
setInterval(() => {
  if (window.__titles[window.__titles.length - 1] !== document.title) {
    window.__titles.push(document.title);
  }
}, 50);
"""


def ringing_part(events: list[Any]) -> tuple[list[Any], list[Any]]:
    """The trace up to the agent's phone ringing (AgentCalled), and the rest."""
    end = 1 + next(i for i, m in enumerate(events) if m.name == "AgentCalled")
    return events[:end], events[end:]


def second_call() -> list[Any]:
    """The queue trace as another call from another number (new unique ids)."""
    return rewrite(load_trace(QUEUE_TRACE), {"1795301086.": "1795309999.", CALLER: SECOND_CALLER})


async def spied_page(browser: Browser, **options: Any) -> Page:
    page = await browser.new_page(**options)
    await page.add_init_script(SPIES)
    return page


# ----------------------------------------------------------------------------- alerts


async def test_a_ringing_call_rings_notifies_and_flashes_the_title(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env, page=await spied_page(browser))
        # Asked once, politely: a banner, and the browser's question only on a click.
        await expect(page.locator("#notify-banner")).to_be_visible()
        assert await page.evaluate("window.__permissionAsked") == 0
        await page.click("#notify-allow")
        await expect(page.locator("#notify-banner")).to_be_hidden()
        assert await page.evaluate("window.__permissionAsked") == 1
        title = await page.title()

        ringing, rest = ringing_part(load_trace(QUEUE_TRACE))
        await env.ami.replay_trace(ringing)
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ringing")
        await page.wait_for_function("window.__played.length > 0")
        played = await page.evaluate("window.__played")
        assert played[0].split("?")[0].endswith("/static/ring.wav")
        await page.wait_for_function("window.__notifications.length > 0")
        (note,) = await page.evaluate("window.__notifications")
        assert note["title"] == "Incoming call"
        assert CALLER in note["body"]
        await page.wait_for_function(
            f"document.title.startsWith('☎') && document.title !== {json.dumps(title)}"
        )
        assert any(CALLER in t for t in await page.evaluate("window.__titles"))
        await expect(page.locator(".pop-tab[data-state='ringing']")).to_have_count(1)
        await shot(page, "desk-ring-alert")

        # Answered: the title comes back and the ring stops; the banner is not offered again.
        await env.ami.replay_trace(rest)
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ended")
        await page.wait_for_function(f"document.title === {json.dumps(title)}")
        await page.reload()
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
        await expect(page.locator("#notify-banner")).to_be_hidden()


async def test_alerts_can_be_turned_off_and_stay_off(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env, page=await spied_page(browser))
        await page.click("#alerts-menu summary")
        await page.uncheck("#alert-sound")
        await page.uncheck("#alert-title")
        await page.reload()
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
        await page.click("#alerts-menu summary")
        await expect(page.locator("#alert-sound")).not_to_be_checked()
        await expect(page.locator("#alert-title")).not_to_be_checked()
        await expect(page.locator("#alert-notification")).to_be_checked()
        title = await page.title()
        ringing, _ = ringing_part(load_trace(QUEUE_TRACE))
        await env.ami.replay_trace(ringing)
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ringing")
        await page.wait_for_timeout(1500)  # long enough for a title flash to show
        assert await page.evaluate("window.__played") == []
        assert await page.title() == title
        await shot(page, "desk-alerts-off")


# ----------------------------------------------------------------------------- several pops


async def test_two_calls_at_once_keep_their_own_unsaved_forms(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.store.create_contact(name="Bob Customer", numbers=[CALLER])
        page = await logged_in(browser, env)
        first, first_rest = ringing_part(load_trace(QUEUE_TRACE))
        await env.ami.replay_trace(first)
        await expect(page.locator("#contact-name")).to_have_text("Bob Customer")
        await page.fill("#outcome-notes", "first caller: wants the invoice")
        await page.select_option("#outcome", "support")

        # A second call rings while the agent writes: it gets its own tab, and the form being
        # written stays on screen.
        second, _ = ringing_part(second_call())
        await env.ami.replay_trace(second)
        tabs = page.locator(".pop-tab")
        await expect(tabs).to_have_count(2)
        await expect(tabs.nth(0)).to_contain_text("unsaved")
        await expect(page.locator("#outcome-notes")).to_have_value(
            "first caller: wants the invoice"
        )
        await expect(page.locator("#pop-number")).to_have_text(CALLER)
        await shot(page, "desk-two-pops")

        await page.locator(f".pop-tab:has-text('{SECOND_CALLER}')").click()
        await expect(page.locator("#pop-number")).to_have_text(SECOND_CALLER)
        await expect(page.locator("#outcome-notes")).to_have_value("")
        await expect(page.locator("#outcome")).to_have_value("")  # nothing pre-selected
        await page.fill("#outcome-notes", "second caller")

        await page.locator(f".pop-tab:has-text('{CALLER}')").first.click()
        await expect(page.locator("#outcome-notes")).to_have_value(
            "first caller: wants the invoice"
        )
        await expect(page.locator("#outcome")).to_have_value("support")
        # The first call ends; its pop and form stay until saved.
        await env.ami.replay_trace(first_rest)
        await env.drain()
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ended")
        await page.keyboard.press("Alt+Shift+S")  # the save shortcut
        await expect(page.locator("#outcome-status")).to_have_text("Saved.")
        await expect(tabs.nth(0)).to_contain_text("saved")
        calls, _total = await env.store.list_calls(agent="1001", limit=5)
        assert any(c.outcome == "support" for c in calls)
        await page.keyboard.press("Alt+Shift+N")
        await expect(page.locator("#outcome-notes")).to_have_value("second caller")


async def test_the_wrap_up_form_survives_a_reload(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        await env.ami.replay_trace(QUEUE_TRACE)  # the whole call: rung, answered, ended
        await env.drain()
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ended")
        await expect(page.locator("#outcome")).to_have_value("")
        await page.select_option("#outcome", "call-back")
        await page.fill("#outcome-notes", "call back on Monday")
        await page.fill("#follow-up", "2026-12-07")
        call_id = await page.locator("#pop").get_attribute("data-call-id")

        await page.reload()
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
        await expect(page.locator("#pop")).to_be_visible()
        await expect(page.locator("#pop")).to_have_attribute("data-call-id", call_id or "")
        await expect(page.locator("#pop-number")).to_have_text(CALLER)
        await expect(page.locator("#outcome")).to_have_value("call-back")
        await expect(page.locator("#outcome-notes")).to_have_value("call back on Monday")
        await expect(page.locator("#follow-up")).to_have_value("2026-12-07")
        await expect(page.locator("#draft-note")).to_be_visible()
        key = f"centralita.wrapup.1001.{call_id}"
        assert await page.evaluate(f"localStorage.getItem({json.dumps(key)}) !== null")
        await shot(page, "desk-wrapup-after-reload")

        await page.click("#outcome-save")
        await expect(page.locator("#outcome-status")).to_have_text("Saved.")
        assert await page.evaluate(f"localStorage.getItem({json.dumps(key)})") is None
        # Dismissed, it is gone for good, also after a reload.
        await page.click("#outcome-dismiss")
        await expect(page.locator("#idle")).to_be_visible()
        await page.reload()
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
        await expect(page.locator("#idle")).to_be_visible()
        await expect(page.locator("#pop")).to_be_hidden()


async def test_a_call_that_ended_while_the_page_was_away_shows_ended(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        ringing, rest = ringing_part(load_trace(QUEUE_TRACE))
        await env.ami.replay_trace(ringing)
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ringing")
        await page.fill("#outcome-notes", "asked for a quote")
        await page.goto("about:blank")  # the agent left the console
        await env.ami.replay_trace(rest)  # meanwhile the call ended
        await env.drain()
        await page.goto(env.url)
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
        # The kept pop comes back; the server no longer has its call, so it is over.
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ended")
        await expect(page.locator("#pop-state")).to_have_text("Ended")
        await expect(page.locator("#outcome-notes")).to_have_value("asked for a quote")


async def test_an_outcome_is_required_before_saving(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        await env.ami.replay_trace(QUEUE_TRACE)
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ended")
        await page.fill("#outcome-notes", "no outcome chosen")
        await page.click("#outcome-save")
        await expect(page.locator("#outcome-status")).to_have_text("Choose an outcome first.")
        await expect(page.locator("#outcome")).to_be_focused()


# ----------------------------------------------------------------------------- /calls


async def test_an_outcome_is_added_later_from_calls(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.ami.replay_trace(QUEUE_TRACE)
        await env.drain()
        page = await logged_in(browser, env)
        await page.goto(env.url + "calls?agent=1001")
        row = page.locator("#calls-table tbody tr").first
        await expect(row.locator(".outcome")).to_have_text("")
        await row.locator(".outcome-edit").click()
        await expect(page.locator("#outcome-dialog")).to_be_visible()
        await expect(page.locator("#calls-outcome")).to_have_value("")
        await page.select_option("#calls-outcome", "sale")
        await page.fill("#calls-notes", "signed after the call")
        await shot(page, "desk-calls-outcome-dialog")
        await page.click("#calls-outcome-save")
        await expect(page.locator("#outcome-dialog")).to_be_hidden()
        await expect(row.locator(".outcome")).to_have_text("sale")
        await page.reload()
        await expect(row.locator(".outcome")).to_have_text("sale")
        await expect(row.locator(".notes")).to_have_text("signed after the call")
        await expect(row.locator(".outcome-edit")).to_have_text("Correct outcome")


# ----------------------------------------------------------------------------- languages


async def test_arabic_is_right_to_left(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.store.create_contact(name="بوب العميل", company="ACME", numbers=[CALLER])
        # 1001 is configured with language = "ar": the console opens in Arabic.
        page = await logged_in(browser, env, language=None)
        html = page.locator("html")
        await expect(html).to_have_attribute("lang", "ar")
        await expect(html).to_have_attribute("dir", "rtl")
        await expect(page.locator("#outcome-save")).to_contain_text("حفظ النتيجة")
        await expect(page.locator("#ws-state")).to_contain_text("متصل")
        ringing, _ = ringing_part(load_trace(QUEUE_TRACE))
        await env.ami.replay_trace(ringing)
        await expect(page.locator("#pop-state")).to_have_text("يرن")
        await expect(page.locator("#contact-name")).to_have_text("بوب العميل")
        # Mirrored: the brand at the right edge, the agent's name and menu on the left.
        brand = await page.locator(".brand").bounding_box()
        me = await page.locator(".me").bounding_box()
        assert brand and me and brand["x"] > me["x"]
        # The call column comes first, so it is on the right.
        call = await page.locator(".call-card").bounding_box()
        wrapup = await page.locator("#outcome-form").bounding_box()
        assert call and wrapup and call["x"] > wrapup["x"]
        await shot(page, "desk-arabic-rtl")
        await page.goto(env.url + "calls")
        await expect(page.locator("h1")).to_have_text("المكالمات")
        await shot(page, "desk-arabic-calls")


async def test_the_agent_changes_the_language(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        await page.select_option("#ui-language", "fr")
        await expect(page.locator("html")).to_have_attribute("lang", "fr")
        await expect(page.locator("#outcome-save")).to_contain_text("Enregistrer le résultat")
        await expect(page.locator("#ws-state")).to_contain_text("Centralita : connecté")
        await shot(page, "desk-french")
        # The choice follows the agent to another browser.
        other = await browser.new_page()
        await other.goto(env.url + "login")
        await other.fill("#extension", "1001")
        await other.fill("#password", "correct horse battery")
        await other.click("#login-button")
        await expect(other.locator("html")).to_have_attribute("lang", "fr")


async def test_the_login_page_follows_the_browser_language(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        context = await browser.new_context(locale="fr-FR")
        page = await context.new_page()
        await page.goto(env.url + "login")
        await expect(page.locator("html")).to_have_attribute("lang", "fr")
        await expect(page.locator("#login-button")).to_have_text("Se connecter")
        await page.fill("#extension", "1001")
        await page.fill("#password", "wrong")
        await page.click("#login-button")
        await expect(page.locator("#login-error")).to_contain_text(
            "poste ou mot de passe incorrect"
        )
        await shot(page, "desk-login-french")
        await page.goto(env.url + "login?lang=ar")
        await expect(page.locator("html")).to_have_attribute("dir", "rtl")
        await shot(page, "desk-login-arabic")
        await context.close()


# ----------------------------------------------------------------------------- tablet


async def test_the_console_fits_a_768_px_tablet(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.store.create_contact(name="Bob Customer", company="ACME", numbers=[CALLER])
        page = await browser.new_page(viewport={"width": 768, "height": 1024})
        page = await logged_in(browser, env, page=page)
        ringing, _ = ringing_part(load_trace(QUEUE_TRACE))
        await env.ami.replay_trace(ringing)
        await expect(page.locator("#contact-name")).to_have_text("Bob Customer")
        # Nothing wider than the screen, and the parts stacked in one column.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 768, width
        call = await page.locator(".call-card").bounding_box()
        wrapup = await page.locator("#outcome-form").bounding_box()
        assert call and wrapup and wrapup["y"] > call["y"] and abs(wrapup["x"] - call["x"]) < 2
        # Large click targets: every button at least 36 px high.
        heights = await page.evaluate(
            "Array.from(document.querySelectorAll('button, .button, select'))"
            ".filter(b => b.offsetParent !== null)"
            ".map(b => [b.id || b.className, b.getBoundingClientRect().height])"
        )
        small = [(name, h) for name, h in heights if h < 36]
        assert not small, small
        await shot(page, "desk-tablet-768")
        await page.goto(env.url + "calls")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 768, width
        await shot(page, "desk-tablet-calls")


# ----------------------------------------------------------------------------- axe-core


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    await page.evaluate(AXE.read_text(encoding="utf-8"))
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


async def test_axe_finds_no_serious_violations(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.store.create_contact(name="Bob Customer", numbers=[CALLER])
        await env.store.add_callback(
            callerid="600111222",
            language="en",
            queue="support-en",
            number="600111222",
            alternative="600111333",
            uniqueid="1.5",
        )
        await env.store.add_rating(
            callerid="600333444", agent="1002", queue="support-en", rating=2, call_id="1.6"
        )
        # axe is injected by evaluate; the page's CSP (script-src 'self') stays as served.
        page = await logged_in(browser, env)
        ringing, _ = ringing_part(load_trace(QUEUE_TRACE))
        await env.ami.replay_trace(ringing)
        await expect(page.locator("#contact-name")).to_have_text("Bob Customer")
        found: dict[str, Any] = {}
        found["console"] = await axe_violations(page)
        for path in ("calls", "callbacks", "complaints"):
            await page.goto(env.url + path)
            found[path] = await axe_violations(page)
        await page.goto(env.url + "calls")
        found["calls dialog"] = []
        if await page.locator(".outcome-edit").count():
            await page.locator(".outcome-edit").first.click()
            found["calls dialog"] = await axe_violations(page)
        arabic = await logged_in(browser, env, language="ar")
        found["console ar"] = await axe_violations(arabic)
        assert all(not v for v in found.values()), json.dumps(found, indent=1)
        # The check can fail: a field without a label is a critical violation for axe.
        await arabic.evaluate(
            "document.querySelector('main').appendChild(document.createElement('input'))"
        )
        assert [v["id"] for v in await axe_violations(arabic)] == ["label"]
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "desk-axe.json").write_text(json.dumps(found, indent=1), encoding="utf-8")


# ----------------------------------------------------------------------------- seed helpers


async def seed_history(env: WebEnv) -> None:
    """Three earlier calls from CALLER, two with outcomes (one by another agent)."""
    from centralita.store import CallRecord

    for i, (agent, outcome, notes) in enumerate(
        [
            ("1001", "sale", "bought the blue plan"),
            ("1002", "support", "router reset"),
            ("1001", "", ""),
        ]
    ):
        start = datetime(2026, 11, 20 + i, 10, 0, 0)
        uniqueid = f"1795200000.{i}"
        await env.store.upsert_cdr(
            CallRecord(
                uniqueid=uniqueid,
                linkedid=uniqueid,
                src=CALLER,
                dst="300",
                dcontext="queue-sip",
                clid=CALLER,
                channel=f"SIP/trunk-{i}",
                dstchannel=f"SIP/{agent}-0000000{i}",
                lastapp="Queue",
                start=start,
                answer=start,
                end=start,
                duration=95,
                billsec=90,
                disposition="ANSWERED",
            )
        )
        if outcome:
            await env.store.save_outcome(
                call_id=uniqueid, agent=agent, outcome=outcome, notes=notes
            )
