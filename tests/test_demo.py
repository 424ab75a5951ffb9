"""`centralita demo` (what `make demo` runs): a pretend Asterisk calls the demo agent.

The command runs as a user runs it, in its own process; the tests log in with the login it
prints and wait for the pop of a call to agent 1001 on its pjsip channel.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from test_cli_serve import free_port
from test_web_support import receive_json

from centralita.demo.player import CALLERS, CallPlayer

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "asterisk-traces" / "ami-queue-sip-call.txt"


@dataclass
class Demo:
    url: str
    extension: str
    password: str
    output: list[str]


@asynccontextmanager
async def running_demo(tmp_path: Path, *, every_s: float = 4.0) -> AsyncIterator[Demo]:
    """`centralita demo` on a free port, once its banner named the console and the login."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "centralita",
        "demo",
        "--port",
        str(port),
        "--agi-port",
        "0",
        "--every",
        str(every_s),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output: list[str] = []
    banner = asyncio.Event()

    async def read_output() -> None:
        # Read it all along, so that the demo never waits on a full pipe.
        assert process.stdout is not None
        while line := await process.stdout.readline():
            output.append(line.decode())
            if "login:" in output[-1]:
                banner.set()
        banner.set()  # the demo stopped

    reader = asyncio.create_task(read_output())
    try:
        await banner.wait()
        text = "".join(output)
        url = re.search(r"console:\s+(http://\S+)", text)
        login = re.search(r"login:\s+extension (\d+), password (\S+)", text)
        assert url and login, "the demo printed no login:\n" + text
        yield Demo(url.group(1), login.group(1), login.group(2), output)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        await process.wait()
        await reader
    assert process.returncode == 0, "".join(output)
    # Its data was in a temporary folder: nothing is left where it ran.
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


async def test_the_demo_pops_a_call_at_its_agent_on_a_pjsip_channel(tmp_path: Path) -> None:
    async with (
        running_demo(tmp_path) as demo,
        aiohttp.ClientSession(demo.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as client,
    ):
        async with client.post(
            "/login",
            data={"extension": demo.extension, "password": demo.password},
            headers={"Accept": "application/json"},
        ) as resp:
            assert resp.status == 200, await resp.text()
        async with client.ws_connect("/ws") as ws:
            seen: dict[str, dict[str, object]] = {}
            while "call.ended" not in seen or "call.ringing" not in seen:
                message = await receive_json(ws, wait_s=60.0)
                seen.setdefault(message["type"], message)
        ringing = seen["call.ringing"]
        assert ringing["agent"] == "1001"
        assert ringing["queue"] == "support-en"
        assert ringing["number"] in {c.number for c in CALLERS}


def test_the_player_turns_the_recording_into_a_new_pjsip_call() -> None:
    player = CallPlayer(None, agent="1001", queue="support-en", driver="pjsip")  # type: ignore[arg-type]
    first = player.call_events(CALLERS[1])
    second = player.call_events(CALLERS[1])
    text = "\n".join(v for m in first for _, v in m.headers)
    assert "PJSIP/1001" in text and "support-en" in text and CALLERS[1].number in text
    assert "SIP/1001" not in text.replace("PJSIP/1001", "")
    assert "support-sip" not in text and "Bob Customer" not in text
    linked = {m.get("Linkedid") for m in first} - {None}
    assert len(linked) == 1 and linked != {m.get("Linkedid") for m in second} - {None}
    # The copy in the package is the recording in the fixtures, byte for byte.
    packaged = ROOT / "centralita" / "demo" / "queue-call.ami.txt"
    assert packaged.read_bytes() == FIXTURE.read_bytes()


def test_make_demo_runs_centralita_demo() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo: .*\n\t\$\(BIN\)/centralita demo$", makefile, re.MULTILINE)
    done = subprocess.run(
        [sys.executable, "-m", "centralita", "demo", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "fake Asterisk manager port" in done.stdout
