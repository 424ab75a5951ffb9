"""The console's three languages: English (the source), French and Arabic (right to left).

Messages are marked in the templates (`{{ _("…") }}`, `{% trans %}`, jinja2.ext.i18n), in
the page scripts (`_("…")` in `static/*.js`) and, for the few server messages a page shows,
with `N_("…")` in `web/auth.py`. Their translations live in gettext catalogues,
`locale/<lang>/LC_MESSAGES/messages.po`, read at start-up with Babel (no compile step for
anyone who installs Centralita). A page gets the messages of its scripts as JSON
(`js_catalogue`).

Maintainers: `python -m centralita.web.i18n update` extracts every marked message with
Babel's extractors and merges it into the catalogues (new messages come in untranslated);
`python -m centralita.web.i18n check` lists what a catalogue lacks. A test runs the check.
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jinja2
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "fr", "ar")
SOURCE_LANGUAGE = "en"
# Each language named in itself (what an agent looks for in a language menu).
AUTONYMS = {"en": "English", "fr": "Français", "ar": "العربية"}
RIGHT_TO_LEFT = frozenset({"ar"})
DOMAIN = "messages"
WEB_DIR = Path(__file__).parent
LOCALE_DIR = WEB_DIR / "locale"
# Where messages are marked, and how Babel reads each kind of file.
METHOD_MAP = [
    ("templates/**.html", "jinja2.ext:babel_extract"),
    ("static/*.js", "javascript"),
    ("auth.py", "python"),
]
OPTIONS_MAP = {
    "templates/**.html": {"extensions": "jinja2.ext.i18n"},
    "static/*.js": {},
    "auth.py": {},
}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def N_(message: str) -> str:
    """Mark `message` for extraction; it is translated where it is shown."""
    return message


def supported(language: str | None) -> str | None:
    """`language` when the console speaks it (a region is dropped: fr-CA -> fr), else None."""
    if not language:
        return None
    base = language.strip().replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else None


def negotiate(accept_language: str | None) -> str:
    """The best console language for an HTTP `Accept-Language` header (RFC 9110, section
    12.5.4): the first supported language of highest quality, else English."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        found = supported(tag)
        if found is not None and quality > 0:
            ranked.append((-quality, index, found))
    return sorted(ranked)[0][2] if ranked else SOURCE_LANGUAGE


def direction(language: str) -> str:
    """`rtl` or `ltr`, for the page's `dir` attribute."""
    return "rtl" if language in RIGHT_TO_LEFT else "ltr"


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(language: str) -> Catalog:
    """The `.po` catalogue of a translated language."""
    with catalogue_path(language).open("rb") as fh:
        return read_po(fh, locale=language, domain=DOMAIN)


