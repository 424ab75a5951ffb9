"""The docs state exactly the AMI permissions that `centralita render` writes (issue 10,
finding 14: the docs said one thing, manager.conf another)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from centralita.cmd_render import render_files
from centralita.settings import demo_text, parse_settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
PERMISSION = re.compile(r"\b(read|write) = ([a-z,]+)")


def ini_sections(text: str) -> dict[str, dict[str, str]]:
    """`[section]` -> {key: value} of an Asterisk-style config text (comments dropped)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        header = re.fullmatch(r"\[([^\]]+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), {})
        elif current is not None and " = " in line:
            key, _, value = line.partition(" = ")
            current[key.strip()] = value.strip()
    return sections


def rendered_users() -> dict[str, dict[str, str]]:
    settings = parse_settings(demo_text(), "<demo>", Path.cwd(), None)
    manager = ini_sections(render_files(settings)["manager.conf"])
    users = {name: keys for name, keys in manager.items() if name != "general"}
    assert set(users) == {"centralita", "centralita-reload"}
    return users


def test_ami_md_shows_the_rendered_users_exactly() -> None:
    text = (DOCS / "ami.md").read_text(encoding="utf-8")
    block = text[text.index("```ini\n; manager.conf") :]
    block = block[: block.index("```", 3)]
    documented = ini_sections(block)
    for user, keys in rendered_users().items():
        assert documented[user]["read"] == keys["read"], user
        assert documented[user]["write"] == keys["write"], user
        for key in ("deny", "permit", "writetimeout"):
            assert documented[user][key] == keys[key], (user, key)
    # The eventfilter lines shown are lines render writes (the page elides the others).
    settings = parse_settings(demo_text(), "<demo>", Path.cwd(), None)
    rendered = render_files(settings)["manager.conf"].splitlines()
    shown = [line for line in block.splitlines() if line.startswith("eventfilter")]
    assert shown and all(line in rendered for line in shown), shown


@pytest.mark.parametrize("doc", ["ami.md", "console.md", "admin.md"])
def test_every_permission_a_doc_states_is_one_render_writes(doc: str) -> None:
    users = rendered_users()
    stated = PERMISSION.findall((DOCS / doc).read_text(encoding="utf-8"))
    for kind in ("read", "write"):
        rendered = {keys[kind] for keys in users.values()}
        in_doc = {value for k, value in stated if k == kind}
        assert in_doc == rendered, (doc, kind)


# -- citations: every comment and doc points at a document inside the repository -------------

ROOT = DOCS.parent
CITING_DIRS = ("agi", "ami", "bench", "centralita", "conf_templates", "deploy", "dialplan", "docs")
CITING_FILES = ("README.md", "Makefile", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".j2", ".md", ".html", ".js", ".css", ".toml", ".conf", ".service", ".txt"}
DOC_CITATION = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")
LOCAL_LINK = re.compile(r"\]\((?:([\w-]+\.md))?#([\w-]+)\)")
PRINCIPLE = re.compile(r"\bprinciples? (\d+)")
MD_LINK = re.compile(r"\[[^\]]*\]\([\w-]+\.md[^)]*\)")


def citing_files() -> list[Path]:
    """The code, tests, docs and templates that may cite a document (not recorded fixtures)."""
    files = [ROOT / name for name in CITING_FILES]
    for folder in (*CITING_DIRS, "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if {"fixtures", "golden", "__pycache__"} & set(path.parts):
                continue
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                files.append(path)
    return files


def slug(heading: str) -> str:
    """A Markdown heading's anchor, as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def design_principles() -> int:
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    section = text[text.index("## Principles") :]
    section = section[: section.index("\n## ", 1)]
    return len(re.findall(r"^\d+\. \*\*", section, re.MULTILINE))


def test_no_citation_points_outside_the_repository() -> None:
    found = []
    for path in citing_files():
        if path == Path(__file__).resolve():
            continue  # this test names what it looks for
        where = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8")
        if path.parent == DOCS:  # a link between two docs/ pages is inside the repository
            text = MD_LINK.sub(lambda link: "\n" * link.group(0).count("\n"), text)
        for number, line in enumerate(text.splitlines(), start=1):
            if "DESIGN.md" in line:
                found.append(f"{where}:{number}: DESIGN.md (cite docs/design.md)")
            if re.search(r"(?<!docs/)asterisk-protocol\.md", line):
                found.append(f"{where}:{number}: asterisk-protocol.md (cite docs/...)")
            if "\u00a7" in line:
                found.append(f"{where}:{number}: a section sign (cite a docs/ heading)")
    assert found == []


def test_every_docs_citation_names_an_existing_file_and_heading() -> None:
    principles = design_principles()
    assert principles >= 6
    cited = 0
    broken = []
    for path in citing_files():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        targets = DOC_CITATION.findall(text)
        if path.parent == DOCS:
            targets += [(name or path.name, anchor) for name, anchor in LOCAL_LINK.findall(text)]
        for name, anchor in targets:
            cited += 1
            doc = DOCS / name
            if not doc.is_file():
                broken.append(f"{where}: docs/{name} does not exist")
            elif anchor and anchor not in anchors(doc):
                broken.append(f"{where}: docs/{name} has no heading #{anchor}")
        for number in PRINCIPLE.findall(text):
            if not 1 <= int(number) <= principles:
                broken.append(f"{where}: design principle {number} does not exist")
    assert broken == []
    assert cited > 50  # the code does cite the docs: an empty scan would pass too easily
