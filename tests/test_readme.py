"""The README's examples, run as a reader would run them.

Each ```python block runs in its own interpreter (as a file a reader saved), against a real
FastAGI server with the demo's flows; what it prints must match the `# expected` comment on
each `print(...)` line. The commands in the ```sh blocks must be commands that exist.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import FlowEnv, subcommands

from centralita.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PYTHON_BLOCKS = [code for lang, code in BLOCK.findall(README) if lang == "python"]
PRINT_EXPECTED = re.compile(r"^\s*print\(.*\)\s*#\s*(.+)$")


def test_the_readme_has_python_examples() -> None:
    assert PYTHON_BLOCKS


@pytest.mark.parametrize("code", PYTHON_BLOCKS, ids=lambda c: c.splitlines()[0][:40])
async def test_a_python_example_runs_as_written(
    code: str, flow_env: FlowEnv, tmp_path: Path
) -> None:
    # The examples talk to Centralita's default FastAGI port; this one listens elsewhere.
    script = tmp_path / "example.py"
    script.write_text(code.replace("4573", str(flow_env.port)), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    expected = [m.group(1) for line in code.splitlines() if (m := PRINT_EXPECTED.match(line))]
    printed = out.decode().splitlines()
    assert len(printed) == len(expected), out.decode()
    for line, wanted in zip(printed, expected, strict=True):
        # "..." ends an expectation that the README shortens.
        if wanted.endswith("..."):
            assert line.startswith(wanted.removesuffix("...").rstrip(" ,")), (line, wanted)
        else:
            assert line == wanted


def test_every_command_in_the_readme_exists() -> None:
    commands = set(subcommands(build_parser()))
    mentioned = set()
    for lang, code in BLOCK.findall(README):
        if lang in ("sh", ""):
            mentioned.update(re.findall(r"(?:^|\s)centralita ([a-z][a-z-]*)", code, re.MULTILINE))
    assert mentioned, "no command found"
    assert mentioned <= commands, mentioned - commands
