"""`centralita serve` as a user runs it: a real process, FastAGI and web on real ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from agi import loops
from agi.testing import Caller, place_call
from centralita.cli import main
from centralita.settings import demo_text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthz(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except OSError:
        return None


def serve(config: Path) -> subprocess.Popen[bytes]:
    """`centralita serve --config config` as a user starts it (output kept for the asserts)."""
    return subprocess.Popen(
        [sys.executable, "-m", "centralita", "serve", "--config", str(config)],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def demo_on(agi_port: int, web_port: int, ami_port: int) -> str:
    """The demo config on these ports, its AMI where nothing listens, its spool without
    an outgoing/ folder."""
    return (
        demo_text()
        .replace("agi_port = 4573", f"agi_port = {agi_port}")
        .replace("web_port = 8080", f"web_port = {web_port}")
        .replace("ami_port = 5038", f"ami_port = {ami_port}")
        .replace('spool_dir = "/var/spool/asterisk"', 'spool_dir = "spool"')
    )


@pytest.mark.parametrize("event_loop", loops.EVENT_LOOPS)
async def test_serve_answers_calls_while_ami_is_away(tmp_path: Path, event_loop: str) -> None:
    if not loops.available(event_loop):
        pytest.skip(f"{event_loop} cannot be installed here: {loops.UVLOOP_MISSING}")
    agi_port, web_port, ami_port = free_port(), free_port(), free_port()
    config = tmp_path / "centralita.toml"
    text = demo_on(agi_port, web_port, ami_port)
    config.write_text(
        text.replace('event_loop = "asyncio"', f'event_loop = "{event_loop}"'), encoding="utf-8"
    )
    process = serve(config)
    try:
        health = None
        for _ in range(200):  # readiness poll, not a time limit
            health = await asyncio.to_thread(healthz, web_port)
            if health is not None or process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert health is not None, process.stdout.read() if process.stdout else ""
        assert health["status"] == "ok"
        assert health["agi"] == {"listening": True, "port": agi_port, "sessions": 0}
        assert health["ami"]["connected"] is False  # type: ignore[index]

        result = await place_call("127.0.0.1", agi_port, Caller(script="language", keys=["3"]))
        assert result.route == "queue:support-fr"
        assert result.language == "fr"
        assert (tmp_path / "data").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "FastAGI server stopped" in output
    assert f"event loop: {event_loop}" in output
    # It serves, but says that survey calls cannot work from here.
    assert "WARNING" in output and f"{tmp_path / 'spool' / 'outgoing'} does not exist" in output


async def test_sighup_applies_the_edited_file_and_a_broken_one_changes_nothing(
    tmp_path: Path,
) -> None:
    """`systemctl reload centralita` (SIGHUP): the next call follows the edited file, with no
    restart; a file that does not load is logged and the server runs on as it was."""
    agi_port, web_port, ami_port = free_port(), free_port(), free_port()
    config = tmp_path / "centralita.toml"
    text = demo_on(agi_port, web_port, ami_port)
    config.write_text(text, encoding="utf-8")
    process = serve(config)
    french = Caller(script="language", keys=["3"])
    try:
        for _ in range(200):  # readiness poll, not a time limit
            if await asyncio.to_thread(healthz, web_port) or process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert (await place_call("127.0.0.1", agi_port, french)).route == "queue:support-fr"

        # French callers now wait in the English queue.
        french_queue = 'code = "fr"\nname = "Français"\nqueue = "support-fr"'
        assert french_queue in text
        config.write_text(
            text.replace(french_queue, french_queue.replace("support-fr", "support-en")),
            encoding="utf-8",
        )
        assert main(["reload", "--config", str(config)]) == 0  # checks it, then SIGHUP
        route = None
        for _ in range(100):  # until the signal is handled, not a time limit
            route = (await place_call("127.0.0.1", agi_port, french)).route
            if route != "queue:support-fr":
                break
            await asyncio.sleep(0.05)
        assert route == "queue:support-en"

        config.write_text(text.replace("[ivr]", "[ivr", 1), encoding="utf-8")  # broken
        assert main(["reload", "--config", str(config)]) == 2  # refused, nothing sent
        process.send_signal(signal.SIGHUP)  # sent by hand all the same
        await asyncio.sleep(0.5)
        assert process.poll() is None  # SIGHUP's default would have ended it
        assert (await place_call("127.0.0.1", agi_port, french)).route == "queue:support-en"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "reloaded" in output and "SIGHUP: the config file was not applied" in output
    assert output.count("SIGHUP: the config file was not applied") == 1
    config.write_text(text, encoding="utf-8")
    assert main(["reload", "--config", str(config)]) == 1  # no server runs there now
