"""/admin in headless Chromium: add a manager, edit an agent's queues, remove a member, a
validation error shown on its field, and a conflict between two browsers. Screenshots go to
`artifacts/admin-*.png`. Without /usr/bin/chromium these tests skip."""

from __future__ import annotations

from pathlib import Path

import pytest
from admin_support import ADMIN, admin_env
from conftest import CHROMIUM
from test_web_support import PASSWORD, WebEnv

from centralita import agents_admin
from centralita.agents_admin import MemberFields
from centralita.settings import load_settings

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

if not Path(CHROMIUM).exists():
    pytest.skip(
        "chromium is not installed: run `apt-get install -y chromium` (Debian) to run the "
        "browser tests",
        allow_module_level=True,
    )

from playwright.async_api import Browser, Page, expect  # noqa: E402


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)


async def admin_page(browser: Browser, env: WebEnv, *, again: bool = False) -> Page:
    """A page where the admin logged in through the form and opened /admin (`again`: a
    second browser, with the password already set: setting it anew ends other sessions)."""
    extension = ADMIN
    if not again:
        await env.store.set_agent_password(extension, PASSWORD)
    page = await browser.new_page()
    page.set_default_timeout(10_000)
    await page.goto(env.url + "login")
    await page.fill("#extension", extension)
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    await page.click("a[href='/admin']")
    await expect(page.locator("h1")).to_have_text("Administration")
    return page


async def test_add_a_manager(tmp_path: Path, browser: Browser) -> None:
    async with admin_env(tmp_path) as env:
        page = await admin_page(browser, env)
        await shot(page, "members")
        await page.click("#add-member")
        await page.fill("input[name=extension]", "1102")
        await page.fill("input[name=name]", "Ana Gil")
        await page.select_option("select[name=role]", "manager")
        await page.fill("input[name=password]", "ana-console-pw")
        await shot(page, "add-manager-form")
        await page.click("#save")
        await expect(page.locator("h1")).to_have_text("Saved: add member 1102")
        await expect(page.locator("#sip-secret")).to_contain_text("SIP secret for 1102")
        await expect(page.locator('pre[data-file="extensions.conf"]')).to_contain_text(
            "+exten => 1102,1,Dial(PJSIP/1102,20,tTxX)"
        )
        await shot(page, "add-manager-saved")
        member = load_settings(env.settings.file).site.member("1102")
        assert member is not None and member.role == "manager"
        await page.click("#back")
        await expect(page.locator("#member-1102")).to_contain_text("manager")
        # The save applied to the running server at once: nothing is pending.
        await expect(page.locator("#pending-changes")).to_have_count(0)
        await expect(page.locator("#member-1102 [data-pending]")).to_have_count(0)
        # A hand edit of the file is listed until applied (centralita.live).
        config = env.settings.file
        assert config is not None
        fields = MemberFields(
            name="Omar Haddad", role="agent", queues=["support-ar"], secret="s" * 12
        )
        text = agents_admin.add_member(config.read_text(encoding="utf-8"), "1103", fields)
        config.write_text(text, encoding="utf-8")
        await page.reload()
        await expect(page.locator("#pending-added")).to_contain_text("1103")
        await expect(page.locator("#member-1103 [data-pending=added]")).to_be_visible()
        await expect(page.locator("#member-1102 [data-pending]")).to_have_count(0)
        await shot(page, "pending-changes")
        await page.click("#apply-file")
        await expect(page.locator("#applied")).to_be_visible()
        await expect(page.locator("#pending-changes")).to_have_count(0)
        await shot(page, "applied")


async def test_edit_an_agents_queues(tmp_path: Path, browser: Browser) -> None:
    async with admin_env(tmp_path) as env:
        page = await admin_page(browser, env)
        await page.click("#member-1002 a.edit")
        await page.check("input[name=queues][value=support-fr]")
        await page.uncheck("input[name=queues][value=support-en]")
        await page.click("#save")
        await expect(page.locator('pre[data-file="queues.conf"]')).to_contain_text(
            "+member => PJSIP/1002,0,John Smith,PJSIP/1002"
        )
        await shot(page, "edit-queues-saved")
        await page.click("#back")
        await expect(page.locator("#member-1002")).to_contain_text("support-fr")
        member = load_settings(env.settings.file).site.member("1002")
        assert member is not None and member.queues == ("support-fr",)


async def test_remove_a_member(tmp_path: Path, browser: Browser) -> None:
    async with admin_env(tmp_path) as env:
        page = await admin_page(browser, env)
        await page.click("#member-1200 form.remove button")
        await expect(page.locator("h1")).to_have_text("Saved: remove member 1200")
        await expect(page.locator('pre[data-file="voicemail.conf"]')).to_contain_text(
            "-1200 => 1200,Layla Nasser"
        )
        await shot(page, "remove-saved")
        await page.click("#back")
        await expect(page.locator("#member-1200")).to_have_count(0)


