"""Callbacks as work (issue 12) in headless Chromium: a supervisor assigns a callback on
/callbacks, the agent's console counts it at once (pushed on /ws), the agent calls back
(the fake AMI answers the Originate), the attempt shows, and the agent closes it with a note
that the supervisor then reads. In English, French and Arabic, with axe-core on both pages.
Screenshots go to `artifacts/callbacks-*.png`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM
from test_browser_console import ARTIFACTS, logged_in, shot
from test_browser_desk import axe_violations
from test_web_support import WebEnv, console_env

from dialplan.names import OUTBOUND_CONTEXT

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.async_api import Browser, Page, expect  # noqa: E402

SUPERVISOR = "1001"
AGENT = "1002"


async def seed(env: WebEnv) -> tuple[int, int]:
    first = await env.store.add_callback(
        callerid='"Nadia Benali" <600111222>',
        language="fr",
        queue="support-fr",
        number="600111222",
        alternative="915550123",
        uniqueid="1700000000.1",
    )
    second = await env.store.add_callback(
        callerid="699000111",
        language="ar",
        queue="support-ar",
        number="699000111",
        alternative="",
        uniqueid="1700000000.2",
    )
    return first.id, second.id


async def assign(page: Page, callback: int, agent: str) -> None:
    """Assign on /callbacks as a supervisor does: the row's select, then its button."""
    row = page.locator(f"#callback-{callback}")
    await row.locator("select[name=agent]").select_option(agent)
    await row.locator(".assign-form button[type=submit]").click()
    await expect(page.locator(f"#callback-{callback} select[name=agent]")).to_have_value(agent)


