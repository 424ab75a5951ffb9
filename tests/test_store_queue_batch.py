"""Queue events written as one batch (one transaction, its report totals summed over the
batch: `write_queue_events`) leave exactly the rows and report tables that the same events
written one at a time leave, on SQLite and on PostgreSQL; and a batch that fails in the
middle leaves nothing of itself behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from centralita.store import StoreBackend, queue_events
from centralita.store.base import Script, StoreBase
from centralita.store.queue_events import PauseChange, QueueCallUpdate, QueueEvent

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
TABLES = {
    "queue_calls": "uniqueid, queue",
    "agent_pauses": "agent, started_at",
    "report_queue_hours": "hour, queue",
    "report_agent_days": "day, agent",
    "report_waits": "span, day, scope, name, wait_s",
}


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat(timespec="seconds")


def events() -> list[QueueEvent]:
    """A morning of queue events: calls that join, are answered (or not) and end, some
    told twice (a replay), across hours and days; pauses opened, changed and closed."""
    out: list[QueueEvent] = []
    for i in range(40):
        uid, queue, joined = f"b{i}", f"q{i % 3}", at(i * 7)
        agent = f"10{i % 4:02d}"
        out.append(QueueCallUpdate(uid, queue, "waiting", joined, 20))
        if i % 5 == 4:
            out.append(
                QueueCallUpdate(
                    uid, queue, "abandoned", joined, 20, ended_at=at(i * 7 + 1), wait_s=60
                )
            )
            continue
        answered = QueueCallUpdate(
            uid, queue, "answered", joined, 20, answered_at=at(i * 7 + 0.5), wait_s=i, agent=agent
        )
        out.append(answered)
        if i % 3 == 0:
            out.append(answered)  # told again: changes nothing
        out.append(
            QueueCallUpdate(
                uid,
                queue,
                "answered",
                joined,
                20,
                answered_at=at(i * 7 + 0.5),
                ended_at=at(i * 7 + 3),
                wait_s=i,
                talk_s=150 + i,
                agent=agent,
            )
        )
        if i % 8 == 0:
            out.append(PauseChange(agent, True, at(i * 7 + 3), "break"))
        elif i % 8 == 1:
            out.append(PauseChange(f"10{(i - 1) % 4:02d}", True, at(i * 7 + 4), "lunch"))
        elif i % 8 == 2:
            out.append(PauseChange(f"10{(i - 2) % 4:02d}", False, at(i * 7 + 5)))
    # A late replay of the first call (after a restart), and an outcome never changed back.
    out.append(QueueCallUpdate("b0", "q0", "waiting", at(0), 20))
    out.append(QueueCallUpdate("b4", "q1", "answered", at(28), 20, wait_s=3, agent="1000"))
    return out


async def dump(store: StoreBase) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the queue-event tables and report tables (without generated ids)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with store._read() as db:
        for table, order in TABLES.items():
            rows = await db.execute_fetchall(f"SELECT * FROM {table} ORDER BY {order}")
            out[table] = [tuple(row[name] for name in row.keys() if name != "id") for row in rows]
    return out


async def clear(store: StoreBase) -> None:
    async with store._tx() as db:
        for table in TABLES:
            await db.execute(f"DELETE FROM {table}")


async def test_one_batch_writes_what_one_event_at_a_time_writes(any_store: StoreBackend) -> None:
    assert isinstance(any_store, StoreBase)
    stream = events()
    for event in stream:
        assert await any_store.write_queue_events([event]) == 1
    one_by_one = await dump(any_store)
    assert len(one_by_one["queue_calls"]) == 40
    assert len(one_by_one["agent_pauses"]) >= 5
    assert one_by_one["report_agent_days"] and one_by_one["report_waits"]
    await clear(any_store)
    assert await any_store.write_queue_events(stream) == len(stream)
    assert await dump(any_store) == one_by_one
    # And in a few batches of odd sizes, the same again.
    await clear(any_store)
    for start in range(0, len(stream), 17):
        await any_store.write_queue_events(stream[start : start + 17])
    assert await dump(any_store) == one_by_one
    # The totals are those a rebuild from the rows computes.
    assert await any_store.rebuild_report_tables() == 40
    assert await dump(any_store) == one_by_one


async def test_a_batch_that_fails_leaves_nothing_behind(
    any_store: StoreBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(any_store, StoreBase)
    await any_store.write_queue_events([QueueCallUpdate("k1", "q0", "waiting", at(0), 20)])
    before = await dump(any_store)
    batch: list[QueueEvent] = [
        QueueCallUpdate("k2", "q0", "answered", at(1), 20, wait_s=4, agent="1001"),
        PauseChange("1001", True, at(2), "break"),
    ]
    real = queue_events._queue_events_script

    def failing(steps: Any) -> Script[int]:
        # Every statement of the batch runs, then it fails before the commit.
        yield from real(steps)
        raise Boom

    monkeypatch.setattr(queue_events, "_queue_events_script", failing)
    with pytest.raises(Boom):
        await any_store.write_queue_events(batch)
    assert await dump(any_store) == before  # the rows and the totals: rolled back
    monkeypatch.undo()
    # The store still works, with no transaction left open.
    assert await any_store.write_queue_events(batch) == 2
    assert [r["outcome"] for r in await any_store.queue_calls_of("k2")] == ["answered"]
    assert await any_store.pause_intervals_of("1001") == [("break", at(2), None)]


class Boom(Exception):
    pass
