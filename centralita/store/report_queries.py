"""What a report reads from the store for one period: the report tables' rows (see
`report_tables`), the pauses, ratings and callbacks of the period. The figures themselves
(rates, averages, percentiles) are computed by `centralita.reports`."""

from __future__ import annotations

from dataclasses import dataclass, field

from centralita.store.base import StoreBase
from centralita.store.report_tables import AGENT_SUMS, QUEUE_SUMS


@dataclass(frozen=True)
class ReportData:
    """The raw material of one period's report.

    * `queue_hours`: (local hour `YYYY-MM-DD HH`, queue, {sum name: value}) per row;
    * `agent_sums`: agent -> {sum name: value} over the period;
    * `waits`: (scope `queue`|`agent`, name) -> {wait edge in s: callers};
    * `pauses`: (agent, reason, started_at, ended_at or None), UTC ISO, overlapping the
      period;
    * `ratings`: (queue, agent, rating, count);
    * `callbacks`: (queue, status, count) of the callbacks requested in the period.
    """

    queue_hours: list[tuple[str, str, dict[str, int]]] = field(default_factory=list)
    agent_sums: dict[str, dict[str, int]] = field(default_factory=dict)
    waits: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    pauses: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    ratings: list[tuple[str, str, int, int]] = field(default_factory=list)
    callbacks: list[tuple[str, str, int]] = field(default_factory=list)


class ReportQueriesMixin(StoreBase):
    """Reads for `centralita.reports` (portable SQL; the tables are small per period)."""

    async def report_data(
        self, *, first_day: str, end_day: str, start_utc: str, end_utc: str
    ) -> ReportData:
        """The period from local day `first_day` up to (not including) `end_day`
        (`YYYY-MM-DD`), which is `start_utc` to `end_utc` in UTC ISO-8601."""
        data = ReportData()
        queue_sql = (
            f"SELECT hour, queue, {', '.join(QUEUE_SUMS)} FROM report_queue_hours "  # noqa: S608
            "WHERE hour >= ? AND hour < ? ORDER BY hour, queue"
        )
        agent_sql = (
            "SELECT agent, "  # noqa: S608 (constant column names)
            + ", ".join(f"SUM({s}) AS {s}" for s in AGENT_SUMS)
            + " FROM report_agent_days WHERE day >= ? AND day < ? GROUP BY agent ORDER BY agent"
        )
        async with self._read() as db:
            async with db.execute(queue_sql, (first_day, end_day)) as cur:
                for row in await cur.fetchall():
                    sums = {s: int(row[s]) for s in QUEUE_SUMS}
                    data.queue_hours.append((row["hour"], row["queue"], sums))
            async with db.execute(agent_sql, (first_day, end_day)) as cur:
                for row in await cur.fetchall():
                    data.agent_sums[row["agent"]] = {s: int(row[s] or 0) for s in AGENT_SUMS}
            async with db.execute(
                "SELECT scope, name, wait_s, SUM(n) AS n FROM report_waits "
                "WHERE day >= ? AND day < ? GROUP BY scope, name, wait_s",
                (first_day, end_day),
            ) as cur:
                for row in await cur.fetchall():
                    if row["n"]:
                        histogram = data.waits.setdefault((row["scope"], row["name"]), {})
                        histogram[int(row["wait_s"])] = int(row["n"])
            async with db.execute(
                "SELECT agent, reason, started_at, ended_at FROM pause_intervals "
                "WHERE started_at < ? AND (ended_at IS NULL OR ended_at > ?) "
                "ORDER BY started_at",
                (end_utc, start_utc),
            ) as cur:
                data.pauses.extend(
                    (r["agent"], r["reason"], r["started_at"], r["ended_at"])
                    for r in await cur.fetchall()
                )
            async with db.execute(
                "SELECT queue, agent, rating, COUNT(*) AS n FROM ratings "
                "WHERE created_at >= ? AND created_at < ? GROUP BY queue, agent, rating",
                (start_utc, end_utc),
            ) as cur:
                data.ratings.extend(
                    (r["queue"], r["agent"], int(r["rating"]), int(r["n"]))
                    for r in await cur.fetchall()
                )
            async with db.execute(
                "SELECT queue, status, COUNT(*) AS n FROM callbacks "
                "WHERE created_at >= ? AND created_at < ? GROUP BY queue, status",
                (start_utc, end_utc),
            ) as cur:
                data.callbacks.extend(
                    (r["queue"], r["status"], int(r["n"])) for r in await cur.fetchall()
                )
        return data
