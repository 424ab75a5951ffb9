"""`centralita agent add|remove|list|passwd` and the agents_admin functions behind them, on a
config from before roles ([[agents]] tables, `[console] supervisors`): `agent` is the older name
of `centralita member` (tests/test_member_cli.py) and such a file must go on working."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from centralita import agents_admin
from centralita.cli import main
from centralita.settings import load_settings
from centralita.store import Store, default_path
from dialplan.validate import ConfigError

LEGACY = Path(__file__).parent / "fixtures" / "legacy-agents.toml"


def demo_text() -> str:
    """The demo config as it was before roles (every agent in the one context `agents`)."""
    return LEGACY.read_text(encoding="utf-8")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "centralita.toml"
    # Not the demo's public SIP passwords, which `--render-to` would refuse.
    path.write_text(demo_text().replace("demo-secret-", "own-secret-"), encoding="utf-8")
    return path


def agent(config: Path, *args: str) -> int:
    return main(["agent", args[0], "--config", str(config), *args[1:]])


class TtyStdin(io.StringIO):
    """Standard input as a terminal: `passwd` asks with getpass."""

    def isatty(self) -> bool:
        return True


def test_add_then_remove_gives_back_the_same_bytes(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = config.read_bytes()
    assert agent(config, "add", "1004", "--name", "Zoé Ñúñez", "--queues", "support-fr") == 0
    added = config.read_text(encoding="utf-8")
    assert added != original.decode()
    assert agent(config, "remove", "1004") == 0
    assert config.read_bytes() == original
    out = capsys.readouterr().out
    assert "added agent 1004 (Zoé Ñúñez) to support-fr" in out
    assert "removed agent 1004" in out


def test_add_keeps_comments_and_order_and_validates(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = config.read_text(encoding="utf-8")
    assert (
        agent(
            config,
            "add",
            "1004",
            "--name",
            "أميرة",
            "--queues",
            "support-ar,support-en",
            "--secret",
            "s3cret-for-1004",
            "--language",
            "ar",
        )
        == 0
    )
    text = config.read_text(encoding="utf-8")
    # Every original line is still there, in the same order (comments included).
    lines = iter(text.splitlines())
    assert all(any(line == other for other in lines) for line in original.splitlines())
    block = text[text.index('extension = "1004"') - len("[[agents]]\n") :]
    assert block.startswith(
        '[[agents]]\nextension = "1004"\nname = "أميرة"\n'
        'queues = ["support-ar", "support-en"]\nsecret = "s3cret-for-1004"\nlanguage = "ar"\n\n'
        "[[customer_id]]"
    )
    settings = load_settings(config)
    new = settings.site.agent("1004")
    assert new is not None
    assert (new.name, new.queues, new.secret, new.language) == (
        "أميرة",
        ("support-ar", "support-en"),
        "s3cret-for-1004",
        "ar",
    )
    out = capsys.readouterr().out
    assert "SIP secret" not in out  # the admin chose it: nothing to show


def test_add_without_secret_generates_and_prints_it_once(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert agent(config, "add", "1004", "--name", "Zoé", "--queues", "support-fr") == 0
    out = capsys.readouterr().out
    (secret,) = re.findall(r"^SIP secret for 1004: (\S+)$", out, re.M)
    assert len(secret) >= 16
    assert out.count(secret) == 1
    assert load_settings(config).site.agent("1004").secret == secret  # type: ignore[union-attr]
    assert agents_admin.generate_secret() != agents_admin.generate_secret()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["1002", "--name", "Dup", "--queues", "support-en"], "member 1002 already exists"),
        (["1004", "--name", "X", "--queues", "support-xx"], "unknown queue 'support-xx'"),
        (["1004", "--name", "Eve\n[evil]", "--queues", "support-en"], "control character"),
        (["1004", "--name", "Eve", "--secret", "abc;defghij"], "secret contains characters"),
        (["1004", "--name", "Eve", "--secret", "short"], "at least 8 characters"),
        (["10a4", "--name", "Eve"], "digits only"),
        (["1004", "--name", "Eve", "--language", "en\n[x]"], "not a language code"),
        (["600", "--name", "Eve"], "complaints box must not be a member's extension"),
        # What render refuses, agent add refuses too (issue 10, finding 12).
        (["1004", "--name", "Eve (night"], "unbalanced parentheses"),
    ],
)
def test_add_refuses_bad_input_and_leaves_the_file_alone(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    original = config.read_bytes()
    assert agent(config, "add", *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert str(config) in err
    assert config.read_bytes() == original


def test_remove_refuses_an_unknown_or_referenced_agent(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert agent(config, "remove", "1999") == 2
    assert "there is no member with extension '1999'" in capsys.readouterr().err
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'success = "queue:support-en"', 'success = "agent:1002"'
        ),
        encoding="utf-8",
    )
    original = config.read_bytes()
    assert agent(config, "remove", "1002") == 2
    err = capsys.readouterr().err
    assert "customer_id[0].success: agent:1002 names a agent that is not defined" in err
    assert config.read_bytes() == original


def test_the_demo_is_never_edited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./centralita.toml here
    assert main(["agent", "add", "1004", "--name", "X", "--queues", "support-en"]) == 2
    assert "the built-in demo cannot be edited" in capsys.readouterr().err
    assert main(["agent", "add", "1004", "--config", "missing.toml", "--name", "X"]) == 2
    assert "missing.toml: (file): no such config file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # ./centralita.toml is used when present.
    (tmp_path / "centralita.toml").write_text(demo_text(), encoding="utf-8")
    assert main(["agent", "add", "1004", "--name", "X", "--queues", "support-en"]) == 0
    assert load_settings(tmp_path / "centralita.toml").site.agent("1004") is not None


def test_add_with_render_to_writes_the_asterisk_files(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asterisk"
    assert (
        agent(
            config,
            "add",
            "1004",
            "--name",
            "Zoé",
            "--queues",
            "support-fr",
            "--render-to",
            str(out),
        )
        == 0
    )
    assert "member => PJSIP/1004,0,Zoé,PJSIP/1004" in (out / "queues.conf").read_text("utf-8")
    assert "exten => 1004,1,Dial(PJSIP/1004,20,tTxX)" in (out / "extensions.conf").read_text(
        "utf-8"
    )
    assert agent(config, "remove", "1004", "--render-to", str(out)) == 0
    assert "1004" not in (out / "queues.conf").read_text("utf-8")
    assert "PJSIP/1004" in (out / "queues.conf.bak").read_text("utf-8")
    assert f"changed  {out / 'queues.conf'}" in capsys.readouterr().out


def test_list_shows_agents_without_secrets(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert agent(config, "list") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["EXT", "NAME", "ROLE", "LANG", "QUEUES"]
    assert "1003  Élodie Martin  agent  fr    support-fr,support-en" in out
    assert "own-secret" not in out


# --------------------------------------------------------------------------- pure functions

WITH_TAIL = demo_text().replace('language = "fr"\n', 'language = "fr"\n# agents end here\n')
# Without agents there can be no supervisor either.
NO_AGENTS = re.sub(r"\[\[agents\]\]\n(?:[^\[\n].*\n|\n)*", "", demo_text()).replace(
    'supervisors = ["1001"]', "supervisors = []"
)
AGENTS_LAST = NO_AGENTS + (
    '\n[[agents]]\nextension = "1009"\nname = "Z"\nqueues = []\nsecret = "zzzzzzzzzz"\n'
)


@pytest.mark.parametrize("text", [demo_text(), WITH_TAIL, NO_AGENTS, AGENTS_LAST])
def test_round_trip_on_other_layouts(text: str) -> None:
    added = agents_admin.add_agent(text, "1004", "Zoé", ["support-en"], "secret-1004")
    assert tomllib.loads(added)["agents"][-1] == {
        "extension": "1004",
        "name": "Zoé",
        "queues": ["support-en"],
        "secret": "secret-1004",
    }
    assert agents_admin.remove_agent(added, "1004") == text


def test_a_file_without_final_newline_gets_one() -> None:
    text = AGENTS_LAST.rstrip("\n")
    added = agents_admin.add_agent(text, "1004", "Zoé", ["support-en"], "secret-1004")
    assert agents_admin.remove_agent(added, "1004") == text + "\n"


def test_removing_the_last_agent_drops_the_table() -> None:
    text = agents_admin.remove_agent(AGENTS_LAST, "1009")
    assert "agents" not in tomllib.loads(text)
    # The blank line that separated the table belongs to the section before it: it stays.
    assert text == NO_AGENTS + "\n"
    with pytest.raises(ConfigError):
        agents_admin.remove_agent(text, "1009")


# --------------------------------------------------------------------------- passwd


def test_passwd_stores_a_console_password(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert agent(config, "passwd", "1002", "--password", "correct horse") == 0
    answers = iter(["battery staple", "battery staple"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("sys.stdin", TtyStdin())
    assert agent(config, "passwd", "1003") == 0
    assert agent(config, "passwd", "1999", "--password", "whatever1") == 1
    assert agent(config, "passwd", "1002", "--password", "short") == 1

    async def check() -> tuple[bool, bool, bool]:
        async with Store.open(default_path(config.parent / "data")) as store:
            return (
                await store.verify_agent_password("1002", "correct horse"),
                await store.verify_agent_password("1003", "battery staple"),
                await store.verify_agent_password("1002", "short"),
            )

    assert asyncio.run(check()) == (True, True, False)
    err = capsys.readouterr().err
    assert "there is no agent with extension 1999" in err
    assert "at least 8 characters" in err

    # Removing the agent forgets the password too.
    assert agent(config, "remove", "1002") == 0
    assert "removed the console password of 1002" in capsys.readouterr().out


def test_removing_a_supervisor_drops_them_from_the_supervisors() -> None:
    text = agents_admin.remove_agent(demo_text(), "1001")
    data = tomllib.loads(text)
    assert data["console"]["supervisors"] == []
    assert [a["extension"] for a in data["agents"]] == ["1002", "1003"]
    # Only that line changed besides the agent's table; the comment after it is kept.
    assert "supervisors = []        # see every call record" in text


def cli(config: Path, *args: str, stdin: bytes) -> subprocess.CompletedProcess[str]:
    """`python -m centralita agent ...` in its own process, with `stdin` piped in."""
    return subprocess.run(
        [sys.executable, "-m", "centralita", "agent", args[0], "--config", str(config), *args[1:]],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        cwd=config.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def test_passwd_reads_a_piped_password_from_standard_input(config: Path) -> None:
    done = cli(config, "passwd", "1002", stdin=b"piped password 1\n")
    assert done.returncode == 0, done.stderr
    assert "console password set for 1002" in done.stdout

    async def check() -> bool:
        async with Store.open(default_path(config.parent / "data")) as store:
            return await store.verify_agent_password("1002", "piped password 1")

    assert asyncio.run(check())


def test_passwd_with_empty_standard_input_says_so_without_a_traceback(config: Path) -> None:
    done = cli(config, "passwd", "1002", stdin=b"")  # as `</dev/null`
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "no password on standard input" in done.stderr


def test_add_refuses_a_language_that_is_not_defined(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert agent(config, "add", "1004", "--name", "X", "--language", "de") == 2
    err = capsys.readouterr().err
    assert "no language 'de' is defined (the languages are: ar, en, fr)" in err
    assert "1004" not in config.read_text(encoding="utf-8")
    assert agent(config, "add", "1004", "--name", "X", "--language", "fr") == 0


def test_a_hand_written_agent_language_must_be_defined(tmp_path: Path) -> None:
    text = demo_text().replace('language = "fr"\n', 'language = "de"\n', 1)
    path = tmp_path / "centralita.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"agents\[2\]\.language: no language 'de' is defined"):
        load_settings(path)


def test_add_help_does_not_show_queues_as_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["agent", "add", "--help"])
    out = capsys.readouterr().out
    assert "[--queues Q1,Q2]" in out
    assert "default: none" in out
