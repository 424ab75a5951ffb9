"""What app_queue told us over AMI, kept for reports: one row per queued call, and each
agent's pause intervals with their reason.

Written by `centralita.queuelog` (from `QueueCallerJoin`, `AgentConnect`, `AgentComplete`,
`QueueCallerAbandon` and `QueueMemberPause`), read by `centralita.reports` and by the
wallboard's "today" counts (`queue_totals_since`).

Every write is idempotent: a queued call is keyed by `(uniqueid, queue)` and a pause by
`(agent, started_at)`, so the same event applied twice (a replay, or two Centralita
instances on one database) changes nothing. A call's outcome, once `answered` or
`abandoned`, is never changed back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from centralita.store import report_tables
from centralita.store.base import Script, Statement, StoreBase
from centralita.store.errors import StoreInputError
from centralita.store.records import check_text

Outcome = Literal["waiting", "answered", "abandoned"]
OUTCOMES: frozenset[str] = frozenset({"waiting", "answered", "abandoned"})


@dataclass(frozen=True, slots=True)
class QueueCallUpdate:
    """What one queue event says about one queued call; None means "not told here"."""

    uniqueid: str
    queue: str
    outcome: Outcome
    joined_at: str  # UTC ISO-8601 (kept from the first event that names it)
    service_level_s: int  # the queue's `service_level_s` when the call joined
    answered_at: str | None = None
    ended_at: str | None = None
    wait_s: int | None = None  # app_queue's HoldTime
    talk_s: int | None = None  # app_queue's TalkTime
    agent: str = ""  # the member's extension (its interface when not a configured agent)


@dataclass(frozen=True, slots=True)
class PauseChange:
    """An agent paused (`paused=True`, with the reason) or unpaused at `at` (UTC ISO)."""

    agent: str
    paused: bool
    at: str
    reason: str = ""


QueueEvent = QueueCallUpdate | PauseChange


@dataclass(frozen=True, slots=True)
class QueueTotals:
    """One queue's calls that joined since a moment: offered (answered + abandoned + still
    waiting), answered, abandoned, and answered within the queue's service level."""

    queue: str
    offered: int
    answered: int
    abandoned: int
    answered_within_sl: int


# Portable upsert (SQLite 3.24+ and PostgreSQL): the first join time is kept, each later
# event fills what it knows, and an outcome once decided stays.
_UPSERT_CALL = """
INSERT INTO queue_calls (uniqueid, queue, joined_at, answered_at, ended_at, wait_s, talk_s,
                         agent, outcome, service_level_s)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (uniqueid, queue) DO UPDATE SET
    joined_at = CASE WHEN excluded.joined_at < queue_calls.joined_at
                     THEN excluded.joined_at ELSE queue_calls.joined_at END,
    answered_at = COALESCE(queue_calls.answered_at, excluded.answered_at),
    ended_at = COALESCE(queue_calls.ended_at, excluded.ended_at),
    wait_s = COALESCE(excluded.wait_s, queue_calls.wait_s),
    talk_s = COALESCE(excluded.talk_s, queue_calls.talk_s),
    agent = CASE WHEN excluded.agent != '' THEN excluded.agent ELSE queue_calls.agent END,
    outcome = CASE WHEN queue_calls.outcome = 'waiting'
                   THEN excluded.outcome ELSE queue_calls.outcome END
RETURNING joined_at, queue, agent, outcome, wait_s, talk_s, service_level_s
"""
_CALL_ROW = (
    "SELECT joined_at, queue, agent, outcome, wait_s, talk_s, service_level_s "
    "FROM queue_calls WHERE uniqueid = ? AND queue = ?"
)

_OPEN_PAUSES = "SELECT id, started_at FROM agent_pauses WHERE agent = ? AND ended_at IS NULL"
_CLOSE_PAUSE = "UPDATE agent_pauses SET ended_at = ?, duration_s = ? WHERE id = ?"
# The same pause told again (a resync after a restart) is open again.
_OPEN_PAUSE = (
    "INSERT INTO agent_pauses (agent, reason, started_at) VALUES (?, ?, ?) "
    "ON CONFLICT (agent, started_at) DO UPDATE SET ended_at = NULL, duration_s = NULL, "
    "reason = excluded.reason"
)


