"""What a report reads from the store for one period: the report tables' rows (see
`report_tables`), the pauses, ratings and callbacks of the period. The figures themselves
(rates, averages, percentiles) are computed by `centralita.reports`."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from centralita.store.base import StoreBase
from centralita.store.report_tables import AGENT_SUMS, QUEUE_SUMS


@dataclass(frozen=True)
class ReportData:
    """The raw material of one period's report.

    * `queue_sums`: queue -> {sum name: value} over the period;
    * `hour_of_day_sums`: `HH` -> sums of every queue, the period's days together;
    * `time_sums`: local hour `YYYY-MM-DD HH` (`by_hour`) or day `YYYY-MM-DD` -> sums;
    * `agent_sums`: agent -> {sum name: value} over the period;
    * `waits`: (scope `queue`|`agent`, name) -> {wait edge in s: callers};
    * `pause_sums`: (agent, reason, seconds) of the pauses that began and ended inside the
      period; `pauses`: (agent, reason, started_at, ended_at or None), UTC ISO, of those
      that cross an end of the period or are still open (cut to the period by the report);
    * `ratings`: (scope `all`|`queue`|`agent`, name) -> {rating: count} (local days);
    * `callbacks`: (queue, status, count) of the callbacks requested in the period.
    """

    queue_sums: dict[str, dict[str, int]] = field(default_factory=dict)
    hour_of_day_sums: dict[str, dict[str, int]] = field(default_factory=dict)
    time_sums: dict[str, dict[str, int]] = field(default_factory=dict)
    agent_sums: dict[str, dict[str, int]] = field(default_factory=dict)
    waits: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    pause_sums: list[tuple[str, str, int]] = field(default_factory=list)
    pauses: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    ratings: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    callbacks: list[tuple[str, str, int]] = field(default_factory=list)


@contextlib.contextmanager
def _cursor(db: sqlite3.Connection, sql: str, params: tuple[str, ...]) -> Iterator[sqlite3.Cursor]:
    cur = db.execute(sql, params)
    try:
        yield cur
    finally:
        cur.close()


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


class ReportQueriesMixin(StoreBase):
    """Reads for `centralita.reports` (portable SQL; the tables are small per period)."""

    async def report_data(
        self, *, first_day: str, end_day: str, start_utc: str, end_utc: str, by_hour: bool
    ) -> ReportData:
        """The period from local day `first_day` up to (not including) `end_day`
        (`YYYY-MM-DD`), which is `start_utc` to `end_utc` in UTC ISO-8601; its figures over
        time per hour (`by_hour`) or per day.

        Read on a connection of its own, in one worker thread: a report neither waits for
        the store's writes nor holds them up (WAL readers never block the writer), and its
        dozen queries cost one hand-over between threads, not two each."""
        return await asyncio.to_thread(
            _report_data, self.path, first_day, end_day, start_utc, end_utc, by_hour
        )


def _report_data(
    path: Path, first_day: str, end_day: str, start_utc: str, end_utc: str, by_hour: bool
) -> ReportData:
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("BEGIN")  # one snapshot for every query of the report
        return _read_report(db, first_day, end_day, start_utc, end_utc, by_hour)
    finally:
        db.close()


def _read_report(
    db: sqlite3.Connection,
    first_day: str,
    end_day: str,
    start_utc: str,
    end_utc: str,
    by_hour: bool,
) -> ReportData:
    data = ReportData()
    sums = ", ".join(f"SUM({s}) AS {s}" for s in QUEUE_SUMS)
    # The queues' hours added up three ways, by SQL: per queue, per hour of the day,
    # per hour or day of the period.
    groups = (
        ("queue", data.queue_sums),
        ("substr(hour, 12, 2)", data.hour_of_day_sums),
        ("hour" if by_hour else "substr(hour, 1, 10)", data.time_sums),
    )
    first = date.fromisoformat(first_day)
    whole_month = first.day == 1 and date.fromisoformat(end_day) == _next_month(first)
    agent_sql = (
        "SELECT agent, "  # noqa: S608 (constant column names)
        + ", ".join(f"SUM({s}) AS {s}" for s in AGENT_SUMS)
        + " FROM report_agent_days WHERE day >= ? AND day < ? GROUP BY agent ORDER BY agent"
    )
    for group, into in groups:
        with _cursor(
            db,
            f"SELECT {group} AS k, {sums} FROM report_queue_hours "  # noqa: S608
            f"WHERE hour >= ? AND hour < ? GROUP BY {group}",
            (first_day, end_day),
        ) as cur:
            for row in cur.fetchall():
                into[row["k"]] = {s: int(row[s] or 0) for s in QUEUE_SUMS}
    with _cursor(db, agent_sql, (first_day, end_day)) as cur:
        for row in cur.fetchall():
            data.agent_sums[row["agent"]] = {s: int(row[s] or 0) for s in AGENT_SUMS}
    # A whole month reads its month rows; other periods add their days up.
    with _cursor(
        db,
        "SELECT scope, name, wait_s, n FROM report_waits WHERE span = 'month' AND day = ?"
        if whole_month
        else "SELECT scope, name, wait_s, SUM(n) AS n FROM report_waits "
        "WHERE span = 'day' AND day >= ? AND day < ? GROUP BY scope, name, wait_s",
        (first_day,) if whole_month else (first_day, end_day),
    ) as cur:
        for row in cur.fetchall():
            if row["n"]:
                histogram = data.waits.setdefault((row["scope"], row["name"]), {})
                histogram[int(row["wait_s"])] = int(row["n"])
    with _cursor(
        db,
        "SELECT agent, reason, SUM(duration_s) AS seconds FROM agent_pauses "
        "WHERE started_at >= ? AND started_at < ? AND ended_at <= ? "
        "GROUP BY agent, reason",
        (start_utc, end_utc, end_utc),
    ) as cur:
        data.pause_sums.extend(
            (r["agent"], r["reason"], int(r["seconds"] or 0)) for r in cur.fetchall()
        )
    # The pauses across the period's start or end, and the open ones: cut in Python.
    for sql, params in (
        ("ended_at > ? AND started_at < ?", (start_utc, start_utc)),
        (
            "started_at >= ? AND started_at < ? AND ended_at > ?",
            (start_utc, end_utc, end_utc),
        ),
        ("ended_at IS NULL AND started_at < ?", (end_utc,)),
    ):
        with _cursor(
            db,
            "SELECT agent, reason, started_at, ended_at FROM agent_pauses "  # noqa: S608
            f"WHERE {sql}",
            params,
        ) as cur:
            data.pauses.extend(
                (r["agent"], r["reason"], r["started_at"], r["ended_at"]) for r in cur.fetchall()
            )
    with _cursor(
        db,
        "SELECT scope, name, rating, n FROM report_ratings WHERE span = 'month' AND day = ?"
        if whole_month
        else "SELECT scope, name, rating, SUM(n) AS n FROM report_ratings "
        "WHERE span = 'day' AND day >= ? AND day < ? GROUP BY scope, name, rating",
        (first_day,) if whole_month else (first_day, end_day),
    ) as cur:
        for row in cur.fetchall():
            if row["n"]:
                counts = data.ratings.setdefault((row["scope"], row["name"]), {})
                counts[int(row["rating"])] = int(row["n"])
    with _cursor(
        db,
        "SELECT queue, status, COUNT(*) AS n FROM callbacks "
        "WHERE created_at >= ? AND created_at < ? GROUP BY queue, status",
        (start_utc, end_utc),
    ) as cur:
        data.callbacks.extend((r["queue"], r["status"], int(r["n"])) for r in cur.fetchall())
    return data
