"""/reports in headless Chromium: a week of calls with its three charts drawn by the vendored
Chart.js, the tables behind them, axe-core, and the Arabic page (right to left). Screenshots
go to `artifacts/reports-*.png`. Without /usr/bin/chromium these tests skip."""

from __future__ import annotations

import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import CHROMIUM
from test_browser_desk import axe_violations
from test_reports import at
from test_web_support import PASSWORD, WebEnv, console_env

from centralita.agentprefs import save_preferences
from centralita.store import Store
from centralita.store.queue_events import PauseChange, QueueCallUpdate, QueueEvent

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SUPERVISOR = "1001"
MONDAY = date(2026, 3, 9)

if not Path(CHROMIUM).exists():
    pytest.skip(
        "chromium is not installed: run `apt-get install -y chromium` (Debian) to run the "
        "browser tests",
        allow_module_level=True,
    )

from playwright.async_api import Browser, Page, expect  # noqa: E402


async def a_week_of_calls(store: Store) -> int:
    """Five working days of calls (busier mid-morning and mid-afternoon, a bad Wednesday),
    pauses, callbacks and survey ratings. Returns how many calls joined a queue."""
    rnd = random.Random(7)
    events: list[QueueEvent] = []
    joined = 0
    for offset in range(5):
        day = MONDAY + timedelta(days=offset)
        slow = 2.5 if offset == 2 else 1.0
        for hour in range(8, 20):
            busy = 14 - abs(hour - 11) * 2 if hour < 14 else 12 - abs(hour - 16) * 2
            for n in range(max(2, busy)):
                queue = rnd.choice(["support-en", "support-en", "support-fr", "support-ar"])
                wait = int(rnd.expovariate(1 / (12 * slow)))
                uniqueid = f"{day.isoformat()}-{hour}-{n}"
                when = at(hour, rnd.randrange(60), day)
                joined += 1
                if rnd.random() < 0.12 * slow:
                    events.append(
                        QueueCallUpdate(uniqueid, queue, "abandoned", when, 20, wait_s=wait)
                    )
                else:
                    agent = rnd.choice(["1001", "1002", "1003"])
                    talk = int(rnd.expovariate(1 / 150))
                    events.append(
                        QueueCallUpdate(
                            uniqueid, queue, "answered", when, 20, wait_s=wait, talk_s=talk,
                            agent=agent,
                        )
                    )  # fmt: skip
        for agent, reason, hour, minutes in (
            ("1002", "lunch", 13, 45),
            ("1003", "lunch", 14, 30),
            ("1002", "training", 16, 25),
            ("1003", "break", 10, 15),
        ):
            events.append(PauseChange(agent, True, at(hour, 0, day), reason))
            events.append(PauseChange(agent, False, at(hour, minutes, day)))
    await store.write_queue_events(events)
    for n in range(60):
        rating = min(10, max(0, round(rnd.gauss(7.5, 2.2))))
        agent = rnd.choice(["1001", "1002", "1003"])
        await store.add_rating(
            callerid="600", agent=agent, queue="support-en", rating=rating, call_id=f"r{n}"
        )
    for n in range(8):
        await store.add_callback(
            callerid="600",
            language="en",
            queue=rnd.choice(["support-en", "support-fr"]),
            number=f"60011122{n}",
            alternative="",
            uniqueid=f"cb{n}",
            status="done" if n % 3 else "pending",
        )
    # The survey and callback flows stamp their rows with the time they are written: move
    # them into the week.
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE ratings SET created_at = ?", (at(15, 0, MONDAY + timedelta(days=1)),))
        db.execute("UPDATE callbacks SET created_at = ?", (at(11, 0, MONDAY + timedelta(days=3)),))
    # Moved behind the store's back: its report totals are recounted.
    await store.rebuild_report_tables()
    return joined