def utc_iso(text: str, name: str) -> str:
    """`text` (ISO-8601 with an offset) as the store's UTC text; StoreInputError if not."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise StoreInputError(f"{name} is not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise StoreInputError(f"{name} has no UTC offset: {text!r}")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _check_call(update: QueueCallUpdate) -> tuple[object, ...]:
    if update.outcome not in OUTCOMES:
        raise StoreInputError(f"unknown queue call outcome {update.outcome!r}")
    for name, number in (("wait_s", update.wait_s), ("talk_s", update.talk_s)):
        if number is not None and number < 0:
            raise StoreInputError(f"{name} must not be negative, not {number}")
    return (
        check_text("uniqueid", update.uniqueid, limit=150, empty=False),
        check_text("queue", update.queue, limit=128, empty=False),
        utc_iso(update.joined_at, "joined_at"),
        None if update.answered_at is None else utc_iso(update.answered_at, "answered_at"),
        None if update.ended_at is None else utc_iso(update.ended_at, "ended_at"),
        update.wait_s,
        update.talk_s,
        check_text("agent", update.agent, limit=150),
        update.outcome,
        max(0, update.service_level_s),
    )


# A checked event: ("call", `_check_call`'s parameters) or ("pause", (agent, at, reason or
# None when unpaused)).
_Step = tuple[Literal["call", "pause"], tuple[Any, ...]]


def _queue_events_script(steps: list[_Step]) -> Script[int]:
    """The statements of a batch of checked events, in order. The report totals the calls
    move are summed over the batch and written once per key at the end, in the same
    transaction (report_tables). Returns how many events were applied."""
    change: report_tables.Contribution = {}
    for kind, params in steps:
        if kind == "pause":
            yield from _pause(*params)
            continue
        # The call's row before and after the upsert (its RETURNING), and what that moved.
        old = yield Statement(_CALL_ROW, params[:2])
        [new] = yield Statement(_UPSERT_CALL, params)
        report_tables.add_to(
            change,
            report_tables.difference(
                report_tables.contributions(new),
                report_tables.contributions(old[0] if old else None),
            ),
        )
    yield from report_tables.apply_script(change)
    return len(steps)


def _pause(agent: str, at: str, reason: str | None) -> Script[None]:
    """Close the agent's open pause (with its duration), then open one if paused."""
    open_rows = yield Statement(_OPEN_PAUSES, (agent,))
    ended = datetime.fromisoformat(at)
    closed = []
    for row in open_rows:
        seconds = int((ended - datetime.fromisoformat(row["started_at"])).total_seconds())
        closed.append((at, max(0, seconds), row["id"]))
    if closed:
        yield Statement(_CLOSE_PAUSE, closed, many=True)
    if reason is not None:
        yield Statement(_OPEN_PAUSE, (agent, reason, at))