async def test_a_validation_error_is_shown_on_its_field(tmp_path: Path, browser: Browser) -> None:
    async with admin_env(tmp_path) as env:
        config = env.settings.file
        assert config is not None
        original = config.read_bytes()
        page = await admin_page(browser, env)
        await page.click("#member-1100 a.edit")  # the CEO: a role without queue calls
        await page.check("input[name=queues][value=support-en]")
        await page.click("#save")
        error = page.locator("#error-queues")
        await expect(error).to_contain_text("members[3].queues: role 'ceo' takes no queue calls")
        await expect(page.locator("fieldset[aria-invalid=true]")).to_have_count(1)
        await shot(page, "validation-error")
        assert config.read_bytes() == original


async def test_a_concurrent_edit_is_refused_not_lost(tmp_path: Path, browser: Browser) -> None:
    async with admin_env(tmp_path) as env:
        config = env.settings.file
        assert config is not None
        first = await admin_page(browser, env)
        second = await admin_page(browser, env, again=True)
        await first.click("#member-1003 a.edit")
        await second.click("#member-1003 a.edit")
        await first.fill("input[name=name]", "Élodie Martin-Roy")
        await first.click("#save")
        await expect(first.locator("h1")).to_have_text("Saved: edit member 1003")
        saved = config.read_bytes()
        await second.fill("input[name=name]", "Elodie M.")
        await second.click("#save")
        await expect(second.locator("#conflict")).to_contain_text("Nothing was written")
        await shot(second, "conflict")
        assert config.read_bytes() == saved
        member = load_settings(config).site.member("1003")
        assert member is not None and member.name == "Élodie Martin-Roy"


@pytest.mark.parametrize(
    ("language", "add_member", "edit", "remove"),
    [("fr", "Ajouter un membre", "Modifier", "Supprimer"), ("ar", "إضافة عضو", "تعديل", "حذف")],
)
async def test_the_admin_pages_speak_the_admins_language(
    tmp_path: Path, browser: Browser, language: str, add_member: str, edit: str, remove: str
) -> None:
    async with admin_env(tmp_path, ui_language=language) as env:
        await env.store.set_agent_password(ADMIN, PASSWORD)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        await page.goto(env.url + "login")
        await page.fill("#extension", ADMIN)
        await page.fill("#password", PASSWORD)
        await page.click("#login-button")
        await page.click("a[href='/admin']")
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(page.locator("#add-member")).to_contain_text(add_member)
        row = page.locator("#member-1002")
        await expect(row.locator("a.edit")).to_have_text(edit)
        await expect(row.locator("form.remove button")).to_have_text(remove)
        # The row's actions sit on one line: Edit, the reload choice and Remove side by side.
        boxes = [
            await row.locator(selector).bounding_box()
            for selector in ("a.edit", "form.remove input[name=reload]", "form.remove button")
        ]
        middles = [box["y"] + box["height"] / 2 for box in boxes if box is not None]
        assert len(middles) == 3 and max(middles) - min(middles) < 4, boxes
        # Each queue's fields share one row in its card.
        queue = page.locator("#queue-support-en")
        strategy = await queue.locator("select[name=strategy]").bounding_box()
        timeout = await queue.locator("input[name=timeout_s]").bounding_box()
        assert strategy is not None and timeout is not None
        assert abs(strategy["y"] - timeout["y"]) < 4, (strategy, timeout)
        await shot(page, f"members-{language}")
        await page.click("#member-1002 a.edit")
        await expect(page.locator("#save")).not_to_have_text("Save")
        await shot(page, f"edit-form-{language}")
        await page.fill("input[name=name]", "John S.")
        await page.click("#save")
        await expect(page.locator("#applied")).to_be_visible()
        await page.click("#back")
        await expect(page.locator("#member-1002")).to_contain_text("John S.")
        # A hand edit waiting to be applied, and a restart-only change, in this language.
        config = env.settings.file
        assert config is not None
        text = config.read_text(encoding="utf-8")
        text = agents_admin.edit_member(text, "1003", MemberFields(name="Élodie M."))
        config.write_text(text.replace("web_port = 8080", "web_port = 8081", 1), encoding="utf-8")
        await page.reload()
        await expect(page.locator("#pending-changed")).to_contain_text("1003")
        await expect(page.locator("#awaiting-parts")).to_have_text("server")
        await shot(page, f"pending-changes-{language}")
