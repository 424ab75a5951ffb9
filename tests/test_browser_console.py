"""The console in headless Chromium (Playwright driving Debian's `chromium`).

The real app runs on loopback with the fake AMI replaying asterisk-traces/ami-queue-sip-call.txt
(agent 1001 on `SIP/1001`, so the config uses sip_driver = "sip"). Screenshots go to
`artifacts/`. Without /usr/bin/chromium these tests skip: `apt-get install -y chromium`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CHROMIUM
from test_web_support import PASSWORD, TRACES, WebEnv, console_env

from ami.testing import load_trace, rewrite
from dialplan.names import OUTBOUND_CONTEXT

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
QUEUE_TRACE = TRACES / "ami-queue-sip-call.txt"
CALLER = "+34915550123"

if not Path(CHROMIUM).exists():
    pytest.skip(
        "chromium is not installed: run `apt-get install -y chromium` (Debian) to run the "
        "browser tests",
        allow_module_level=True,
    )

from playwright.async_api import Browser, Page, expect  # noqa: E402


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def logged_in(
    browser: Browser,
    env: WebEnv,
    extension: str = "1001",
    *,
    language: str | None = "en",
    page: Page | None = None,
) -> Page:
    """A page where `extension` logged in through the form, its socket connected, and the
    console in `language` (None: the agent's configured language; 1001's is Arabic)."""
    await env.store.set_agent_password(extension, PASSWORD)
    if page is None:
        page = await browser.new_page()
    page.set_default_timeout(10_000)
    await page.goto(env.url + "login")
    await page.fill("#extension", extension)
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    # A loaded machine (the whole suite, other jobs) may take a few seconds to open it.
    await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open", timeout=15_000)
    if language is not None and await page.locator("html").get_attribute("lang") != language:
        csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
        answer = await page.request.post(
            env.url + "api/me/preferences",
            data={"ui_language": language},
            headers={"X-CSRF-Token": csrf or ""},
        )
        assert answer.ok, await answer.text()
        await page.reload()
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(page.locator("#ws-state")).to_have_attribute(
            "data-state", "open", timeout=15_000
        )
    await env.wait_sockets(extension)
    return page


async def test_agent_logs_in_and_a_queue_call_pops_with_the_contact(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True, crm=True) as env:
        await env.wait_ami()
        await env.store.create_contact(name="Bob Customer", company="ACME", numbers=[CALLER])
        # A wrong password first: the form says so and no session starts.
        await env.store.set_agent_password("1001", PASSWORD)
        page = await browser.new_page()
        await page.goto(env.url)
        assert page.url.endswith("/login")
        await page.fill("#extension", "1001")
        await page.fill("#password", "wrong")
        await page.click("#login-button")
        await expect(page.locator("#login-error")).to_contain_text("wrong extension or password")
        await page.close()

        page = await logged_in(browser, env)
        await expect(page.locator("#me")).to_contain_text("Amira Haddad")
        events = load_trace(QUEUE_TRACE)
        # Up to AgentCalled: the call rings at 1001 (and is not answered yet).
        ringing_end = 1 + next(i for i, m in enumerate(events) if m.name == "AgentCalled")
        await env.ami.replay_trace(events[:ringing_end])
        await expect(page.locator("#pop")).to_be_visible()
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ringing")
        await expect(page.locator("#contact-name")).to_have_text("Bob Customer")
        await expect(page.locator("#contact-company")).to_have_text("ACME")
        await expect(page.locator("#pop-number")).to_have_text(CALLER)
        await expect(page.locator("#pop-queue")).to_have_text("queue support-sip")
        await expect(page.locator("#pop-crm")).to_have_attribute(
            "href", "https://crm.example.com/contacts?phone=%2B34915550123"
        )
        await shot(page, "pop-ringing")
        await env.ami.replay_trace(events[ringing_end:])
        await expect(page.locator("#pop")).to_have_attribute("data-state", "ended")
        await expect(page.locator("#pop-state")).to_have_text("Ended")
        await shot(page, "pop-ended")


async def test_two_contacts_on_one_number_the_agent_picks_one(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.store.create_contact(name="Bob Customer", numbers=[CALLER])
        alice = await env.store.create_contact(
            name="Alice Customer", company="Bob's wife", numbers=["915550123"]
        )
        page = await logged_in(browser, env)
        await env.ami.replay_trace(QUEUE_TRACE)
        choices = page.locator("#choose-list button.choose-contact")
        await expect(choices).to_have_count(2)
        await expect(choices.nth(0)).to_have_text("Alice Customer (Bob's wife)")
        await expect(choices.nth(1)).to_have_text("Bob Customer")
        await shot(page, "pop-choose")
        await choices.nth(0).click()
        await expect(page.locator("#contact-name")).to_have_text("Alice Customer")
        await expect(page.locator("#pop")).to_have_attribute("data-contact-id", str(alice.id))
        await expect(page.locator("#pop-choose")).to_be_hidden()


async def test_unknown_number_is_saved_as_a_new_contact(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        page = await logged_in(browser, env)
        await env.ami.replay_trace(QUEUE_TRACE)
        await expect(page.locator("#pop-unknown")).to_be_visible()
        await expect(page.locator("#unknown-text")).to_contain_text("Unknown number")
        await page.fill("#new-name", "Bob Newcomer")
        await page.fill("#new-company", "Newco")
        await page.click("#new-save")
        await expect(page.locator("#contact-name")).to_have_text("Bob Newcomer")
        await expect(page.locator("#contact-numbers button")).to_have_text(CALLER)
        await shot(page, "pop-new-contact")
        (saved,) = await env.store.contacts_for_number(CALLER)
        assert (saved.name, saved.company, saved.numbers) == ("Bob Newcomer", "Newco", (CALLER,))


async def test_outcome_is_saved_and_shows_in_calls(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.store.create_contact(name="Bob Customer", numbers=[CALLER])
        page = await logged_in(browser, env)
        await env.ami.replay_trace(QUEUE_TRACE)
        await env.drain()
        await expect(page.locator("#contact-name")).to_have_text("Bob Customer")
        await page.select_option("#outcome", "call-back")
        await page.fill("#outcome-notes", "wants a quote <b>by Friday</b>")
        await page.fill("#follow-up", "2026-12-04")
        await page.click("#outcome-save")
        await expect(page.locator("#outcome-status")).to_have_text("Saved.")
        await page.goto(env.url + "calls?agent=1001")
        row = page.locator("#calls-table tbody tr").first
        await expect(row.locator(".outcome")).to_have_text("call-back")
        await expect(row.locator(".notes")).to_have_text("wants a quote <b>by Friday</b>")
        await expect(row.locator(".follow-up")).to_have_text("2026-12-04")
        await expect(row.locator(".contact-name")).to_have_text("Bob Customer")
        await shot(page, "calls-with-outcome")


async def test_click_to_dial_sends_a_well_formed_originate(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.store.add_callback(
            callerid="600111222",
            language="en",
            queue="support-en",
            number="600111222",
            alternative="",
            uniqueid="1.5",
        )
        page = await logged_in(browser, env)
        await page.goto(env.url + "callbacks")
        await page.click('button.dial[data-number="600111222"]')
        await expect(page.locator("#dial-status")).to_have_text("Call to 600111222: answered")
        (action,) = env.ami.actions_named("Originate")
        headers = dict(action.headers)
        assert headers["Channel"] == "SIP/1001"
        assert headers["Context"] == OUTBOUND_CONTEXT
        assert headers["Exten"] == "600111222"
        assert headers["Priority"] == "1"
        assert headers["CallerID"] == "<0777>"
        assert headers["Async"] == "true"
        assert action.get_all("Variable") == ["CENTRALITA_DIAL=600111222"]
        await shot(page, "click-to-dial")
        # From the console's dial box too, and a bad number never reaches AMI.
        await page.goto(env.url)
        # ("555 0001" was refused before issue 11: spaces are cleaned now; a letter is not.)
        await page.fill("#dial-number", "555 000x")
        await page.click("#dial-button")
        await expect(page.locator("#dial-status")).to_contain_text("may only contain digits")
        assert len(env.ami.actions_named("Originate")) == 1


async def test_private_caller_with_a_hostile_name_gets_a_search_by_name(
    tmp_path: Path, browser: Browser
) -> None:
    hostile = '<img src=x onerror="document.title=1">'
    events = rewrite(load_trace(QUEUE_TRACE), {CALLER: "<unknown>", "Bob Customer": hostile})
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        await env.store.create_contact(name="Bob Customer", numbers=[CALLER])
        page = await logged_in(browser, env)
        title = await page.title()
        await env.ami.replay_trace(events)
        await expect(page.locator("#pop-unknown")).to_be_visible()
        # The stranger's name is shown as text: no element made of it, no script run.
        await expect(page.locator("#pop-name")).to_have_text(hostile)
        assert await page.locator("#pop img").count() == 0
        assert await page.title() == title
        await expect(page.locator("#pop-number")).to_have_text("private number")
        await expect(page.locator("#unknown-text")).to_contain_text("Private number")
        await expect(page.locator("#new-contact-form")).to_be_hidden()
        await page.fill("#search-q", "bob")
        await page.click("#search-button")
        result = page.locator("#search-results button.link-contact")
        await expect(result).to_have_text("This is Bob Customer")
        await result.click()
        await expect(page.locator("#contact-name")).to_have_text("Bob Customer")
        await shot(page, "pop-private-search")
