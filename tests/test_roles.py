"""Roles and members: the config, its validation (errors name the field), and the role contexts
of the rendered dialplan (golden files for the demo's roles on both SIP drivers)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from asterisk.config import Config

from centralita.cmd_render import render_files
from centralita.settings import Settings, demo_text, parse_settings
from dialplan.names import OUTBOUND_CONTEXT
from dialplan.roles import DEPRECATED_AGENTS, DEPRECATED_SUPERVISORS
from dialplan.validate import ConfigError

FILE = "centralita.toml"  # where the file would sit: nothing is read from disk
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("CENTRALITA_UPDATE_GOLDEN") == "1"
LEGACY = Path(__file__).parent / "fixtures" / "legacy-agents.toml"
# The demo's call matrix, written out by hand from the issue: who may dial whom.
STAFF = {"1001": "supervisor", "1002": "agent", "1003": "agent"}
STAFF |= {"1100": "ceo", "1101": "manager", "1200": "quality"}
MATRIX = {
    "agent": {"agent", "supervisor"},
    "supervisor": {"agent", "supervisor", "quality", "manager"},
    "quality": {"supervisor", "quality", "manager"},
    "manager": {"agent", "supervisor", "quality", "manager", "ceo"},
    "ceo": {"agent", "supervisor", "quality", "manager", "ceo"},
}
CONTEXTS = {
    "agent": "agents",
    "supervisor": "supervisor",
    "quality": "Complaints",
    "manager": "manager",
    "ceo": "ceo",
}


def load(text: str) -> Settings:
    return parse_settings(text, FILE, Path("site"), Path(FILE))


def edited(edit: Callable[[Any], None], text: str | None = None) -> str:
    doc = tomlkit.parse(text if text is not None else demo_text())
    edit(doc)
    return tomlkit.dumps(doc)


def demo_for(driver: str) -> str:
    return demo_text().replace('sip_driver = "pjsip"', f'sip_driver = "{driver}"')


# --------------------------------------------------------------------------- the config


def test_the_demo_ships_five_roles_and_their_console_permissions() -> None:
    site = load(demo_text()).site
    assert [r.name for r in site.roles] == ["agent", "supervisor", "quality", "manager", "ceo"]
    assert {r.name: set(r.calls) for r in site.roles} == MATRIX
    assert {m.extension: m.role for m in site.members} == STAFF
    permissions = {ext: site.console_permission(ext) for ext in STAFF}
    assert permissions == {
        "1001": "supervisor",
        "1002": "agent",
        "1003": "agent",
        "1100": "supervisor",
        "1101": "admin",
        "1200": "quality",
    }
    assert site.console_permission("1999") is None
    # Only roles that take queue calls have members in queues.
    assert {m.extension for m in site.members if m.queues} == {"1001", "1002", "1003"}
    assert [r.name for r in site.roles if r.outbound] == ["supervisor", "manager", "ceo"]
    assert [r.name for r in site.roles if r.complaints_box] == ["quality"]
    assert site.notices == ()


def test_an_old_config_with_agents_still_loads_with_a_deprecation_notice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="centralita.settings"):
        site = load(LEGACY.read_text(encoding="utf-8")).site
    assert [m.extension for m in site.members] == ["1001", "1002", "1003"]
    assert {m.role for m in site.members} == {"agent"}
    # One implicit role: everyone calls everyone in the context `agents`, as before roles.
    (role,) = site.roles
    assert (role.name, role.context, role.calls, role.queue_calls) == (
        "agent",
        "agents",
        ("agent",),
        True,
    )
    # [console] supervisors is folded into the console permissions.
    assert site.console_permission("1001") == "supervisor"
    assert site.console_permission("1002") == "agent"
    assert site.notices == (DEPRECATED_AGENTS, DEPRECATED_SUPERVISORS)
    logged = [r.getMessage() for r in caplog.records]
    assert f"{FILE}: {DEPRECATED_AGENTS}" in logged
    assert f"{FILE}: {DEPRECATED_SUPERVISORS}" in logged


def set_in(table: str, index: int, key: str, value: Any) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        doc[table][index][key] = value

    return edit


def rename_members_to_agents(doc: Any) -> None:
    doc["agents"] = doc["members"]


@pytest.mark.parametrize(
    ("edit", "key", "reason"),
    [
        (set_in("members", 1, "role", "janitor"), "members[1].role", "role 'janitor' is not"),
        (set_in("members", 3, "queues", ["support-en"]), "members[3].queues", "no queue calls"),
        (set_in("roles", 0, "calls", ["agent", "cfo"]), "roles[0].calls", "'cfo' is not defined"),
        (set_in("roles", 2, "console", "root"), "roles[2].console", "must be one of"),
        (set_in("roles", 1, "name", "agent"), "roles[1].name", "defined twice"),
        (set_in("roles", 3, "context", "agents"), "roles[3].context", "context of roles[0]"),
        (set_in("roles", 3, "context", "incoming"), "roles[3].context", "Centralita's own"),
        (set_in("roles", 3, "context", "centralita-queue"), "roles[3].context", "own dialplan"),
        (set_in("roles", 3, "context", "a;b"), "roles[3].context", "not a valid name"),
        (set_in("roles", 0, "outbound", "yes"), "roles[0].outbound", "true or false"),
        (set_in("roles", 0, "ring", 5), "roles[0].ring", "unknown key"),
        (set_in("members", 4, "voicemail", 1), "members[4].voicemail", "true or false"),
        (rename_members_to_agents, "agents", "use [[members]] only"),
    ],
)
def test_a_wrong_role_or_member_names_the_field(
    edit: Callable[[Any], None], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(edited(edit))
    assert (info.value.file, info.value.key) == (FILE, key)
    assert reason in info.value.reason


def test_a_member_needs_a_role_but_an_old_agent_has_the_implicit_one() -> None:
    def drop_role(doc: Any) -> None:
        del doc["members"][2]["role"]

    with pytest.raises(ConfigError) as info:
        load(edited(drop_role))
    assert (info.value.key, info.value.reason) == ("members[2].role", "is required")


# --------------------------------------------------------------------------- the dialplan


def role_contexts(extensions_conf: str) -> str:
    """The rendered text of every role context, in order (from its comment to the next)."""
    start = extensions_conf.index("; Role ")
    end = extensions_conf.index("; Click-to-dial")
    return extensions_conf[start:end]


@pytest.mark.parametrize("driver", ["pjsip", "sip"])
def test_role_contexts_match_the_golden_files(driver: str) -> None:
    text = role_contexts(render_files(load(demo_for(driver)))["extensions.conf"])
    golden = GOLDEN / driver / "role-contexts.txt"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.read_text(encoding="utf-8") == text, (
        f"{golden} differs; if the change is intended, rerun with CENTRALITA_UPDATE_GOLDEN=1"
    )


class PystConfig(Config):  # type: ignore[misc]
    """pyst2's parser, reading the file with a `with` block (its own load() leaks the handle,
    which filterwarnings=error turns into a failure; as in test_render.py)."""

    def load(self) -> None:
        with open(self.filename, encoding="utf-8") as fh:
            self.raw_lines = fh.readlines()


def parsed(files: dict[str, str], name: str, tmp_path: Path) -> Config:
    path = tmp_path / name
    path.write_text(files[name], encoding="utf-8")
    return PystConfig(str(path))


def entries(config: Config, context: str) -> list[tuple[str, str]]:
    (category,) = [c for c in config.categories if c.name == context]
    return [(i.name, i.value.strip()) for i in category.items]


@pytest.mark.parametrize("driver", ["pjsip", "sip"])
def test_each_role_context_holds_exactly_what_the_matrix_allows(
    driver: str, tmp_path: Path
) -> None:
    settings = load(demo_for(driver))
    files = render_files(settings)
    conf = parsed(files, "extensions.conf", tmp_path)
    tech = "PJSIP" if driver == "pjsip" else "SIP"
    for role, context in CONTEXTS.items():
        lines = entries(conf, context)
        first = {v.split(",")[0]: v for k, v in lines if k == "exten"}
        allowed = {ext for ext, r in STAFF.items() if r in MATRIX[role]}
        extras = {"2000"} | ({"600"} if role == "quality" else set())
        assert set(first) == allowed | extras, role
        for ext in allowed:
            assert first[ext] == f"{ext},1,Dial({tech}/{ext},20,tTxX)"
        assert first["2000"] == "2000,1,VoiceMailMain(@VoiceMail)"
        includes = [v for k, v in lines if k == "include"]
        outbound = role in ("supervisor", "manager", "ceo")
        assert includes == ([OUTBOUND_CONTEXT] if outbound else []), role
    # Quality staff open the complaints box with the box preselected.
    assert ("exten", "600,1,VoiceMailMain(600@VoiceMail)") in entries(conf, "Complaints")
    # The agent cannot dial the CEO; the CEO can dial the agent.
    assert (
        "1100"
        not in role_contexts(files["extensions.conf"]).split("[agents]")[1].split("; Role")[0]
    )

    # Each member's phone is in their role's context.
    sip_name = "pjsip.conf" if driver == "pjsip" else "sip.conf"
    sip = parsed(files, sip_name, tmp_path)
    for ext, role in STAFF.items():
        phone = [
            dict((i.name, i.value.strip()) for i in c.items)
            for c in sip.categories
            if c.name == ext
        ]
        contexts = [p["context"] for p in phone if "context" in p]
        assert contexts == [CONTEXTS[role]], ext


def test_a_member_without_voicemail_has_no_box() -> None:
    files = render_files(load(edited(set_in("members", 4, "voicemail", False))))
    assert not re.search(r"^1101 =>", files["voicemail.conf"], re.M)
    assert "1101@VoiceMail" not in files["pjsip.conf"]
    assert "VoiceMail(1101@" not in files["extensions.conf"]
    assert "Dial(PJSIP/1101,20,tTxX)" in files["extensions.conf"]
    # A route to that box is refused at render time, naming the field.
    text = edited(set_in("members", 4, "voicemail", False))
    text = text.replace('outside = "voicemail:600"', 'outside = "voicemail:1101"')
    with pytest.raises(ConfigError) as info:
        render_files(load(text))
    assert info.value.key == "time_conditions[0].outside"


def config_lines(text: str) -> list[str]:
    """A rendered file without its comments and blank lines: what Asterisk reads."""
    return [line for line in text.splitlines() if line and not line.startswith(";")]


@pytest.mark.parametrize("driver", ["pjsip", "sip"])
def test_an_old_config_renders_what_it_rendered_before_roles(driver: str) -> None:
    """tests/golden/legacy-<driver>: the files the demo rendered before roles existed (from
    the same config as tests/fixtures/legacy-agents.toml); only comments may differ."""
    text = LEGACY.read_text(encoding="utf-8").replace(
        'sip_driver = "pjsip"', f'sip_driver = "{driver}"'
    )
    files = render_files(load(text), reload_secret="golden-reload-secret")
    folder = GOLDEN / f"legacy-{driver}"
    assert sorted(p.name for p in folder.glob("*.conf")) == sorted(files)
    for name, rendered in files.items():
        before = (folder / name).read_text(encoding="utf-8")
        assert config_lines(rendered) == config_lines(before), name
