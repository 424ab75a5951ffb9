"""Reading the recorded FastAGI transcripts of tests/fixtures/asterisk-traces (test helper)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TRACES = Path(__file__).resolve().parent / "fixtures" / "asterisk-traces"


@dataclass
class Exchange:
    command: str
    replies: list[str] = field(default_factory=list)


@dataclass
class Transcript:
    headers: list[str]
    exchanges: list[Exchange]

    def header(self, name: str) -> str:
        for line in self.headers:
            key, _, value = line.partition(": ")
            if key == name:
                return value
        raise KeyError(name)

    @property
    def args(self) -> list[str]:
        return [line.partition(": ")[2] for line in self.headers if line.startswith("agi_arg_")]


def read_transcript(name: str | Path) -> Transcript:
    """`A: ` lines are Asterisk's, `S: ` the server's, `#` lines the recorder's notes.

    `name` is a file of asterisk-traces/, or a path to a transcript anywhere else.
    """
    headers: list[str] = []
    exchanges: list[Exchange] = []
    in_headers = True
    path = name if isinstance(name, Path) else TRACES / name
    for raw in path.read_text(encoding="utf-8").split("\n"):
        if raw.startswith("#") or raw == "":
            continue
        who, _, line = raw.partition(": ")
        if who == "A" and raw == "A: ":
            line = ""
        if in_headers:
            assert who == "A", raw
            if line == "":
                in_headers = False
            else:
                headers.append(line)
            continue
        if who == "S":
            exchanges.append(Exchange(line))
        else:
            exchanges[-1].replies.append(line)
    return Transcript(headers, exchanges)


FASTAGI_TRACES = sorted(p.name for p in TRACES.glob("fastagi-*.txt"))
