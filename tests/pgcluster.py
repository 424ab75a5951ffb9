"""A scratch PostgreSQL for the tests and benchmarks: Debian's server binaries
(`postgresql` package) run as an unprivileged user in a temporary folder, listening on a
unix socket only, stopped at the end; or the server `CENTRALITA_TEST_POSTGRES_URL` names
(its password, if any, in PGPASSWORD).

initdb and pg_ctl refuse to run as root (src/bin/initdb/initdb.c, "cannot be run as
root"), so under root they run as `nobody` through runuser.

A scratch cluster is stopped by its fixture, at interpreter exit (atexit), and on SIGTERM:
`pg_ctl start` leaves the postmaster running on its own, and a pytest killed with SIGTERM
(a CI job's timeout, `kill`) runs no atexit handler, which left it running for good.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

ENV_URL = "CENTRALITA_TEST_POSTGRES_URL"
UNPRIVILEGED_USER = "nobody"


class PostgresUnavailable(Exception):
    """Why no PostgreSQL can be had here (the PostgreSQL variants skip with it)."""


def server_bin_dir() -> Path | None:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Cluster:
    """A running server: `url` for its `postgres` database, `stop` when done."""

    url: str
    folder: Path | None = None
    bin_dir: Path | None = None
    _as_user: list[str] = field(default_factory=list)
    _schemas: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def schema_url(self, name: str) -> str:
        """This server's URL with `name` as the search path: one test's own tables."""
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options={quote(f'-c search_path={name}')}"

    def next_schema(self, prefix: str = "t") -> str:
        return f"{prefix}_{os.getpid()}_{next(self._schemas)}"

    def stop(self) -> None:
        if self.folder is None or self.bin_dir is None:
            return
        subprocess.run(
            [*self._as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"),
             "-m", "fast", "-w", "stop"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
        if self in _running:
            _running.remove(self)


def start_cluster(*, durable: bool = False) -> Cluster:
    """`CENTRALITA_TEST_POSTGRES_URL`'s server, else a scratch cluster; PostgresUnavailable
    says why neither can be had. Not `durable` (tests): no fsync, as nothing is kept.
    `durable` (benchmarks): PostgreSQL's defaults, so a commit costs what it costs."""
    url = os.environ.get(ENV_URL)
    if url:
        return Cluster(url=url)
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries (apt-get install postgresql), and {ENV_URL} is unset"
        )
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PostgresUnavailable("running as root without runuser to drop privileges")
        as_user = [runuser, "-u", UNPRIVILEGED_USER, "--"]
    folder = Path(tempfile.mkdtemp(prefix="centralita-pg-"))
    if as_user:
        shutil.chown(folder, UNPRIVILEGED_USER)
    folder.chmod(0o700)
    data = folder / "data"
    try:
        subprocess.run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "centralita",
             "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        # The socket in its own folder only; for tests, durability off (nothing is kept).
        options = f"-k {folder} -c listen_addresses=''"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        else:
            options += " -c shared_buffers=1GB"
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
             "-l", str(folder / "log"), "-w", "-t", "60", "start"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(folder, ignore_errors=True)
        raise PostgresUnavailable(
            f"could not start a scratch PostgreSQL from {bin_dir}: {exc} "
            f"{detail.decode(errors='replace').strip()}"
        ) from None
    cluster = Cluster(
        url=f"postgresql://centralita@/postgres?host={quote(str(folder), safe='/')}",
        folder=folder,
        bin_dir=bin_dir,
        _as_user=as_user,
    )
    # Stopped even when the run ends another way than through its fixture (an interrupt).
    atexit.register(cluster.stop)
    _stop_on_sigterm(cluster)
    return cluster


_running: list[Cluster] = []
_previous_sigterm: Any = None


def _stop_on_sigterm(cluster: Cluster) -> None:
    """Stop `cluster` when this process gets SIGTERM, then end as SIGTERM would have."""
    global _previous_sigterm
    _running.append(cluster)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers are set in the main thread only; atexit still stops it
    if _previous_sigterm is None:
        _previous_sigterm = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    while _running:
        _running.pop().stop()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # The default action: die of SIGTERM (exit status 143 to a shell), as without us.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
