"""Call recordings on disk: the file MixMonitor writes for a call, found from its record.

The dialplan's record context runs `MixMonitor(<recordings_dir>/${UNIQUEID}.wav,b)` on the
caller's channel (conf_templates/extensions.conf.j2), and that channel's Uniqueid is the
`uniqueid` of the call's records (cdr.c: a CDR's uniqueid is its Party A's). So the store's
record names the file; nothing from a request does.
"""

from __future__ import annotations

import re
from pathlib import Path

# An Asterisk Uniqueid: `epoch.sequence`, after `systemname-` when asterisk.conf sets one
# (main/channel.c __ast_channel_alloc_ap).
UNIQUEID_RE = re.compile(r"(?:[A-Za-z0-9_.-]*-)?[0-9]+\.[0-9]+")
EXTENSION = ".wav"  # MixMonitor picks the format from the file name's extension


def file_inside(path: Path, root: Path) -> Path | None:
    """`path` resolved, when it is a regular file inside `root` (resolved too): no `..` or
    symlink leads out of the folder. None otherwise (missing included)."""
    try:
        resolved = path.resolve(strict=True)
        base = root.resolve(strict=True)
    except OSError:
        return None
    if not resolved.is_relative_to(base) or not resolved.is_file():
        return None
    return resolved


def recording_path(recordings_dir: str | Path, uniqueid: str) -> Path | None:
    """The recording of the call whose record has this Uniqueid, when it exists."""
    if not UNIQUEID_RE.fullmatch(uniqueid):
        return None
    root = Path(recordings_dir)
    return file_inside(root / f"{uniqueid}{EXTENSION}", root)
