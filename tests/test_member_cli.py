"""`centralita member add|edit|remove|list` on the demo's [[roles]] and [[members]], and the
agents_admin functions behind both it and /admin (one validation for the CLI and the web)."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from centralita import agents_admin
from centralita.agents_admin import MemberFields
from centralita.cli import main
from centralita.live import live_part
from centralita.settings import demo_text, load_settings
from dialplan.validate import ConfigError


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "centralita.toml"
    path.write_text(demo_text().replace("demo-secret-", "own-secret-"), encoding="utf-8")
    return path


def member(config: Path, *args: str) -> int:
    return main(["member", args[0], "--config", str(config), *args[1:]])


def test_add_a_manager_then_remove_gives_back_the_same_bytes(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = config.read_bytes()
    assert member(config, "add", "1102", "--name", "Ana Gil", "--role", "manager") == 0
    settings = load_settings(config)
    added = settings.site.member("1102")
    assert added is not None
    assert (added.role, added.queues, added.voicemail) == ("manager", (), True)
    assert settings.site.console_permission("1102") == "admin"
    text = config.read_text(encoding="utf-8")
    block = text[text.index('extension = "1102"') - len("[[members]]\n") :]
    assert block.startswith('[[members]]\nextension = "1102"\nname = "Ana Gil"\nrole = "manager"\n')
    out = capsys.readouterr().out
    assert "added member 1102 (Ana Gil) to no queue" in out
    assert "SIP secret for 1102: " in out
    assert member(config, "remove", "1102") == 0
    assert config.read_bytes() == original


def test_edit_changes_only_the_given_fields(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = config.read_text(encoding="utf-8")
    assert member(config, "edit", "1002", "--queues", "support-en,support-fr") == 0
    assert member(config, "edit", "1003", "--no-voicemail", "--language", "en") == 0
    text = config.read_text(encoding="utf-8")
    site = load_settings(config).site
    john, elodie = site.member("1002"), site.member("1003")
    assert john is not None and elodie is not None
    assert john.queues == ("support-en", "support-fr")
    assert (elodie.voicemail, elodie.language, elodie.name) == (False, "en", "Élodie Martin")
    # Everything else, comments included, is as it was.
    before, after = tomllib.loads(original), tomllib.loads(text)
    assert {k: v for k, v in before.items() if k != "members"} == {
        k: v for k, v in after.items() if k != "members"
    }
    assert "# the SIP password of the member's phone" in text
    # Back again: voicemail true is the default, so the key goes away.
    assert member(config, "edit", "1003", "--voicemail", "--language", "fr") == 0
    assert member(config, "edit", "1002", "--queues", "support-en") == 0
    assert config.read_text(encoding="utf-8") == original
    assert member(config, "edit", "1002", "--new-secret") == 0
    out = capsys.readouterr().out
    assert "SIP secret for 1002: " in out
    assert load_settings(config).site.member("1002").secret != "own-secret-1002"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "1102", "--name", "X", "--role", "janitor"], "role: no role 'janitor'"),
        (["add", "1102", "--name", "X", "--role", "ceo", "--queues", "support-en"], "queues"),
        (["add", "2000", "--name", "X"], "extension: 2000 is the voicemail menu number"),
        (["add", "1002", "--name", "X"], "extension: member 1002 already exists"),
        (["edit", "1100", "--queues", "support-en"], "members[3].queues: role 'ceo' takes no"),
        (["edit", "1002", "--role", "ceo"], "members[1].queues: role 'ceo' takes no queue"),
        (["edit", "1999", "--name", "X"], "extension: there is no member with extension"),
        (["edit", "1002", "--name", "Eve;"], "name: display name must not contain ';'"),
    ],
)
def test_a_refused_edit_names_the_field_and_writes_nothing(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    original = config.read_bytes()
    assert member(config, *args) == 2
    assert message in capsys.readouterr().err
    assert config.read_bytes() == original


def test_list_shows_roles_and_the_agent_alias_is_the_same_command(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert member(config, "list") == 0
    listed = capsys.readouterr().out
    assert "1200  Layla Nasser   quality" in listed
    assert main(["agent", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out == listed
    assert main(["agent", "add", "1004", "--config", str(config), "--name", "Zoé"]) == 0
    assert "added agent 1004" in capsys.readouterr().out
    assert load_settings(config).site.member("1004").role == "agent"  # type: ignore[union-attr]


def test_edit_queue_changes_strategy_timeout_and_survey() -> None:
    text = demo_text()
    edited = agents_admin.edit_queue(
        text, "support-fr", strategy="ringall", timeout_s=25, survey=False
    )
    queue = tomllib.loads(edited)["queues"][2]
    assert (queue["strategy"], queue["timeout_s"], queue["survey"]) == ("ringall", 25, False)
    back = agents_admin.edit_queue(
        edited, "support-fr", strategy="random", timeout_s=10, survey=True
    )
    assert back == text
    with pytest.raises(ConfigError) as info:
        agents_admin.edit_queue(text, "support-fr", strategy="loudest")
    assert info.value.key == "strategy"
    with pytest.raises(ConfigError) as info:
        agents_admin.edit_queue(text, "support-xx", survey=True)
    assert info.value.key == "queues"


def test_the_web_and_the_cli_share_one_validation() -> None:
    """check_config is what every edit ends with: the model and the render both run."""
    text = demo_text()
    with pytest.raises(ConfigError) as info:
        agents_admin.add_member(
            text, "1102", MemberFields(name="X", role="quality", secret="x" * 10, queues=["a"])
        )
    assert info.value.key == "queues"
    assert agents_admin.config_hash(text) != agents_admin.config_hash(text + " ")


def test_pending_changes_list_what_the_running_server_does_not_use(config: Path) -> None:
    """What /admin's boxes list (agents_admin.pending_changes): members added, changed and
    removed, queues and roles edited (a reload applies them); a new SIP secret alone is
    Asterisk's and not listed; restart-only parts are named apart."""
    running = load_settings(config)
    assert not agents_admin.pending_changes(running, load_settings(config))
    text = config.read_text(encoding="utf-8")
    secret_only = agents_admin.edit_member(text, "1002", MemberFields(secret="a-new-sip-secret-1"))
    config.write_text(secret_only, encoding="utf-8")
    assert not agents_admin.pending_changes(running, load_settings(config))
    text = agents_admin.add_member(
        secret_only,
        "1102",
        MemberFields(name="Ana Gil", role="agent", queues=["support-en"], secret="s-1102-sip"),
    )
    text = agents_admin.edit_member(text, "1003", MemberFields(name="Élodie M."))
    text = agents_admin.remove_member(text, "1200")
    text = agents_admin.edit_queue(text, "support-fr", strategy="ringall")
    text = text.replace('console = "supervisor"', 'console = "admin"', 1)
    config.write_text(text, encoding="utf-8")
    waiting = agents_admin.pending_changes(running, load_settings(config))
    assert waiting == agents_admin.PendingChanges(
        added=("1102",),
        changed=("1003",),
        removed=("1200",),
        queues=("support-fr",),
        roles=("supervisor",),
        to_apply=True,
    )
    assert (waiting.of("1102"), waiting.of("1003"), waiting.of("1002")) == ("added", "changed", "")
    # Applied (a reload): nothing is pending. A port changed in [server] waits for a restart.
    applied = live_part(running, load_settings(config))
    assert not agents_admin.pending_changes(applied, load_settings(config))
    config.write_text(text.replace("web_port = 8080", "web_port = 8081", 1), encoding="utf-8")
    waiting = agents_admin.pending_changes(applied, load_settings(config))
    assert waiting == agents_admin.PendingChanges(restart=("server",))
    assert waiting and not waiting.to_apply


