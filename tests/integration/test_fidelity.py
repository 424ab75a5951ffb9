"""The simulator's ground truth, recorded afresh: each fidelity scenario on the real Asterisk.

A small FastAGI server of the test's own plays one scenario of agi_fidelity.py (a fixed list
of commands) to a call that the dialplan sends to it ([centralita-test-agi] in callers.conf),
and the test, as the caller, presses keys or hangs up while the scenario's commands run
(after Asterisk's AGIExecStart for that command, so the key reaches the command and not the
idle AGI loop, which drops it). What Asterisk answered is compared with the recording
committed for this version in fixtures/agi-fidelity/, the one the simulator replays in the
unit suite: a new Asterisk that answers differently fails here.

CENTRALITA_UPDATE_GOLDEN=1 writes the recordings instead (review the diff, then run the unit
suite: the simulator must replay them). A version without recordings of its own is compared
with the newest one committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re

import pytest
from agi_fidelity import (
    BY_NAME,
    CALLER_NAME,
    CALLER_NUMBER,
    SCENARIOS,
    Scenario,
    fixture_dir,
    format_recording,
    normalise_headers,
    normalise_replies,
    read_recording,
    recorded_versions,
)

from .amiwatch import WAIT_S, AmiWatch, matches
from .people import Call, place_call
from .site import Site

pytestmark = pytest.mark.asterisk

UPDATE = os.environ.get("CENTRALITA_UPDATE_GOLDEN") == "1"
HANGUP_AFTER_S = 0.5
_FINAL = re.compile(r"^\d{3} ")  # a reply's last line; `520-...` and HANGUP come before it


async def _line(reader: asyncio.StreamReader) -> str:
    raw = await asyncio.wait_for(reader.readline(), WAIT_S)
    assert raw.endswith(b"\n"), f"Asterisk closed the AGI session; last bytes {raw!r}"
    return raw[:-1].decode("utf-8")


async def _reply(reader: asyncio.StreamReader) -> list[str]:
    lines = [await _line(reader)]
    while not _FINAL.match(lines[-1]):
        lines.append(await _line(reader))
    return lines


async def _started(ami: AmiWatch, call: Call, command: str, after: int) -> None:
    """Wait until Asterisk runs `command` on the call (AGIExecStart precedes the handler)."""
    await ami.wait_for(
        lambda m: (
            m.name == "AGIExecStart"
            and m.get("Channel") == call.near
            and m.get("Command") == command
        ),
        after=after,
    )


async def _received(ami: AmiWatch, call: Call, command: str, keys: str, mark: int) -> None:
    """Every key pressed reached the channel (DTMFEnd, Direction Received), in order, while
    `command` ran: a key that came late would make the recording say something else."""
    last = mark
    for key in keys:
        event = await ami.wait_for(
            matches("DTMFEnd", Channel=call.near, Direction="Received", Digit=key), after=last
        )
        last = ami.events.index(event) + 1
    ended = await ami.wait_for(
        lambda m: (
            m.name == "AGIExecEnd" and m.get("Channel") == call.near and m.get("Command") == command
        ),
        after=mark,
    )
    assert ami.events.index(ended) >= last, f"the keys {keys} came after {command} ended"


async def record(ami: AmiWatch, scenario: Scenario) -> tuple[list[str], list[list[str]]]:
    """Play `scenario` on a real call; the header block and each command's reply lines."""
    sessions: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await sessions.put((reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        call = await place_call(
            ami,
            number=CALLER_NUMBER,
            name=CALLER_NAME,
            exten="100",
            context="centralita-test-agi",
            variable=f"RECORDER_PORT={port}",
        )
        reader, writer = await asyncio.wait_for(sessions.get(), WAIT_S)
        try:
            headers: list[str] = []
            while (line := await _line(reader)) != "":
                headers.append(line)
            replies: list[list[str]] = []
            for step in scenario.steps:
                mark = ami.mark()
                writer.write(step.command.encode() + b"\n")
                if step.press is not None or step.hangup:
                    await _started(ami, call, step.command, mark)
                    if step.press is not None:
                        await call.press(step.press)
                    else:
                        # The prompt must be playing when the hangup lands: one that lands
                        # before finds a dead channel (EXEC Playback then answers 0, not -1).
                        # Asterisk reports nothing when a prompt starts (no AMI event), so
                        # let it play a moment; every hangup step plays for over a second.
                        await asyncio.sleep(HANGUP_AFTER_S)
                        await call.hangup()
                replies.append(await _reply(reader))
                if step.press is not None:
                    await _received(ami, call, step.command, step.press, mark)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await call.ended()
    return headers, replies


def _without_version(headers: list[str]) -> list[str]:
    return [line for line in normalise_headers(headers) if not line.startswith("agi_version: ")]


def _reference(version: str) -> str:
    versions = recorded_versions()
    if version in versions:
        return version
    assert versions, "no fidelity recordings committed (fixtures/agi-fidelity)"
    return versions[-1]


@pytest.mark.parametrize("name", [scenario.name for scenario in SCENARIOS])
async def test_asterisk_answers_as_recorded(site: Site, ami: AmiWatch, name: str) -> None:
    scenario = BY_NAME[name]
    version = site.target.install.version
    headers, replies = await record(ami, scenario)
    text = format_recording(scenario, version, headers, replies)
    # Kept next to the site for whoever investigates a difference.
    (site.root / f"fidelity-{name}.txt").write_text(text, encoding="utf-8")
    if UPDATE:
        folder = fixture_dir(version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
        return
    reference = _reference(version)
    recorded = read_recording(reference, name)
    assert recorded.header("agi_version") == reference
    # The same headers but for what names this call (channel, uniqueid, thread, port) and
    # the version itself.
    assert f"agi_version: {version}" in headers
    assert _without_version(headers) == _without_version(recorded.headers)
    expected = normalise_replies(scenario, [e.replies for e in recorded.exchanges])
    assert [e.command for e in recorded.exchanges] == [s.command for s in scenario.steps]
    got = normalise_replies(scenario, replies)
    for step, want, have in zip(scenario.steps, expected, got, strict=True):
        assert have == want, (
            f"Asterisk {version} answered {step.command!r} with {have}, "
            f"recorded on {reference}: {want}"
        )
