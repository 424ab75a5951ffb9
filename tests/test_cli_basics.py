"""The `centralita` command itself: --version, help without a command, every command described."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import subcommands

from centralita.cli import build_parser, main, version


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centralita", *args], capture_output=True, text=True, check=False
    )


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"centralita {version()}"
    assert version()[0].isdigit()


@pytest.mark.parametrize("args", [(), ("agent",), ("cdr",)])
def test_a_command_without_its_action_prints_help(args: tuple[str, ...]) -> None:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: centralita {' '.join(args)}".rstrip())
    assert "error" not in done.stderr


def test_every_command_has_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = subcommands(parser)
    assert {"serve", "init", "render", "agent", "cdr", "demo", "backup"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, f"`centralita {name} --help` has no description"
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "FastAGI" in capsys.readouterr().out
