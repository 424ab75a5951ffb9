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


@pytest.mark.parametrize("doc", ["ami.md", "console.md", "admin.md"])
def test_every_permission_a_doc_states_is_one_render_writes(doc: str) -> None:
    users = rendered_users()
    stated = PERMISSION.findall((DOCS / doc).read_text(encoding="utf-8"))
    for kind in ("read", "write"):
        rendered = {keys[kind] for keys in users.values()}
        in_doc = {value for k, value in stated if k == kind}
        assert in_doc == rendered, (doc, kind)
