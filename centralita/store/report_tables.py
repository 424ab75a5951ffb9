"""The report tables: running totals of the queued calls, kept as each call changes, so a
month of a million calls is read from a few thousand rows (bench/report_bench.py).

`queue_calls` (one row per queued call) stays the truth; these tables are derived from it:

* `report_queue_hours` (hour, queue): calls offered, answered, abandoned, answered within
  the queue's service level, and the sums behind the average wait and talk times;
* `report_agent_days` (day, agent): the same for the calls each agent answered;
* `report_waits` (span, day, scope, name, wait_s): how many callers waited `wait_s` seconds
  (to the second up to 30 s, then in steps: `WAIT_EDGES`), per queue (`scope = 'queue'`)
  and per agent (`'agent'`), for the 90th percentile; per day (`span = 'day'`) and per
  month (`'month'`, `day` its first day), so a month's percentiles read one row per wait
  step instead of 31;
* `report_ratings` (span, day, scope, name, rating): how many survey ratings of each value
  were given, per queue and per agent (`scope = 'all'`, `name = ''`: every rating), per day
  and per month; counted by `Store.add_rating` in the rating's own transaction.

Hours and days are the local time of the process (as `centralita.times.shown` shows times)
when the call was written: `YYYY-MM-DD HH` and `YYYY-MM-DD`, so a text range selects a day,
a week or a month. Each write of a call adds its new contribution and takes its old one
away (`contributions`), in the same transaction, so replays and outcome changes keep the
totals right; `rebuild_report_tables` recomputes them all from `queue_calls`.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from centralita.store.base import Connection, Script, Statement

# Upper edges of the wait histogram, in seconds: a wait counts at the first edge at or
# above it. Exact to the second up to 30 s (the usual service levels), then coarser.
WAIT_EDGES: tuple[int, ...] = (
    *range(0, 31),
    *range(35, 61, 5),
    *range(70, 121, 10),
    150,
    180,
    210,
    240,
    300,
    360,
    420,
    480,
    600,
    750,
    900,
    1200,
    1500,
    1800,
    2700,
    3600,
    5400,
    7200,
    86400,
)

QUEUE_SUMS = (
    "offered",
    "answered",
    "abandoned",
    "answered_in_sl",
    "wait_sum",
    "wait_n",
    "talk_sum",
    "talk_n",
)
AGENT_SUMS = ("answered", "answered_in_sl", "wait_sum", "wait_n", "talk_sum", "talk_n")

# (table, key) -> its sums, in the order of the table's sum columns (`_SUMS`).
Contribution = dict[tuple[str, tuple[str, ...]], list[int]]


def wait_bucket(wait_s: int) -> int:
    """The histogram edge a wait of `wait_s` seconds counts at."""
    index = bisect.bisect_left(WAIT_EDGES, max(0, wait_s))
    return WAIT_EDGES[min(index, len(WAIT_EDGES) - 1)]


@functools.lru_cache(maxsize=4096)
def _local(utc_hour: str) -> tuple[str, str]:
    moment = datetime.fromisoformat(utc_hour + ":00:00+00:00").astimezone()
    day = moment.strftime("%Y-%m-%d")
    return f"{day} {moment.hour:02d}", day


def local_hour(joined_at: str) -> tuple[str, str]:
    """(`YYYY-MM-DD HH`, `YYYY-MM-DD`) in the process's local time of the UTC hour that
    holds `joined_at` (UTC ISO-8601 text, as the store keeps it). Exact in every zone whose
    offset is whole hours; in a half-hour zone a call counts at the local hour its UTC hour
    begins in."""
    return _local(joined_at[:13])


def contributions(row: Any) -> Contribution:
    """What one `queue_calls` row (a mapping or sqlite3.Row) adds to the report tables
    (nothing for None)."""
    out: Contribution = {}
    if row is None:
        return out
    hour, day = local_hour(row["joined_at"])
    queue, agent, outcome = row["queue"], row["agent"], row["outcome"]
    wait, talk = row["wait_s"], row["talk_s"]
    answered = outcome == "answered"
    in_sl = answered and wait is not None and wait <= row["service_level_s"]
    # Callers' waits: every caller who left the queue (answered or not) with a known wait.
    waited = wait is not None and outcome != "waiting"
    out[("report_queue_hours", (hour, queue))] = [
        1,
        int(answered),
        int(outcome == "abandoned"),
        int(in_sl),
        wait if waited else 0,
        int(waited),
        talk or 0,
        int(talk is not None),
    ]
    month = day[:8] + "01"
    if waited:
        bucket = str(wait_bucket(wait))
        out[("report_waits", ("day", day, "queue", queue, bucket))] = [1]
        out[("report_waits", ("month", month, "queue", queue, bucket))] = [1]
    if answered and agent:
        out[("report_agent_days", (day, agent))] = [
            1,
            int(in_sl),
            wait or 0,
            int(wait is not None),
            talk or 0,
            int(talk is not None),
        ]
        if wait is not None:
            bucket = str(wait_bucket(wait))
            out[("report_waits", ("day", day, "agent", agent, bucket))] = [1]
            out[("report_waits", ("month", month, "agent", agent, bucket))] = [1]
    return out


def rating_contribution(created_at: str, queue: str, agent: str, rating: int) -> Contribution:
    """What one survey rating (given at `created_at`, UTC ISO) adds to `report_ratings`."""
    _hour, day = local_hour(created_at)
    month = day[:8] + "01"
    out: Contribution = {}
    for scope, name in (("all", ""), ("queue", queue), ("agent", agent)):
        if scope == "all" or name:
            for span, key in (("day", day), ("month", month)):
                out[("report_ratings", (span, key, scope, name, str(rating)))] = [1]
    return out


def difference(new: Contribution, old: Contribution) -> Contribution:
    """`new - old`, keeping negative and dropping all-zero entries."""
    out: Contribution = {}
    for key in new.keys() | old.keys():
        plus, minus = new.get(key), old.get(key)
        if plus is None:
            assert minus is not None
            sums = [-v for v in minus]
        elif minus is None:
            sums = list(plus)
        else:
            sums = [a - b for a, b in zip(plus, minus, strict=True)]
        if any(sums):
            out[key] = sums
    return out


_KEYS = {
    "report_queue_hours": ("hour", "queue"),
    "report_agent_days": ("day", "agent"),
    "report_waits": ("span", "day", "scope", "name", "wait_s"),
    "report_ratings": ("span", "day", "scope", "name", "rating"),
}
_SUMS = {
    "report_queue_hours": QUEUE_SUMS,
    "report_agent_days": AGENT_SUMS,
    "report_waits": ("n",),
    "report_ratings": ("n",),
}


def _upsert_sql(table: str) -> str:
    keys, sums = _KEYS[table], _SUMS[table]
    columns = (*keys, *sums)
    updates = ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in sums)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (constant names)
        f"VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


UPSERTS = {table: _upsert_sql(table) for table in _KEYS}


def upsert_params(table: str, key: tuple[str, ...], sums: Sequence[int]) -> tuple[Any, ...]:
    """The parameters of `UPSERTS[table]` for one key's sums."""
    values: list[Any] = list(key)
    if table in ("report_waits", "report_ratings"):
        values[4] = int(values[4])
    return (*values, *sums)


async def apply(db: Connection, contribution: Contribution) -> None:
    """Add `contribution` to the report tables (inside the caller's transaction)."""
    for (table, key), sums in contribution.items():
        await db.execute(UPSERTS[table], upsert_params(table, key, sums))


def apply_script(contribution: Contribution) -> Script[None]:
    """Add `contribution` to the report tables: one `executemany` per table, its keys in
    order (two writers on one PostgreSQL database then lock the rows in the same order)."""
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    for (table, key), sums in sorted(contribution.items()):
        if any(sums):
            by_table.setdefault(table, []).append(upsert_params(table, key, sums))
    for table, params in by_table.items():
        yield Statement(UPSERTS[table], params, many=True)


def total(rows: Iterable[Any], into: Contribution | None = None) -> Contribution:
    """The summed contributions of many `queue_calls` rows, added to `into` when given."""
    out: Contribution = {} if into is None else into
    for row in rows:
        add_to(out, contributions(row))
    return out


def add_to(totals: Contribution, change: Contribution) -> None:
    """Add `change` into `totals` (in place)."""
    for key, sums in change.items():
        kept = totals.get(key)
        if kept is None:
            totals[key] = list(sums)
        else:
            for index, value in enumerate(sums):
                kept[index] += value
