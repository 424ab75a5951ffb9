"""What a report reads from the store for one period: the report tables' rows (see
`report_tables`), the pauses, ratings and callbacks of the period. The figures themselves
(rates, averages, percentiles) are computed by `centralita.reports`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from centralita.store.base import Row, StoreBase
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


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


# One query of a report: its SQL, its parameters, and what takes its rows into ReportData.
Step = tuple[str, tuple[str, ...], Callable[[Iterable[Row]], None]]


class ReportQueriesMixin(StoreBase):
    """Reads for `centralita.reports` (portable SQL; the tables are small per period)."""

    async def report_data(
        self, *, first_day: str, end_day: str, start_utc: str, end_utc: str, by_hour: bool
    ) -> ReportData:
        """The period from local day `first_day` up to (not including) `end_day`
        (`YYYY-MM-DD`), which is `start_utc` to `end_utc` in UTC ISO-8601; its figures over
        time per hour (`by_hour`) or per day.

        The same queries on every backend (`report_steps`); SQLite reads them on a
        connection of its own in a worker thread (`centralita.store.sqlite`)."""
        data = ReportData()
        async with self._read() as db:
            for sql, params, take in report_steps(
                data, first_day, end_day, start_utc, end_utc, by_hour
            ):
                async with db.execute(sql, params) as cur:
                    take(await cur.fetchall())
        return data


def read_report_sqlite(
    path: Path, first_day: str, end_day: str, start_utc: str, end_utc: str, by_hour: bool
) -> ReportData:
    """`report_data` on a read-only SQLite connection of its own (run in a worker thread):
    a report neither waits for the store's writes nor holds them up (WAL readers never
    block the writer), its dozen queries cost one hand-over between threads, and one
    transaction gives them one snapshot."""
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("BEGIN")  # one snapshot for every query of the report
        data = ReportData()
        for sql, params, take in report_steps(
            data, first_day, end_day, start_utc, end_utc, by_hour
        ):
            cur = db.execute(sql, params)
            try:
                take(cur.fetchall())
            finally:
                cur.close()
        return data
    finally:
        db.close()


def report_steps(
    data: ReportData,
    first_day: str,
    end_day: str,
    start_utc: str,
    end_utc: str,
    by_hour: bool,
) -> list[Step]:
    """The queries of one period's report, each with what takes its rows into `data`."""
    steps: list[Step] = []
    sums = ", ".join(f"SUM({s}) AS {s}" for s in QUEUE_SUMS)

    def into_sums(into: dict[str, dict[str, int]]) -> Callable[[Iterable[Row]], None]:
        def take(rows: Iterable[Row]) -> None:
            for row in rows:
                into[row["k"]] = {s: int(row[s] or 0) for s in QUEUE_SUMS}

        return take

    # The queues' hours added up three ways, by SQL: per queue, per hour of the day,
    # per hour or day of the period.
    groups = (
        ("queue", data.queue_sums),
        ("substr(hour, 12, 2)", data.hour_of_day_sums),
        ("hour" if by_hour else "substr(hour, 1, 10)", data.time_sums),
    )
    for group, into in groups:
        steps.append(
            (
                f"SELECT {group} AS k, {sums} FROM report_queue_hours "  # noqa: S608
                f"WHERE hour >= ? AND hour < ? GROUP BY {group}",
                (first_day, end_day),
                into_sums(into),
            )
        )

    def agents(rows: Iterable[Row]) -> None:
        for row in rows:
            data.agent_sums[row["agent"]] = {s: int(row[s] or 0) for s in AGENT_SUMS}

    steps.append(
        (
            "SELECT agent, "  # noqa: S608 (constant column names)
            + ", ".join(f"SUM({s}) AS {s}" for s in AGENT_SUMS)
            + " FROM report_agent_days WHERE day >= ? AND day < ? GROUP BY agent ORDER BY agent",
            (first_day, end_day),
            agents,
        )
    )
    first = date.fromisoformat(first_day)
    whole_month = first.day == 1 and date.fromisoformat(end_day) == _next_month(first)

    def waits(rows: Iterable[Row]) -> None:
        for row in rows:
            if row["n"]:
                histogram = data.waits.setdefault((row["scope"], row["name"]), {})
                histogram[int(row["wait_s"])] = int(row["n"])

    # A whole month reads its month rows; other periods add their days up.
    steps.append(
        (
            "SELECT scope, name, wait_s, n FROM report_waits WHERE span = 'month' AND day = ?"
            if whole_month
            else "SELECT scope, name, wait_s, SUM(n) AS n FROM report_waits "
            "WHERE span = 'day' AND day >= ? AND day < ? GROUP BY scope, name, wait_s",
            (first_day,) if whole_month else (first_day, end_day),
            waits,
        )
    )

    def pause_sums(rows: Iterable[Row]) -> None:
        data.pause_sums.extend((r["agent"], r["reason"], int(r["seconds"] or 0)) for r in rows)

    steps.append(
        (
            "SELECT agent, reason, SUM(duration_s) AS seconds FROM agent_pauses "
            "WHERE started_at >= ? AND started_at < ? AND ended_at <= ? "
            "GROUP BY agent, reason",
            (start_utc, end_utc, end_utc),
            pause_sums,
        )
    )

    def pauses(rows: Iterable[Row]) -> None:
        data.pauses.extend((r["agent"], r["reason"], r["started_at"], r["ended_at"]) for r in rows)

    # The pauses across the period's start or end, and the open ones: cut in Python.
    for where, params in (
        ("ended_at > ? AND started_at < ?", (start_utc, start_utc)),
        (
            "started_at >= ? AND started_at < ? AND ended_at > ?",
            (start_utc, end_utc, end_utc),
        ),
        ("ended_at IS NULL AND started_at < ?", (end_utc,)),
    ):
        steps.append(
            (
                "SELECT agent, reason, started_at, ended_at FROM agent_pauses "  # noqa: S608
                f"WHERE {where}",
                params,
                pauses,
            )
        )

    def ratings(rows: Iterable[Row]) -> None:
        for row in rows:
            if row["n"]:
                counts = data.ratings.setdefault((row["scope"], row["name"]), {})
                counts[int(row["rating"])] = int(row["n"])

    steps.append(
        (
            "SELECT scope, name, rating, n FROM report_ratings WHERE span = 'month' AND day = ?"
            if whole_month
            else "SELECT scope, name, rating, SUM(n) AS n FROM report_ratings "
            "WHERE span = 'day' AND day >= ? AND day < ? GROUP BY scope, name, rating",
            (first_day,) if whole_month else (first_day, end_day),
            ratings,
        )
    )

    def callbacks(rows: Iterable[Row]) -> None:
        data.callbacks.extend((r["queue"], r["status"], int(r["n"])) for r in rows)

    steps.append(
        (
            "SELECT queue, status, COUNT(*) AS n FROM callbacks "
            "WHERE created_at >= ? AND created_at < ? GROUP BY queue, status",
            (start_utc, end_utc),
            callbacks,
        )
    )
    return steps
