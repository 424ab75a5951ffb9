"""Fidelity scenarios: FastAGI sessions recorded on each real Asterisk, replayed by the simulator.

One scenario is one FastAGI session: a fixed list of commands, and what the caller does while
some of them run (press keys, hang up). The integration suite (integration/test_fidelity.py)
plays each on a real Asterisk and writes what it answered to
fixtures/agi-fidelity/asterisk-<version>/<scenario>.txt; the unit suite
(test_agi_simulator_fidelity.py) replays those files against agi.testing with the same
scenario as the simulated caller's script. Both read the scenarios from here.

Some answers legitimately differ between two recordings of the same scenario: the channel's
name and uniqueid, the thread, the recorder's port, and the sample offset (`endpos=`) at which
a key or a hangup stopped a prompt (it depends on when the key arrived). `normalise` masks
exactly these; everything else must match byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agi_traces import Transcript, read_transcript

FIDELITY = Path(__file__).resolve().parent / "fixtures" / "agi-fidelity"

CALLER_NUMBER = "5551234567"
CALLER_NAME = "Fidelity Caller"
MISSING_SOUND = "no-such-sound-file"


@dataclass(frozen=True)
class Step:
    command: str
    press: str | None = None  # keys the caller presses while the command runs
    hangup: bool = False  # the caller hangs up while the command runs


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    steps: tuple[Step, ...]

    @property
    def hangs_up(self) -> bool:
        return any(step.hangup for step in self.steps)


# After a hangup: what a flow may still send, allowed on a dead channel or not (511).
_DEAD = (
    Step("GET VARIABLE CHANNEL(language)"),
    Step('STREAM FILE beep ""'),
    Step("GET DATA beep 1000 4"),
    Step("WAIT FOR DIGIT 1000"),
    Step('SAY DIGITS 12 ""'),
    Step("SET VARIABLE FIDELITY after"),
    Step("GET VARIABLE FIDELITY"),
    Step("GET FULL VARIABLE ${FIDELITY}"),
    Step("EXEC NoOp dead"),
    Step("EXEC Playback beep"),
    Step("EXEC Background beep"),
    Step("EXEC Read FIDELITY_READ,beep,1"),
    Step("ANSWER"),
    Step("HANGUP"),
)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "variables",
        "GET VARIABLE, GET FULL VARIABLE, SET VARIABLE and EXEC on a live channel",
        (
            Step("ANSWER"),
            Step("GET VARIABLE CHANNEL(language)"),
            Step("GET VARIABLE CHANNEL(state)"),
            Step('SET VARIABLE FIDELITY "two words"'),
            Step("GET VARIABLE FIDELITY"),
            Step('GET FULL VARIABLE "${FIDELITY} from ${CALLERID(num)}"'),
            Step("GET FULL VARIABLE ${CALLERID(name)}"),
            Step("GET VARIABLE NOSUCHVAR"),
            Step("GET FULL VARIABLE ${NOSUCHVAR}"),
            Step("SET VARIABLE CHANNEL(language) fr"),
            Step("GET VARIABLE CHANNEL(language)"),
            Step("SET VARIABLE CHANNEL(language) en"),
            Step("GET FULL VARIABLE ${DEVICE_STATE(Custom:fidelity)}"),
            Step("EXEC NoOp fidelity"),
            Step("EXEC Set FIDELITY_EXEC=done"),
            Step("GET VARIABLE FIDELITY_EXEC"),
            Step("EXEC Playback beep"),
            Step(f"EXEC Playback {MISSING_SOUND}"),
            Step("EXEC NoSuchApplication foo"),
            Step("CHANNEL STATUS"),
        ),
    ),
    Scenario(
        "keys",
        "GET DATA (digits, `#`, timeouts), STREAM FILE, SAY DIGITS and WAIT FOR DIGIT with keys",
        (
            Step("ANSWER"),
            Step("GET DATA beep 5000 3", press="123"),
            Step("GET DATA beep 5000 4", press="45#"),
            Step("GET DATA beep 5000 4", press="#"),
            Step("GET DATA beep 1000 4"),
            Step("GET DATA beep 1500 4", press="7"),
            Step('STREAM FILE beep ""'),
            Step('STREAM FILE tt-weasels "12"', press="2"),
            Step('STREAM FILE beep "12"'),
            Step(f'STREAM FILE {MISSING_SOUND} ""'),
            Step('SAY DIGITS 4321 ""'),
            Step('SAY DIGITS 98765 "9"', press="9"),
            Step("WAIT FOR DIGIT 5000", press="7"),
            Step("WAIT FOR DIGIT 500"),
        ),
    ),
    Scenario(
        "unescaped-key",
        "a key that is not an escape digit, pressed during STREAM FILE",
        (
            Step("ANSWER"),
            Step('STREAM FILE tt-weasels "1"', press="9"),
            Step("WAIT FOR DIGIT 1000"),
        ),
    ),
    Scenario(
        "hangup-get-data",
        "the caller hangs up during GET DATA; then every kind of command on the dead channel",
        (Step("ANSWER"), Step("GET DATA hello-world 10000 4", hangup=True), *_DEAD),
    ),
    Scenario(
        "hangup-stream-file",
        "the caller hangs up during STREAM FILE with escape digits",
        (
            Step("ANSWER"),
            Step('STREAM FILE tt-weasels "12"', hangup=True),
            Step("GET VARIABLE CHANNEL(language)"),
            Step("EXEC Background beep"),
            Step('STREAM FILE beep "12"'),
        ),
    ),
    Scenario(
        "hangup-wait-for-digit",
        "the caller hangs up during WAIT FOR DIGIT",
        (
            Step("ANSWER"),
            Step("WAIT FOR DIGIT 10000", hangup=True),
            Step("GET VARIABLE CHANNEL(language)"),
            Step("WAIT FOR DIGIT 1000"),
        ),
    ),
    Scenario(
        "hangup-say-digits",
        "the caller hangs up during SAY DIGITS",
        (
            Step("ANSWER"),
            Step('SAY DIGITS 1234567890 ""', hangup=True),
            Step("GET VARIABLE CHANNEL(language)"),
            Step('SAY DIGITS 1 ""'),
        ),
    ),
    Scenario(
        "hangup-exec",
        "the caller hangs up during EXEC Playback",
        (
            Step("ANSWER"),
            Step("EXEC Playback tt-weasels", hangup=True),
            Step("GET VARIABLE CHANNEL(language)"),
            Step("EXEC Playback beep"),
        ),
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


# -- fixture files ------------------------------------------------------------------------------


def fixture_dir(version: str) -> Path:
    return FIDELITY / f"asterisk-{version}"


def recorded_versions() -> list[str]:
    """The Asterisk versions with committed recordings, oldest first."""

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", version))

    return sorted(
        (p.name.removeprefix("asterisk-") for p in FIDELITY.glob("asterisk-*") if p.is_dir()),
        key=key,
    )


def recordings() -> list[tuple[str, str]]:
    """(version, scenario name) of every committed recording."""
    return [
        (version, path.stem)
        for version in recorded_versions()
        for path in sorted(fixture_dir(version).glob("*.txt"))
    ]


def read_recording(version: str, name: str) -> Transcript:
    return read_transcript(fixture_dir(version) / f"{name}.txt")


def format_recording(
    scenario: Scenario, version: str, headers: list[str], replies: list[list[str]]
) -> str:
    """A transcript in the line format of asterisk-traces/README.md."""
    lines = [
        f"# Recorded from Asterisk {version} by tests/integration/test_fidelity.py.",
        f"# Scenario {scenario.name}: {scenario.what}.",
    ]
    lines += [f"A: {line}" for line in headers]
    lines.append("A: ")
    for step, got in zip(scenario.steps, replies, strict=True):
        if step.press is not None:
            lines.append(f"# the caller presses {step.press} while this runs")
        if step.hangup:
            lines.append("# the caller hangs up while this runs")
        lines.append(f"S: {step.command}")
        lines += [f"A: {line}" for line in got]
    return "\n".join(lines) + "\n"


# -- what may differ between two recordings -----------------------------------------------------

_HEADER_MASKS: dict[str, Callable[[str], str]] = {
    "agi_channel": lambda v: re.sub(r"-[0-9a-f]{8};", "-<n>;", v),
    "agi_uniqueid": lambda v: "<uniqueid>",
    "agi_threadid": lambda v: "<threadid>",
    "agi_request": lambda v: re.sub(r":\d+/", ":<port>/", v),
}


def normalise_headers(headers: list[str]) -> list[str]:
    out = []
    for line in headers:
        name, sep, value = line.partition(": ")
        mask = _HEADER_MASKS.get(name)
        out.append(f"{name}{sep}{mask(value)}" if mask is not None else line)
    return out


def normalise_replies(scenario: Scenario, replies: list[list[str]]) -> list[list[str]]:
    """The sample offset where a key or a hangup stopped a prompt depends on the moment."""
    out = []
    for step, got in zip(scenario.steps, replies, strict=True):
        if step.press is not None or step.hangup:
            got = [re.sub(r" endpos=\d+$", " endpos=<when>", line) for line in got]
        out.append(got)
    return out
