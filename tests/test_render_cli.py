"""`centralita render --out DIR [--reload]`: atomic writes, .bak copies, errors, AMI reload."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ami.testing import FakeAmiServer
from centralita.cli import main
from centralita.settings import demo_text

NAMES = {
    "pjsip.conf",
    "queues.conf",
    "extensions.conf",
    "voicemail.conf",
    "features.conf",
    "manager.conf",
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "centralita.toml"
    # The demo's SIP passwords are public: render refuses them (see below).
    path.write_text(demo_text().replace("demo-secret-", "own-secret-"), encoding="utf-8")
    return path


def test_render_refuses_the_demo_sip_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "centralita.toml"
    config.write_text(demo_text().replace("demo-secret-1002", "own-secret-1002"), "utf-8")
    out = tmp_path / "asterisk"
    assert render(config, out) == 2
    err = capsys.readouterr().err
    assert "refusing to render: members[0].secret (1001), members[2].secret (1003)" in err
    assert "would listen on 0.0.0.0:5060 (asterisk.sip_bind)" in err
    assert not out.exists()
    # The built-in demo too (no --config, no ./centralita.toml).
    assert main(["render", "--out", str(out)]) == 2
    assert "refusing to render" in capsys.readouterr().err
    # On loopback only (a test rig, a lab), the demo's passwords reach nobody.
    for bind in ("127.0.0.1:5062", "[::1]:5060"):
        text = demo_text().replace('sip_bind = "0.0.0.0:5060"', f'sip_bind = "{bind}"')
        config.write_text(text, "utf-8")
        assert render(config, tmp_path / bind.strip("[]").replace(":", "_")) == 0


def render(config: Path, out: Path, *extra: str) -> int:
    return main(["render", "--config", str(config), "--out", str(out), *extra])


def test_render_writes_every_file_then_reports_unchanged(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asterisk"
    assert render(config, out) == 0
    first = capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == NAMES
    assert first.count("new  ") == 6
    # Files with secrets are not world-readable; nothing temporary is left behind.
    assert stat.S_IMODE((out / "pjsip.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "manager.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "extensions.conf").stat().st_mode) == 0o644
    inodes = {p.name: p.stat().st_ino for p in out.iterdir()}

    assert render(config, out) == 0
    second = capsys.readouterr().out
    assert second.count("unchanged  ") == 6
    assert {p.name: p.stat().st_ino for p in out.iterdir()} == inodes


def test_a_change_replaces_only_the_affected_files_and_keeps_bak(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asterisk"
    assert render(config, out) == 0
    old_queues = (out / "queues.conf").read_bytes()
    old_features_inode = (out / "features.conf").stat().st_ino
    (out / "queues.conf").chmod(0o600)  # an admin's choice of mode is kept
    capsys.readouterr()

    config.write_text(
        config.read_text(encoding="utf-8").replace('name = "John Smith"', 'name = "John Smyth"'),
        encoding="utf-8",
    )
    assert render(config, out) == 0
    report = capsys.readouterr().out
    assert f"changed  {out / 'queues.conf'}" in report
    assert f"unchanged  {out / 'features.conf'}" in report
    assert (out / "queues.conf.bak").read_bytes() == old_queues
    assert b"John Smyth" in (out / "queues.conf").read_bytes()
    assert stat.S_IMODE((out / "queues.conf").stat().st_mode) == 0o600
    assert (out / "features.conf").stat().st_ino == old_features_inode
    assert not (out / "features.conf.bak").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_an_invalid_config_writes_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asterisk"
    assert render(config, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()

    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('name = "John Smith"', 'name = "John\\n[evil]"'), "utf-8")
    assert render(config, out) == 2
    err = capsys.readouterr().err
    assert f"{config}: members[1].name: display name contains a control character" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # A value only the renderer refuses: still nothing written, and a fresh folder stays empty.
    monitor = 'recordings_dir = "/var/spool/asterisk/monitor"'
    assert monitor in text
    config.write_text(text.replace(monitor, 'recordings_dir = "relative/dir"'), "utf-8")
    fresh = tmp_path / "fresh"
    assert render(config, fresh) == 2
    err = capsys.readouterr().err
    assert "asterisk.recordings_dir" in err and "must be an absolute path" in err
    assert not fresh.exists()


def test_a_missing_ami_secret_is_generated_once_and_kept(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'ami_secret = "change-me-centralita"', "# no secret"
        ),
        encoding="utf-8",
    )
    out = tmp_path / "asterisk"
    assert render(config, out) == 0
    note = capsys.readouterr().err
    assert "asterisk.ami_secret is not set" in note
    assert "generated one" in note
    secret_line = next(
        line
        for line in (out / "manager.conf").read_text(encoding="utf-8").splitlines()
        if line.startswith("secret = ")
    )
    secret = secret_line.removeprefix("secret = ")
    assert len(secret) >= 16
    assert f'ami_secret = "{secret}"' in note

    assert render(config, out) == 0
    again = capsys.readouterr()
    assert "kept the one in manager.conf" in again.err
    assert f"unchanged  {out / 'manager.conf'}" in again.out


# --------------------------------------------------------------------------- --reload


RELOAD_COMMANDS = (
    "dialplan reload",
    "module reload app_queue.so",
    "module reload res_pjsip.so",
    "module reload app_voicemail.so",
    "module reload features",
    "manager reload",
)


class ThreadedAmi:
    """`ami.testing.FakeAmiServer` on its own loop in a thread: `render` runs its own
    `asyncio.run`, so the fake cannot share the test's loop."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.kwargs = kwargs

    def __enter__(self) -> FakeAmiServer:
        self.thread.start()

        async def start() -> FakeAmiServer:
            return await FakeAmiServer(login_failure_delay=0.05, **self.kwargs).start()

        self.fake = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def reload_secret(out: Path) -> str:
    """The reload user's secret in a rendered manager.conf."""
    lines = (out / "manager.conf").read_text(encoding="utf-8").splitlines()
    start = lines.index("[centralita-reload]")
    return next(x for x in lines[start:] if x.startswith("secret = ")).removeprefix("secret = ")


