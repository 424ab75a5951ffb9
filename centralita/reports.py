"""Reports: a day, a week or a month of the call center in figures, per queue and per agent.

The figures come from the store (`Store.report_data`): the report tables kept from the queue
events (centralita/queuelog.py, centralita/store/report_tables.py), the pause intervals, the
survey ratings and the callback requests. What each figure means:

* offered: calls that joined the queue (answered, abandoned, or still waiting);
* answered, abandoned: app_queue's `AgentConnect` and `QueueCallerAbandon` (a caller who
  left unanswered for any reason: hang-up, the queue's timeout, leavewhenempty);
* answer rate: answered / (answered + abandoned);
* service level: calls answered within the queue's `service_level_s` / (answered +
  abandoned) (per agent: / answered);
* average and 90th-percentile wait: app_queue's HoldTime of every caller who left the queue
  (per agent: of the calls the agent answered); the 90th percentile is the nearest-rank one,
  to the second up to 30 s and at the upper edge of its step beyond (`WAIT_EDGES`);
* average talk: app_queue's TalkTime of the answered calls;
* pause time by reason: each agent's pauses, cut to the period (an open pause up to now);
* callbacks requested in the period, and how many of them are done (per queue);
* survey rating: the average of the ratings given in the period (0-10), and their count.

Days run from local midnight to midnight (the process's time zone, as every page shows
times); a week starts on Monday.
"""

from __future__ import annotations

import calendar
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from centralita.store import StoreBackend
from centralita.store.report_queries import ReportData
from centralita.store.report_tables import QUEUE_SUMS

PeriodKind = Literal["day", "week", "month"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("day", "week", "month")


@dataclass(frozen=True)
class Period:
    """A day, a week (Monday to Sunday) or a calendar month, in local days."""

    kind: PeriodKind
    first: date
    end: date  # the day after the last

    @classmethod
    def of(cls, kind: str, day: date) -> Period:
        """The period of `kind` that holds `day`; ValueError for an unknown kind."""
        if kind == "day":
            return cls("day", day, day + timedelta(days=1))
        if kind == "week":
            first = day - timedelta(days=day.weekday())
            return cls("week", first, first + timedelta(days=7))
        if kind == "month":
            first = day.replace(day=1)
            days = calendar.monthrange(first.year, first.month)[1]
            return cls("month", first, first + timedelta(days=days))
        raise ValueError(f"unknown period {kind!r} (day, week or month)")

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.end - self.first).days)]

    def previous(self) -> Period:
        return Period.of(self.kind, self.first - timedelta(days=1))

    def next(self) -> Period:
        return Period.of(self.kind, self.end)

    @staticmethod
    def _utc(day: date) -> str:
        # Local midnight (the process's zone), as UTC text comparable with the store's times.
        local = datetime.combine(day, time()).astimezone()
        return local.astimezone(UTC).isoformat(timespec="seconds")

    @property
    def start_utc(self) -> str:
        return self._utc(self.first)

    @property
    def end_utc(self) -> str:
        return self._utc(self.end)


@dataclass(frozen=True)
class Figures:
    """One row of a report table: a queue, an agent, or all queues together."""

    name: str
    offered: int | None  # None for an agent (the report keeps no per-agent offers)
    answered: int
    abandoned: int | None
    answered_in_sl: int
    answer_rate: float | None  # 0..1; None when there is nothing to divide
    service_level: float | None
    avg_wait_s: float | None
    p90_wait_s: int | None
    avg_talk_s: float | None
    callbacks_requested: int | None = None
    callbacks_done: int | None = None
    rating_avg: float | None = None
    rating_count: int = 0
    pause_s: int | None = None  # agents: the period's pause time, every reason together


@dataclass(frozen=True)
class Bucket:
    """One point of a chart: calls of an hour of the day, or service level of a day/hour."""

    label: str
    offered: int
    answered: int
    abandoned: int
    service_level: float | None


@dataclass(frozen=True)
class Report:
    period: Period
    queues: list[Figures]
    total: Figures
    agents: list[Figures]
    pauses: list[tuple[str, str, int]]  # (agent, reason, seconds), by agent then reason
    per_hour: list[Bucket]  # the 24 hours of the day, summed over the period
    over_time: list[Bucket]  # per hour (a day's report) or per day (week, month)
    ratings: dict[int, int] = field(default_factory=dict)  # rating (0-10) -> how many


def ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when whole is 0."""
    return part / whole if whole else None


def mean(total: int, count: int) -> float | None:
    return total / count if count else None


def percentile(histogram: Mapping[int, int], fraction: float = 0.9) -> int | None:
    """The nearest-rank percentile of a histogram {value: count}: the smallest value with at
    least `fraction` of the counts at or below it."""
    n = sum(histogram.values())
    if n <= 0:
        return None
    rank = max(1, math.ceil(fraction * n))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def _sum(rows: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = dict.fromkeys(QUEUE_SUMS, 0)
    for row in rows:
        for name, value in row.items():
            total[name] = total.get(name, 0) + value
    return total


def _queue_figures(
    name: str,
    sums: Mapping[str, int],
    waits: Mapping[int, int],
    callbacks: Mapping[str, int],
    ratings: Mapping[int, int],
) -> Figures:
    ended = sums.get("answered", 0) + sums.get("abandoned", 0)
    rated = sum(ratings.values())
    return Figures(
        name=name,
        offered=sums.get("offered", 0),
        answered=sums.get("answered", 0),
        abandoned=sums.get("abandoned", 0),
        answered_in_sl=sums.get("answered_in_sl", 0),
        answer_rate=ratio(sums.get("answered", 0), ended),
        service_level=ratio(sums.get("answered_in_sl", 0), ended),
        avg_wait_s=mean(sums.get("wait_sum", 0), sums.get("wait_n", 0)),
        p90_wait_s=percentile(waits),
        avg_talk_s=mean(sums.get("talk_sum", 0), sums.get("talk_n", 0)),
        callbacks_requested=sum(callbacks.values()),
        callbacks_done=callbacks.get("done", 0),
        rating_avg=mean(sum(r * n for r, n in ratings.items()), rated),
        rating_count=rated,
    )


def _pause_seconds(data: ReportData, period: Period, now: datetime) -> dict[tuple[str, str], int]:
    """Each (agent, reason)'s pause time inside the period (open pauses up to `now`)."""
    start = datetime.fromisoformat(period.start_utc)
    end = datetime.fromisoformat(period.end_utc)
    out: Counter[tuple[str, str]] = Counter()
    for agent, reason, seconds in data.pause_sums:
        out[(agent, reason)] += seconds
    pauses = data.pauses
    for agent, reason, started_at, ended_at in pauses:
        began = max(datetime.fromisoformat(started_at), start)
        ended = min(datetime.fromisoformat(ended_at) if ended_at else now, end)
        if ended > began:
            out[(agent, reason)] += int((ended - began).total_seconds())
    return dict(out)


def build(data: ReportData, period: Period, *, now: datetime | None = None) -> Report:
    """The report of `period` from the store's raw material."""
    now = now or datetime.now(UTC)
    by_queue = data.queue_sums
    callbacks: dict[str, Counter[str]] = {}
    for queue, status, count in data.callbacks:
        callbacks.setdefault(queue, Counter())[status] += count
    queue_ratings = {name: c for (scope, name), c in data.ratings.items() if scope == "queue"}
    agent_ratings = {name: c for (scope, name), c in data.ratings.items() if scope == "agent"}
    all_ratings = data.ratings.get(("all", ""), {})

    names = sorted(by_queue.keys() | callbacks.keys() | queue_ratings.keys())
    queues = [
        _queue_figures(
            name,
            _sum([by_queue.get(name, {})]),
            data.waits.get(("queue", name), {}),
            callbacks.get(name, Counter()),
            queue_ratings.get(name, {}),
        )
        for name in names
    ]
    all_waits: Counter[int] = Counter()
    for (scope, _name), histogram in data.waits.items():
        if scope == "queue":
            all_waits.update(histogram)
    total = _queue_figures(
        "",
        _sum(by_queue.values()),
        all_waits,
        _sum(callbacks.values()),
        all_ratings,
    )

    pause_time = _pause_seconds(data, period, now)
    pause_by_agent: Counter[str] = Counter()
    for (agent, _reason), seconds in pause_time.items():
        pause_by_agent[agent] += seconds
    agents = []
    for agent in sorted(data.agent_sums.keys() | pause_by_agent.keys() | agent_ratings.keys()):
        sums = data.agent_sums.get(agent, {})
        ratings = agent_ratings.get(agent, {})
        rated = sum(ratings.values())
        answered = sums.get("answered", 0)
        agents.append(
            Figures(
                name=agent,
                offered=None,
                answered=answered,
                abandoned=None,
                answered_in_sl=sums.get("answered_in_sl", 0),
                answer_rate=None,
                service_level=ratio(sums.get("answered_in_sl", 0), answered),
                avg_wait_s=mean(sums.get("wait_sum", 0), sums.get("wait_n", 0)),
                p90_wait_s=percentile(data.waits.get(("agent", agent), {})),
                avg_talk_s=mean(sums.get("talk_sum", 0), sums.get("talk_n", 0)),
                rating_avg=mean(sum(r * n for r, n in ratings.items()), rated),
                rating_count=rated,
                pause_s=pause_by_agent.get(agent, 0),
            )
        )

    def bucket(label: str, rows: Iterable[Mapping[str, int]]) -> Bucket:
        sums = _sum(rows)
        ended = sums["answered"] + sums["abandoned"]
        return Bucket(
            label,
            sums["offered"],
            sums["answered"],
            sums["abandoned"],
            ratio(sums["answered_in_sl"], ended),
        )

    per_hour = [bucket(f"{h:02d}", [data.hour_of_day_sums.get(f"{h:02d}", {})]) for h in range(24)]
    if period.kind == "day":
        day = period.first.isoformat()
        labels = [f"{day} {h:02d}" for h in range(24)]
        over_time = [bucket(label[11:], [data.time_sums.get(label, {})]) for label in labels]
    else:
        labels = [d.isoformat() for d in period.days]
        over_time = [bucket(label, [data.time_sums.get(label, {})]) for label in labels]
    return Report(
        period=period,
        queues=queues,
        total=total,
        agents=agents,
        pauses=sorted((a, r, s) for (a, r), s in pause_time.items()),
        per_hour=per_hour,
        over_time=over_time,
        ratings={r: all_ratings.get(r, 0) for r in range(11)},
    )


async def report(store: StoreBackend, period: Period, *, now: datetime | None = None) -> Report:
    """Read and compute the report of `period`."""
    data = await store.report_data(
        first_day=period.first.isoformat(),
        end_day=period.end.isoformat(),
        start_utc=period.start_utc,
        end_utc=period.end_utc,
        by_hour=period.kind == "day",
    )
    return build(data, period, now=now)