async def reports_page(browser: Browser, env: WebEnv, language: str) -> Page:
    await save_preferences(
        env.store, SUPERVISOR, {"ui_language": language}, default_language=language
    )
    await env.store.set_agent_password(SUPERVISOR, PASSWORD)
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(env.url + "login")
    await page.fill("#extension", SUPERVISOR)
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    await page.click("a[href='/reports']")
    # The period picker: a week, the one that holds the Wednesday.
    await page.select_option("#r-period", "week")
    await page.fill("#r-date", (MONDAY + timedelta(days=2)).isoformat())
    await page.click("#report-form button[type=submit]")
    await expect(page.locator("body")).to_have_attribute("data-charts", "drawn")
    assert errors == [], errors  # no script error, nothing refused by the CSP
    return page


async def painted(page: Page, canvas: str) -> int:
    """How many pixels of a chart's canvas are not blank."""
    count = await page.evaluate(
        """(id) => {
            const c = document.getElementById(id);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n;
        }""",
        canvas,
    )
    return int(count)


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"reports-{name}.png"), full_page=True)


async def test_a_week_report_with_its_charts(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path) as env:
        store = env.store
        assert isinstance(store, Store)
        joined = await a_week_of_calls(store)
        page = await reports_page(browser, env, "en")
        await expect(page.locator("h1")).to_have_text("Reports")
        await expect(page.locator("#report-period")).to_have_text("Week of 2026-03-09")
        await expect(page.locator("#kpi-offered")).to_have_text(f"{joined:,}")
        for canvas in ("chart-hours", "chart-sl", "chart-ratings"):
            assert await painted(page, canvas) > 2000, canvas
            # Each chart is an image named by its title, its figures a table away.
            labelled_by = await page.get_attribute(f"#{canvas}", "aria-labelledby")
            await expect(page.locator(f"#{labelled_by}")).not_to_be_empty()
        # The service level over time: one point per day of the week.
        rows = page.locator(".chart:nth-child(2) tbody tr")
        await expect(rows).to_have_count(7)
        await expect(page.locator("#queues-table tbody tr")).to_have_count(3)
        await expect(page.locator("#agents-table tbody tr")).to_have_count(3)
        await expect(page.locator("#pauses-table tbody tr")).to_have_count(4)
        await shot(page, "week")
        # The charts' tables open for those who would rather read.
        await page.click("#chart-hours-table-note")
        await expect(page.locator(".chart:nth-child(1) table")).to_be_visible()
        found = await axe_violations(page)
        assert found == [], found
        # A CSV of each table, for this period.
        href = await page.locator(".section-head a").first.get_attribute("href")
        assert href == "/reports/queues.csv?period=week&date=2026-03-09"
        async with page.expect_download() as download_info:
            await page.click(f"a[href='{href}']")
        download = await download_info.value
        saved = tmp_path / "queues.csv"
        await download.save_as(saved)
        lines = saved.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("queue,offered,answered,abandoned")
        assert lines[-1].startswith(f"all,{joined},")
        # The day view: the previous and next links walk by the period's kind.
        await page.select_option("#r-period", "day")
        await page.fill("#r-date", "2026-03-11")
        await page.click("#report-form button[type=submit]")
        await expect(page.locator("#report-period")).to_have_text("Day 2026-03-11")
        await expect(page.locator("body")).to_have_attribute("data-charts", "drawn")
        await shot(page, "day")
        await page.click("a[rel=next]")
        await expect(page.locator("#report-period")).to_have_text("Day 2026-03-12")


async def test_the_report_in_arabic(tmp_path: Path, browser: Browser) -> None:
    async with console_env(tmp_path) as env:
        store = env.store
        assert isinstance(store, Store)
        await a_week_of_calls(store)
        page = await reports_page(browser, env, "ar")
        await expect(page.locator("html")).to_have_attribute("dir", "rtl")
        await expect(page.locator("h1")).to_have_text("التقارير")
        await expect(page.locator("#queues-title")).to_have_text("الطوابير")
        for canvas in ("chart-hours", "chart-sl", "chart-ratings"):
            assert await painted(page, canvas) > 2000, canvas
        # Right to left: the first column of a table is at the right.
        table = await page.locator("#queues-table").bounding_box()
        first = await page.locator("#queues-table thead th").first.bounding_box()
        assert table is not None and first is not None
        assert first["x"] + first["width"] > table["x"] + table["width"] - 5
        found = await axe_violations(page)
        assert found == [], found
        await shot(page, "week-ar")