@pytest.fixture
def ami_config(config: Path, tmp_path: Path) -> Iterator[tuple[Path, FakeAmiServer]]:
    # Asterisk knows the reload user from a first render (then `manager reload`).
    out = tmp_path / "out"
    assert render(config, out) == 0
    answers = {c: [f"done: {c}"] for c in RELOAD_COMMANDS}
    with ThreadedAmi(
        username="centralita-reload", secret=reload_secret(out), commands=answers
    ) as ami:
        text = config.read_text(encoding="utf-8").replace(
            "ami_port = 5038", f"ami_port = {ami.port}"
        )
        config.write_text(text, encoding="utf-8")
        yield config, ami


def commands_sent(ami: FakeAmiServer) -> list[str]:
    return [a.value("Command") for a in ami.actions_named("Command")]


def test_reload_sends_each_command_and_reports_the_answers(
    ami_config: tuple[Path, FakeAmiServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ami = ami_config
    assert render(config, tmp_path / "out", "--reload") == 0
    report = capsys.readouterr().out
    assert commands_sent(ami) == list(RELOAD_COMMANDS)
    for command in RELOAD_COMMANDS:
        assert f"asterisk: {command}: Success: Command output follows / done: {command}" in report
    # As the reload user, with the MD5 challenge: never the runtime user, never in clear.
    assert ami.logins == [("centralita-reload", "md5")]
    assert all("Secret" not in a for a in ami.actions_named("Login"))


def test_reload_reports_a_failed_command(
    ami_config: tuple[Path, FakeAmiServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ami = ami_config
    del ami.commands["module reload app_queue.so"]
    assert render(config, tmp_path / "out", "--reload") == 1
    report = capsys.readouterr().out
    assert "asterisk: module reload app_queue.so: Error: " in report
    assert "No such command 'module reload app_queue.so'" in report
    assert len(commands_sent(ami)) == 6  # one failure does not stop the others


def test_reload_with_a_wrong_secret_says_login_refused(
    ami_config: tuple[Path, FakeAmiServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ami = ami_config
    ami.secret = "another-secret"
    assert render(config, tmp_path / "out", "--reload") == 1
    err = capsys.readouterr().err
    assert "login as 'centralita-reload' refused: Authentication failed" in err
    assert 'asterisk -rx "manager reload"' in err
    assert commands_sent(ami) == []


def test_reload_with_ami_unreachable_keeps_the_files(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = config.read_text(encoding="utf-8").replace("ami_port = 5038", f"ami_port = {port}")
    config.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    assert render(config, out, "--reload") == 1
    err = capsys.readouterr().err
    assert f"Asterisk's AMI at 127.0.0.1:{port} is unreachable" in err
    assert "the files are written" in err
    assert {p.name for p in out.iterdir()} == NAMES


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_a_rewritten_file_keeps_its_owner_group_and_mode(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asterisk"
    assert render(config, out) == 0
    # As an admin sets it up: Asterisk's group reads the files with secrets.
    os.chown(out / "pjsip.conf", 65534, 65534)
    (out / "pjsip.conf").chmod(0o640)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("own-secret-1002", "new-secret-1002"), "utf-8")
    assert render(config, out) == 0
    assert "changed  " in capsys.readouterr().out
    for name in ("pjsip.conf", "pjsip.conf.bak"):
        info = (out / name).stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (65534, 65534, 0o640)
    assert "new-secret-1002" in (out / "pjsip.conf").read_text(encoding="utf-8")
