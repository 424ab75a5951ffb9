"""tests/pgcluster.py itself: a run killed with SIGTERM stops its scratch PostgreSQL too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pgcluster import ENV_URL, server_bin_dir

HOLDER = """
import sys, time
from pgcluster import start_cluster
cluster = start_cluster()
print(cluster.folder, flush=True)
time.sleep(3600)
"""


def _alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie waiting for its parent has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _ended(pid: int) -> bool:
    """True once `pid` has ended: `pg_ctl stop -w` returns when the server removed its pid
    file, a moment before its process is gone."""
    for _ in range(600):
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_sigterm_stops_the_scratch_cluster() -> None:
    if server_bin_dir() is None:
        if os.environ.get("CENTRALITA_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server binaries are required here")
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    env = {k: v for k, v in os.environ.items() if k != ENV_URL}  # a scratch one, always
    env["PYTHONPATH"] = str(Path(__file__).parent)
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            folder = Path(holder.stdout.readline().strip())
            postmaster = int((folder / "data" / "postmaster.pid").read_text().split()[0])
            assert _alive(postmaster)
            holder.send_signal(signal.SIGTERM)
            # Still ends as a process killed by SIGTERM does (the shell's 143) ...
            assert holder.wait(timeout=120) == -signal.SIGTERM
        finally:
            if holder.poll() is None:
                holder.kill()
    # ... and the server went with it, and its folder.
    assert _ended(postmaster)
    assert not folder.exists()
