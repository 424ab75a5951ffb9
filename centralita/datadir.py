"""The data folder's lock: one `centralita serve` per data_dir, and how others find it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "centralita.lock"


class DataDirLocked(OSError):
    """Another `centralita serve` holds the data folder."""


def lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive lock on `data_dir` for this process's life; returns its descriptor.

    Two servers on one data folder would both drain the webhook outbox (72 of 160 events
    were delivered twice) and both write the CSV logs (issue 10, finding 10). flock is
    released by the kernel when the process ends, even by `kill -9`: no stale lock.
    """
    data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise DataDirLocked(
            f"{data_dir} is in use by another centralita serve (pid {holder}); "
            "one server per data_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def running_server(data_dir: Path) -> int | None:
    """The pid of the `centralita serve` that holds `data_dir` (its lock, `lock_data_dir`),
    or None when none runs there. PermissionError: the lock is another user's to read."""
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDONLY)
    except PermissionError:
        raise
    except OSError:  # no lock file: no server ever ran on this data_dir
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