HOLDER = """
import os, signal, sys, time
from pathlib import Path
from centralita.datadir import lock_data_dir

data = Path(sys.argv[1])
fd = lock_data_dir(data)
if len(sys.argv) > 2:  # another pid in the lock file: one this user cannot signal
    os.ftruncate(fd, 0)
    os.pwrite(fd, sys.argv[2].encode() + b"\\n", 0)
signal.signal(signal.SIGHUP, lambda *_: (data / "reloaded").write_text("yes"))
print("ready", flush=True)
time.sleep(60)
"""


def test_an_edit_tells_the_server_running_on_its_data_dir(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`member add` while `serve` runs: the server is sent SIGHUP (it applies the file at
    once, centralita/live.py); with no server running, nothing is sent."""
    data = config.parent / "data"
    assert member(config, "add", "1102", "--name", "Ana Gil", "--queues", "support-en") == 0
    assert "centralita serve" not in capsys.readouterr().out
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        assert member(config, "edit", "1102", "--name", "Ana G.") == 0
        out = capsys.readouterr().out
        assert f"the running centralita serve (pid {holder.pid}) applies the change now" in out
        for _ in range(200):  # until the signal is handled, not a time limit
            if (data / "reloaded").exists():
                break
            time.sleep(0.05)
        assert (data / "reloaded").read_text() == "yes"
    finally:
        holder.kill()
        holder.communicate()
    # A server this user may not signal: the change is saved, and the way to apply it said.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data), "999999999"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        assert main(["reload", "--config", str(config)]) == 1
        assert "after `systemctl reload centralita`" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.communicate()