class QueueEventsMixin(StoreBase):
    """The `queue_calls` and `agent_pauses` tables."""

    async def write_queue_events(self, events: Sequence[QueueEvent]) -> int:
        """Apply `events` in order, in one transaction; returns how many were applied.

        Every event is checked first: one the store refuses (StoreInputError) refuses the
        batch, and the caller writes the others one by one (`QueueEventWriter`), so one
        odd event does not lose the rest."""
        steps: list[_Step] = []
        for event in events:
            if isinstance(event, QueueCallUpdate):
                steps.append(("call", _check_call(event)))
            else:
                agent = check_text("agent", event.agent, limit=150, empty=False)
                reason = check_text("reason", event.reason, limit=200) if event.paused else None
                steps.append(("pause", (agent, utc_iso(event.at, "at"), reason)))
        if not steps:
            return 0
        return await self._run_script(_queue_events_script(steps))

    async def backfill_reports(self) -> None:
        """Fill in what rows written before the report tables lack: each closed pause's
        duration, and the running totals of the calls (`rebuild_report_tables`)."""
        async with self._tx() as db:
            async with db.execute(
                "SELECT id, started_at, ended_at FROM agent_pauses "
                "WHERE ended_at IS NOT NULL AND duration_s IS NULL"
            ) as cur:
                rows = await cur.fetchall()
            for row in rows:
                seconds = datetime.fromisoformat(row["ended_at"]) - datetime.fromisoformat(
                    row["started_at"]
                )
                await db.execute(
                    "UPDATE agent_pauses SET duration_s = ? WHERE id = ?",
                    (max(0, int(seconds.total_seconds())), row["id"]),
                )
        await self.rebuild_report_tables()

    async def rebuild_report_tables(self) -> int:
        """Recompute the report tables from every `queue_calls` row (after an import, or
        when the local time zone changed); returns how many calls were counted."""
        counted = 0
        async with self._tx() as db:
            for table in report_tables.UPSERTS:
                await db.execute(f"DELETE FROM {table}")  # noqa: S608 (constant names)
            totals: report_tables.Contribution = {}
            async with db.execute(
                "SELECT joined_at, queue, agent, outcome, wait_s, talk_s, service_level_s "
                "FROM queue_calls"
            ) as cur:
                while rows := list(await cur.fetchmany(20_000)):
                    counted += len(rows)
                    report_tables.total(rows, totals)
            async with db.execute("SELECT created_at, queue, agent, rating FROM ratings") as cur:
                while ratings := list(await cur.fetchmany(20_000)):
                    for r in ratings:
                        change = report_tables.rating_contribution(
                            r["created_at"], r["queue"], r["agent"], int(r["rating"])
                        )
                        report_tables.add_to(totals, change)
            for table in report_tables.UPSERTS:
                await db.executemany(
                    report_tables.UPSERTS[table],
                    [
                        report_tables.upsert_params(table, key, sums)
                        for (name, key), sums in totals.items()
                        if name == table
                    ],
                )
        return counted

    async def queue_totals_since(self, since: str) -> list[QueueTotals]:
        """Per queue, the calls that joined at or after `since` (UTC ISO-8601)."""
        sql = (
            "SELECT queue, COUNT(*) AS offered, "
            "SUM(CASE WHEN outcome = 'answered' THEN 1 ELSE 0 END) AS answered, "
            "SUM(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END) AS abandoned, "
            "SUM(CASE WHEN outcome = 'answered' AND wait_s <= service_level_s "
            "THEN 1 ELSE 0 END) AS in_sl "
            "FROM queue_calls WHERE joined_at >= ? GROUP BY queue ORDER BY queue"
        )
        async with self._read() as db, db.execute(sql, (since,)) as cur:
            rows = await cur.fetchall()
        return [
            QueueTotals(
                r["queue"],
                int(r["offered"]),
                int(r["answered"]),
                int(r["abandoned"]),
                int(r["in_sl"]),
            )
            for r in rows
        ]

    async def queue_calls_of(self, uniqueid: str) -> list[dict[str, object]]:
        """The rows kept for one caller's channel (every queue it joined), for checks."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT uniqueid, queue, joined_at, answered_at, ended_at, wait_s, talk_s, "
                "agent, outcome, service_level_s FROM queue_calls WHERE uniqueid = ? "
                "ORDER BY queue",
                (uniqueid,),
            ) as cur,
        ):
            rows = await cur.fetchall()
        return [dict(row) for row in rows]

    async def pause_intervals_of(self, agent: str) -> list[tuple[str, str, str | None]]:
        """One agent's pauses, oldest first: (reason, started_at, ended_at or None)."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT reason, started_at, ended_at FROM agent_pauses WHERE agent = ? "
                "ORDER BY started_at",
                (agent,),
            ) as cur,
        ):
            rows = await cur.fetchall()
        return [(r["reason"], r["started_at"], r["ended_at"]) for r in rows]
