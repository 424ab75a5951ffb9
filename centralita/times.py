"""One way to show a moment to a person: local time with its UTC offset.

The store keeps log times as UTC ISO-8601 text and call records in Asterisk's wall-clock
time (naive, the machine's local time, as cdr_csv and cdr_manager write it). Shown side by
side, a UTC time and a local one without a zone were easy to misread by hours, so the CLI
tables and the console pages show every time through `shown()`: the process's local time
zone (TZ, else the system's) with its offset, e.g. `2026-03-01 12:00:05+01:00`.
"""

from __future__ import annotations

from datetime import datetime


def shown(moment: datetime | str | None) -> str:
    """`moment` as local time with its offset; naive datetimes are local wall-clock time."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    # astimezone() on a naive datetime takes it as local time (what Asterisk wrote).
    return moment.astimezone().isoformat(sep=" ", timespec="seconds")