@functools.cache
def translations(language: str) -> NullTranslations:
    """gettext translations for `language` (the source language translates to itself).

    Fuzzy or empty entries are left out, so they fall back to English rather than to "".
    """
    if language == SOURCE_LANGUAGE or language not in LANGUAGES:
        return NullTranslations()
    buffer = io.BytesIO()
    write_mo(buffer, read_catalogue(language), use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def _from_script(locations: Iterable[tuple[str, int | None]]) -> bool:
    return any(path.endswith(".js") for path, _ in locations)


@functools.cache
def js_catalogue(language: str) -> dict[str, Any]:
    """What the page scripts need: their messages in `language`, as JSON-ready data.

    `messages` maps each English message to its translation (a list of forms for a plural);
    the scripts pick a plural form with the language's CLDR plural categories
    (`Intl.PluralRules`), which is the order of the gettext forms Babel writes.
    """
    if language == SOURCE_LANGUAGE or language not in LANGUAGES:
        return {"language": SOURCE_LANGUAGE, "messages": {}}
    messages: dict[str, str | list[str]] = {}
    for message in read_catalogue(language):
        if not message.id or message.fuzzy or not _from_script(message.locations):
            continue
        if isinstance(message.id, tuple | list):
            forms = [str(s) for s in message.string or ()]
            if all(forms):
                messages[str(message.id[0])] = forms
        elif message.string:
            messages[str(message.id)] = str(message.string)
    return {"language": language, "messages": messages}


# ----------------------------------------------------------------------------- templates


@jinja2.pass_context
def _gettext(context: jinja2.runtime.Context, message: str) -> str:
    return translations(context.get("lang", SOURCE_LANGUAGE)).gettext(message)


@jinja2.pass_context
def _ngettext(context: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return translations(context.get("lang", SOURCE_LANGUAGE)).ngettext(singular, plural, n)


def install(env: jinja2.Environment) -> None:
    """Add gettext to a Jinja2 environment: each render translates into its `lang` variable."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True
    )
    env.globals["languages"] = [(code, AUTONYMS[code]) for code in LANGUAGES]


def page_context(language: str) -> dict[str, Any]:
    """The template variables every page needs for its language."""
    lang = supported(language) or SOURCE_LANGUAGE
    return {"lang": lang, "dir": direction(lang), "js_catalogue": js_catalogue(lang)}


# ----------------------------------------------------------------------------- maintenance


def extract() -> Catalog:
    """Every marked message of the console (templates, scripts, auth.py) as a template."""
    template = Catalog(domain=DOMAIN, project="Centralita", charset="utf-8")
    found = extract_from_dir(
        str(WEB_DIR),
        method_map=METHOD_MAP,
        options_map=OPTIONS_MAP,
        keywords=KEYWORDS,
        comment_tags=("Translators:",),
        strip_comment_tags=True,
    )
    for filename, lineno, message, comments, context in found:
        template.add(
            message,
            None,
            [(filename, lineno)],
            auto_comments=comments,
            context=context,
        )
    return template


def problems(
    language: str, template: Catalog | None = None, catalogue: Catalog | None = None
) -> list[str]:
    """What the `language` catalogue lacks: missing, empty or fuzzy messages, and plurals
    without every form."""
    template = template if template is not None else extract()
    catalogue = catalogue if catalogue is not None else read_catalogue(language)
    found: list[str] = []
    for message in template:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple | list) else message.id
        entry = catalogue.get(message.id, context=message.context)
        where = ", ".join(f"{path}:{line}" for path, line in message.locations)
        if entry is None:
            found.append(f"{language}: missing {key!r} ({where})")
        elif entry.fuzzy:
            found.append(f"{language}: fuzzy {key!r} ({where})")
        elif isinstance(message.id, tuple | list):
            forms = list(entry.string) if isinstance(entry.string, tuple | list) else []
            if len(forms) != catalogue.num_plurals or not all(forms):
                found.append(f"{language}: plural forms missing for {key!r} ({where})")
        elif not entry.string:
            found.append(f"{language}: empty translation of {key!r} ({where})")
    return found


def update() -> Iterator[str]:
    """Merge newly marked messages into each catalogue (untranslated) and drop stale ones."""
    template = extract()
    for language in LANGUAGES:
        if language == SOURCE_LANGUAGE:
            continue
        path = catalogue_path(language)
        if path.exists():
            catalogue = read_catalogue(language)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalogue = Catalog(locale=language, domain=DOMAIN, project="Centralita")
        catalogue.update(template, no_fuzzy_matching=True)
        with path.open("wb") as fh:
            write_po(fh, catalogue, width=100, omit_header=False, ignore_obsolete=True)
        yield f"{path}: {len(catalogue)} messages"


def main(argv: list[str] | None = None) -> int:
    """`update` the catalogues, or `check` them (exit 1 with the list of what is missing)."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["update"]:
        for line in update():
            sys.stdout.write(line + "\n")
        return 0
    if args == ["check"]:
        template = extract()
        missing = [
            p for lang in LANGUAGES if lang != SOURCE_LANGUAGE for p in problems(lang, template)
        ]
        for line in missing:
            sys.stdout.write(line + "\n")
        return 1 if missing else 0
    sys.stderr.write("usage: python -m centralita.web.i18n update|check\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
