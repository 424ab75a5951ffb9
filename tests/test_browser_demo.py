"""The README's quick start in headless Chromium: `make demo`, open the console, log in, a pop.

The test reads the address and the login from the README's words, runs `centralita demo` (what
`make demo` runs, on a free port) and does what the README says. The screenshot goes to
`artifacts/demo-pop.png`. Without /usr/bin/chromium it skips: `apt-get install -y chromium`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import CHROMIUM
from test_browser_console import ARTIFACTS
from test_demo import running_demo

from centralita.demo.player import CALLERS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

if not Path(CHROMIUM).exists():
    pytest.skip(
        "chromium is not installed: run `apt-get install -y chromium` (Debian) to run the "
        "browser tests",
        allow_module_level=True,
    )

from playwright.async_api import Browser, expect  # noqa: E402


def quick_start() -> tuple[str, str, str]:
    """The console address, extension and password, as the README's quick start words them."""
    section = README[README.index("## Quick start") :]
    section = section[: section.index("\n## ", 5)]
    assert "make demo" in section
    words = re.search(
        r"Open (http://\S+) and log in with extension (\d+) and password (\S+)",
        " ".join(section.split()),
    )
    assert words, "the quick start no longer says where to log in"
    url, extension, password = words.groups()
    return url, extension, password.rstrip(".")


async def test_the_readme_quick_start_shows_a_pop(tmp_path: Path, browser: Browser) -> None:
    readme_url, extension, password = quick_start()
    async with running_demo(tmp_path) as demo:
        # The demo prints what the README says (here on another port than 8080).
        port = demo.url.rsplit(":", 1)[1].strip("/")
        assert demo.url == readme_url.replace(":8080/", f":{port}/")
        assert (demo.extension, demo.password) == (extension, password)

        page = await browser.new_page(viewport={"width": 1100, "height": 760})
        page.set_default_timeout(20_000)
        await page.goto(demo.url)
        assert page.url.endswith("/login")
        await page.fill("#extension", extension)
        await page.fill("#password", password)
        await page.click("#login-button")
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
        await expect(page.locator("#me")).to_contain_text("Amira Haddad")
        # Amira works in Arabic (her [[agents]] language); this test reads the English console.
        await page.select_option("#ui-language", "en")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
        # "Within a few seconds a call rings at agent 1001 and the caller's record pops up."
        pop = page.locator("#pop")
        await expect(pop).to_have_attribute("data-state", "ringing", timeout=60_000)
        await expect(page.locator("#pop-queue")).to_have_text("queue support-en")
        number = await page.locator("#pop-number").inner_text()
        assert number in {c.number for c in CALLERS}
        known = {c.number: c.contact for c in CALLERS}
        if known[number]:
            await expect(page.locator("#contact-name")).to_have_text(str(known[number]))
        else:
            await expect(page.locator("#pop-unknown")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "demo-pop.png"), full_page=True)
        await expect(pop).to_have_attribute("data-state", "ended", timeout=60_000)
        await page.close()
