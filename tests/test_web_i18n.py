"""The console's languages (Babel catalogues), its ring sound and its static files."""

from __future__ import annotations

import re
import tomllib
import wave
from fnmatch import fnmatch
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from test_web_support import console_env

from centralita.web import assets, i18n, ringtone, templates

ROOT = Path(__file__).resolve().parent.parent


def test_every_marked_message_has_a_translation() -> None:
    template = i18n.extract()
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    # The extractors really read each kind of file: a message from each.
    assert "Save outcome" in ids  # templates (jinja2.ext.i18n)
    assert "Waiting for Asterisk…" in ids  # static/*.js (Babel's JavaScript extractor)
    assert "wrong extension or password" in ids  # auth.py, marked with N_
    assert "%(count)s call" in ids  # a plural ({% trans count %})
    for language in ("fr", "ar"):
        assert i18n.problems(language, template) == []


def test_the_check_reports_a_missing_an_empty_and_a_fuzzy_message() -> None:
    template = i18n.extract()
    catalogue = i18n.read_catalogue("fr")
    del catalogue["Save outcome"]
    catalogue["Pause"].string = ""
    catalogue["Ready"].flags.add("fuzzy")
    found = i18n.problems("fr", template, catalogue)
    assert any("missing 'Save outcome'" in p and "console.html" in p for p in found), found
    assert any("empty translation of 'Pause'" in p for p in found), found
    assert any("fuzzy 'Ready'" in p for p in found), found
    assert len(found) == 3


def test_plural_forms_need_every_form() -> None:
    template = i18n.extract()
    catalogue = i18n.read_catalogue("ar")
    assert catalogue.num_plurals == 6
    entry = catalogue.get(("%(count)s call", "%(count)s calls"))
    assert entry is not None
    assert isinstance(entry.string, tuple)  # a plural entry holds one string per form
    entry.string = (*entry.string[:5], "")
    assert any("plural forms" in p for p in i18n.problems("ar", template, catalogue))


def test_fresh_catalogue_without_translations_fails_the_check() -> None:
    empty = Catalog(locale="fr")
    assert len(i18n.problems("fr", i18n.extract(), empty)) == len(
        [m for m in i18n.extract() if m.id]
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-CA,fr;q=0.9,en;q=0.8", "fr"),
        ("de-DE,de;q=0.9", "en"),
        ("ar-MA", "ar"),
        ("en;q=0, fr;q=0.5", "fr"),
        ("de, ar;q=0.4, fr;q=0.3", "ar"),
        ("fr;q=bogus, ar", "ar"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_the_browser_language_is_negotiated(header: str | None, expected: str) -> None:
    assert i18n.negotiate(header) == expected


def test_templates_render_in_each_language() -> None:
    env = templates()
    login = env.get_template("login.html")
    context: dict[str, object] = {"error": None, "error_args": {}, "extension": ""}
    french = login.render(**context, **i18n.page_context("fr"))
    assert '<html lang="fr" dir="ltr">' in french
    assert "Se connecter" in french
    arabic = login.render(**context, **i18n.page_context("ar"))
    assert '<html lang="ar" dir="rtl">' in arabic
    assert "دخول" in arabic
    # A translated message with a parameter: the value is escaped, the message is not.
    failed = login.render(
        error="too many failed logins; try again in %(seconds)s s",
        error_args={"seconds": "<7>"},
        extension="",
        **i18n.page_context("fr"),
    )
    assert "réessayez dans &lt;7&gt; s" in failed
    unknown = login.render(**context, **i18n.page_context("xx"))
    assert '<html lang="en" dir="ltr">' in unknown


def test_the_page_scripts_get_their_own_messages() -> None:
    french = i18n.js_catalogue("fr")
    assert french["language"] == "fr"
    messages = french["messages"]
    assert messages["Waiting for Asterisk…"] == "En attente d’Asterisk…"
    assert "Save outcome" not in messages  # a template's message stays on the server
    assert i18n.js_catalogue("en") == {"language": "en", "messages": {}}


def test_the_ring_sound_is_the_one_the_module_makes() -> None:
    assert ringtone.PATH.read_bytes() == ringtone.build()
    with wave.open(str(ringtone.PATH)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
    assert 0.5 < seconds < 1.5
    peak = max(abs(s) for s in ringtone.samples())
    assert 0.3 * 32767 < peak < 0.6 * 32767  # audible, never clipped


def test_every_static_file_and_catalogue_is_packaged() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["centralita"]
    package = ROOT / "centralita"
    shipped = [
        p
        for folder in ("web/static", "web/locale", "web/templates")
        for p in (package / folder).rglob("*")
        if p.is_file()
    ]
    assert shipped
    for path in shipped:
        relative = path.relative_to(package).as_posix()
        # setuptools globs: `*` does not cross a folder.
        matched = any(
            fnmatch(relative, pattern) and relative.count("/") == pattern.count("/")
            for pattern in patterns
        )
        assert matched, f"{relative} is not in [tool.setuptools.package-data]"


async def test_static_files_are_versioned_and_cached(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        async with client.get("/login") as resp:
            html = await resp.text()
        match = re.search(r'href="(/static/console\.css\?v=([0-9a-f]{12}))"', html)
        assert match, html
        assert match.group(1) == assets.static_url("console.css")
        async with client.get(match.group(1)) as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        # Unversioned (a font named in the CSS): revalidated, with an ETag to do it cheaply.
        async with client.get("/static/vendor/fonts/inter-latin-wght-normal.woff2") as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-cache"
            etag = resp.headers["ETag"]
        async with client.get(
            "/static/vendor/fonts/inter-latin-wght-normal.woff2",
            headers={"If-None-Match": etag},
        ) as resp:
            assert resp.status == 304
            assert resp.headers["Cache-Control"] == "no-cache"
        async with client.get("/static/nothing-here.js") as resp:
            assert resp.status == 404
            assert "immutable" not in resp.headers.get("Cache-Control", "")
        # Served from memory, never from outside the folder, however the name is spelt.
        for outside in ("/static/%2E%2E/app.py", "/static/..%2F..%2Fsettings.py", "/static/vendor"):
            async with client.get(outside) as resp:
                assert resp.status == 404, outside
        async with client.get("/static/console.js") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/javascript"
            assert await resp.read() == (assets.STATIC_DIR / "console.js").read_bytes()
