"""The agent's own state and tools in headless Chromium: pause with a reason, queue login and
logout (each sent to the fake AMI, and shown only when its events come back), the caller's
history in the pop, and the dial box. Screenshots go to `artifacts/desk-*.png`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM
from test_browser_console import CALLER, QUEUE_TRACE, logged_in, shot
from test_browser_desk import seed_history
from test_web_support import WebEnv, console_env

from ami.fake_queues import FakeQueues
from ami.testing import load_trace, rewrite

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.async_api import Browser, expect  # noqa: E402

# ----------------------------------------------------------------------------- agent state


class HeldEvents:
    """Holds back the member events the fake Asterisk would send after a queue action, so a
    test can see the page before Asterisk confirms (it must not change on its own)."""

    def __init__(self, env: WebEnv) -> None:
        self.env = env
        self.held: list[Any] = []
        self._act = env.ami.queues.act

        def act(msg: Any, devices: Any) -> Any:
            reply, events = self._act(msg, devices)
            self.held.extend(events)
            return reply, []

        env.ami.queues.act = act  # type: ignore[method-assign,assignment]

    async def release(self) -> None:
        events, self.held = self.held, []
        await self.env.ami.push_events(events)


async def test_pause_with_a_reason_goes_to_asterisk_and_comes_back(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        badge = page.locator("#agent-state")
        await expect(badge).to_have_attribute("data-state", "ready")
        await expect(badge).to_contain_text("Ready")
        held = HeldEvents(env)
        await page.select_option("#pause-reason", "lunch")
        await page.click("#pause-button")
        action = await env.ami.wait_for_action("QueuePause")
        headers = dict(action.headers)
        assert headers["Interface"] == "SIP/1001"
        assert headers["Paused"] == "true"
        assert headers["Reason"] == "lunch"
        assert "Queue" not in headers  # every queue of the agent
        # Asterisk took it, but its events are not in yet: the page says so and waits.
        await expect(page.locator("#state-status")).to_have_text("Waiting for Asterisk…")
        await expect(badge).to_have_attribute("data-state", "ready")
        assert held.held and all(e.name == "QueueMemberPause" for e in held.held)
        await held.release()
        await expect(badge).to_have_attribute("data-state", "paused")
        await expect(badge).to_contain_text("Paused: lunch")
        await expect(page.locator("#ready-button")).to_be_visible()
        await expect(page.locator("#pause-button")).to_be_hidden()
        await expect(page.locator(".queue-toggle[data-status='paused']")).to_have_count(2)
        await shot(page, "desk-paused-lunch")

        # Unpaused on the phone (or by a supervisor): a QueueMemberPause from Asterisk alone.
        env.ami.queues.act = held._act  # type: ignore[method-assign]
        events = []
        for name in ("support-ar", "support-en"):
            queue = env.ami.queues.queue(name)
            member = env.ami.queues.member(name, "SIP/1001")
            assert queue is not None and member is not None
            member.paused, member.reason = False, ""
            events.append(FakeQueues.member_event("QueueMemberPause", queue, member))
        await env.ami.push_events(events)
        await expect(badge).to_have_attribute("data-state", "ready")
        await expect(page.locator("#pause-button")).to_be_visible()

        # The keyboard: Alt+Shift+P pauses with the chosen reason.
        await page.select_option("#pause-reason", "training")
        await page.keyboard.press("Alt+Shift+P")
        await expect(badge).to_contain_text("Paused: training")
        await page.keyboard.press("Alt+Shift+P")
        await expect(badge).to_have_attribute("data-state", "ready")
        pauses = [dict(a.headers) for a in env.ami.actions_named("QueuePause")]
        assert [(p["Paused"], p.get("Reason", "")) for p in pauses[1:]] == [
            ("true", "training"),
            ("false", ""),
        ]


async def test_a_pause_refused_while_asterisk_is_away_changes_nothing(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        await expect(page.locator("#agent-state")).to_have_attribute("data-state", "ready")
        await env.ami.stop()
        # The listener notices the closed socket at once, or at its next ping at the latest.
        await expect(page.locator("#ami-state")).to_have_attribute(
            "data-state", "closed", timeout=15_000
        )
        await expect(page.locator("#ami-state")).to_contain_text("Asterisk: away")
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
        # Its last state is not shown as if it were current, and nothing can be asked of it.
        await expect(page.locator("#agent-state")).to_have_attribute("data-state", "unknown")
        await expect(page.locator("#agent-state")).to_contain_text("Asterisk is away")
        await expect(page.locator("#pause-button")).to_be_disabled()
        # A pause sent anyway (another tab, a script) is refused and changes nothing.
        csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
        answer = await page.request.post(
            env.url + "api/me/pause",
            data={"paused": True, "reason": "lunch"},
            headers={"X-CSRF-Token": csrf or ""},
        )
        assert answer.status == 503
        assert env.ami.actions_named("QueuePause") == []
        await expect(page.locator("#agent-state")).not_to_have_attribute("data-state", "paused")
        await shot(page, "desk-asterisk-away")


async def test_queue_logout_and_login(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        french = page.locator(".queue-toggle[data-queue='support-fr']")
        await expect(french).to_have_attribute("data-member", "false")
        await expect(french).to_contain_text("logged out")
        # The agent's own queues (queues.conf members) are shown, not offered.
        own = page.locator(".queue-toggle[data-queue='support-ar']")
        await expect(own).to_have_attribute("data-member", "true")
        assert await own.evaluate("e => e.tagName") == "SPAN"

        held = HeldEvents(env)
        await french.click()
        added = dict((await env.ami.wait_for_action("QueueAdd")).headers)
        assert (added["Queue"], added["Interface"], added["StateInterface"]) == (
            "support-fr",
            "SIP/1001",
            "SIP/1001",
        )
        assert added["MemberName"] == "Amira Haddad"
        await expect(page.locator("#state-status")).to_have_text("Waiting for Asterisk…")
        await expect(french).to_have_attribute("data-member", "false")
        await held.release()
        await expect(french).to_have_attribute("data-member", "true")
        await expect(french).to_contain_text("waiting")
        await shot(page, "desk-queue-login")

        await french.click()
        removed = dict((await env.ami.wait_for_action("QueueRemove")).headers)
        assert (removed["Queue"], removed["Interface"]) == ("support-fr", "SIP/1001")
        await held.release()
        await expect(french).to_have_attribute("data-member", "false")
        await expect(french).to_contain_text("logged out")
        await shot(page, "desk-queue-logout")


# ----------------------------------------------------------------------------- history


async def test_the_pop_shows_the_callers_history_and_pending_callback(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await seed_history(env)
        await env.store.add_callback(
            callerid=CALLER,
            language="en",
            queue="support-en",
            number=CALLER,
            alternative="600111333",
            uniqueid="1795100000.1",
        )
        page = await logged_in(browser, env, extension="1002")  # not a supervisor
        await env.ami.replay_trace(rewrite(load_trace(QUEUE_TRACE), {"SIP/1001": "SIP/1002"}))
        items = page.locator("#history-list .history-item")
        await expect(items).to_have_count(3)
        newest = items.nth(0)  # newest first: the call of the 22nd, no outcome
        await expect(newest.locator(".tag")).to_have_text("no outcome")
        middle = items.nth(1)
        await expect(middle).to_contain_text("support")
        await expect(middle).to_contain_text("router reset")  # 1002's own notes
        await expect(middle).to_contain_text("John Smith")
        oldest = items.nth(2)
        await expect(oldest).to_contain_text("sale")
        # Another agent's notes stay private to a non-supervisor.
        await expect(oldest).to_contain_text("Notes are private")
        await expect(oldest).not_to_contain_text("bought the blue plan")
        await expect(page.locator("#history-all")).to_have_attribute(
            "href", "/calls?customer=%2B34915550123"
        )
        callback = page.locator("#pop-callback")
        await expect(callback).to_contain_text("Pending callback request")
        await expect(callback.locator("button.dial")).to_have_count(2)
        await shot(page, "desk-history")


# ----------------------------------------------------------------------------- dial box


async def test_the_dial_box_shows_the_cleaned_number_and_refuses_text(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        await page.keyboard.press("Alt+Shift+D")
        await expect(page.locator("#dial-number")).to_be_focused()
        await page.keyboard.type("+212 522-000 111")
        await expect(page.locator("#dial-preview")).to_contain_text("Will dial +212")
        await page.keyboard.press("Enter")
        action = await env.ami.wait_for_action("Originate")
        assert dict(action.headers)["Exten"] == "+212522000111"
        await expect(page.locator("#dial-status")).to_contain_text("answered")
        options = page.locator("#recent-numbers option")
        await expect(options).to_have_count(1)
        await expect(options.first).to_have_attribute("value", "+212522000111")
        await page.fill("#dial-number", "call me maybe")
        await expect(page.locator("#dial-preview")).to_have_attribute("data-ok", "false")
        await expect(page.locator("#dial-number")).to_have_attribute("aria-invalid", "true")
        await page.click("#dial-button")
        await expect(page.locator("#dial-status")).to_have_attribute("data-ok", "false")
        assert len(env.ami.actions_named("Originate")) == 1
        await shot(page, "desk-dial-refused")
