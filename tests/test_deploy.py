"""The shipped systemd unit and docs/deploy.md agree with the code."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from centralita.cli import build_parser
from centralita.settings import demo_text, parse_settings

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "centralita.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_the_unit_gives_centralita_the_cpu_before_asterisk() -> None:
    service = unit()["Service"]
    # asterisk.service has the defaults: CPUWeight 100, nice 0.
    assert int(service["CPUWeight"]) > 100
    assert int(service["Nice"]) < 0
    assert "asterisk.service" in unit()["Unit"]["After"]


def test_the_unit_runs_serve_and_waits_for_its_grace() -> None:
    service = unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/centralita")
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.config) == ("serve", "/etc/centralita/centralita.toml")
    grace = parse_settings(demo_text(), "demo", ROOT, None).server.shutdown_grace_s
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > grace
    # The spool must stay writable under ProtectSystem=strict.
    assert "/var/spool/asterisk" in service["ReadWritePaths"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_reads_the_unit_without_complaint(tmp_path: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    # The user and the binary do not exist here; the syntax must still be accepted.
    bad = [
        line
        for line in done.stderr.splitlines()
        if "Unknown" in line or "unknown" in line or "Invalid" in line
    ]
    assert bad == []


def test_the_deploy_guide_names_what_exists() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "deploy/centralita.service" in text
    assert "trusted_proxies" in text and "centralita backup" in text
    assert "centralita_event_loop_lag_seconds" in text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/deploy.md" in readme