async def test_a_supervisor_assigns_and_the_agent_calls_back_and_closes(
    tmp_path: Path, browser: Browser
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        first, second = await seed(env)
        agent = await logged_in(browser, env, AGENT)
        await expect(agent.locator("#callbacks-count")).to_have_text("0")
        await expect(agent.locator("#callbacks-empty")).to_be_visible()
        boss = await logged_in(browser, env, SUPERVISOR)
        await boss.goto(env.url + "callbacks?status=pending")
        await expect(boss.locator("#callbacks-table tbody tr")).to_have_count(2)
        await shot(boss, "callbacks-supervisor-before")

        await assign(boss, first, AGENT)
        # The agent's console counts it without a reload: pushed on their /ws.
        await expect(agent.locator("#callbacks-count")).to_have_text("1")
        await expect(agent.locator("#callbacks-link")).to_have_attribute("data-count", "1")
        await expect(agent).to_have_title("(1) Centralita: console")
        item = agent.locator(f"#my-callback-{first}")
        await expect(item.locator(".callback-number")).to_have_text("600111222")
        await expect(item.locator(".callback-language")).to_have_text("Language: fr")
        await expect(item.locator(".callback-queue")).to_have_text("Queue: support-fr")
        await expect(item.locator(".callback-when")).to_contain_text("Asked ")
        await expect(item.locator("[data-which=alternative]")).to_contain_text("915550123")
        await assign(boss, second, AGENT)
        await expect(agent.locator("#callbacks-count")).to_have_text("2")
        await expect(agent.locator(".callback-item")).to_have_count(2)
        await shot(agent, "callbacks-agent-assigned")

        # One click calls back through the click-to-dial path; the fake AMI answers.
        await item.locator("[data-which=number]").click()
        await expect(item.locator(".attempt .tag")).to_have_text("answered")
        await expect(agent.locator("#dial-status")).to_have_text("Call to 600111222: answered")
        [originate] = env.ami.actions_named("Originate")
        headers = dict(originate.headers)
        assert (headers["Channel"], headers["Context"], headers["Exten"]) == (
            "SIP/1002",
            OUTBOUND_CONTEXT,
            "600111222",
        )
        [attempt] = await env.store.list_callback_attempts([first])
        assert (attempt.agent, attempt.result) == (AGENT, "answered")
        await shot(agent, "callbacks-agent-called")

        # Closed with a note: gone from the panel, the count and the title follow.
        await item.locator("textarea").fill("Called back: the order is fixed.")
        await item.locator(".close-done").click()
        await expect(agent.locator(".callback-item")).to_have_count(1)
        await expect(agent.locator("#callbacks-count")).to_have_text("1")
        await expect(agent).to_have_title("(1) Centralita: console")
        closed = await env.store.get_callback(first)
        assert closed is not None
        assert (closed.status, closed.closed_by, closed.note) == (
            "done",
            AGENT,
            "Called back: the order is fixed.",
        )

        # The supervisor sees who closed it, the note and the attempt.
        await boss.goto(env.url + "callbacks?status=done")
        row = boss.locator(f"#callback-{first}")
        await expect(row.locator(".closed-note")).to_have_text("Called back: the order is fixed.")
        await expect(row.locator(".closed-by")).to_contain_text("by John Smith")
        await expect(row.locator(".attempt .tag")).to_have_text("answered")
        await expect(row.locator(".attempt-who")).to_contain_text("John Smith")
        await shot(boss, "callbacks-supervisor-done")
        # And cancels the other one with a note, from the page.
        await boss.goto(env.url + "callbacks?status=pending")
        other = boss.locator(f"#callback-{second}")
        await other.locator("summary").click()
        await other.locator("textarea").fill("Customer called in again")
        await other.locator("button[value=cancelled]").click()
        await expect(boss.locator(f"#callback-{second}")).to_have_count(0)
        await expect(agent.locator("#callbacks-count")).to_have_text("0")
        await expect(agent.locator("#callbacks-empty")).to_be_visible()
        await expect(agent).to_have_title("Centralita: console")
        audit = [(a.actor, a.action) for a in await env.store.list_audit()][::-1]
        assert audit == [
            (SUPERVISOR, "callback.assign"),
            (SUPERVISOR, "callback.assign"),
            (AGENT, "callback.call"),
            (AGENT, "callback.done"),
            (SUPERVISOR, "callback.cancel"),
        ]


@pytest.mark.parametrize(
    ("language", "agent_ext"), [("en", "1002"), ("fr", "1003"), ("ar", "1002")]
)
async def test_the_pages_in_each_language_pass_axe(
    tmp_path: Path, browser: Browser, language: str, agent_ext: str
) -> None:
    async with console_env(tmp_path, sip=True) as env:
        await env.wait_ami()
        first, second = await seed(env)
        await env.store.assign_callback(first, agent_ext)
        await env.store.assign_callback(second, agent_ext)
        attempt = await env.store.add_callback_attempt(first, agent=agent_ext, number="600111222")
        assert attempt is not None
        await env.store.finish_callback_attempt(attempt.id, result="no_answer", reason="no answer")
        third = await env.store.add_callback(
            callerid="611222333",
            language="en",
            queue="support-en",
            number="611222333",
            alternative="",
            uniqueid="1700000000.3",
        )
        await env.store.close_callback(third.id, status="done", by=SUPERVISOR, note="Sorted")
        found: dict[str, Any] = {}
        agent = await logged_in(browser, env, agent_ext, language=language)
        await expect(agent.locator(".callback-item")).to_have_count(2)
        await expect(agent.locator("#callbacks-count")).to_have_text("2")
        await expect(agent.locator(".attempt")).to_have_count(1)
        found["console"] = await axe_violations(agent)
        await agent.locator("#my-callbacks").scroll_into_view_if_needed()
        await shot(agent, f"callbacks-agent-{language}")
        boss = await logged_in(browser, env, SUPERVISOR, language=language)
        await boss.goto(env.url + "callbacks")
        await boss.locator(f"#callback-{second} summary").click()
        found["callbacks"] = await axe_violations(boss)
        await shot(boss, f"callbacks-supervisor-{language}")
        if language != "en":
            # Translated, not the English source.
            assert "Assign" not in await boss.locator(f"#callback-{first}").inner_text()
            assert "Call back" not in await agent.locator(f"#my-callback-{first}").inner_text()
        if language == "ar":
            await expect(boss.locator("html")).to_have_attribute("dir", "rtl")
        assert all(not v for v in found.values()), json.dumps(found, indent=1)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"callbacks-axe-{language}.json").write_text(
            json.dumps(found, indent=1), encoding="utf-8"
        )
