"""Callbacks as work (issue 12) in the store: the migration keeps every request made before
it, a request is assigned and reassigned, each call back is an attempt row with its result,
and closing keeps who, when and the note."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from centralita.store import SCHEMA_VERSION, Store, StoreBackend, StoreInputError
from centralita.store.schema import _MIGRATIONS, _statements

# This migration, found by what it makes (its number changes when others land).
CALLBACK_WORK = next(i for i, m in enumerate(_MIGRATIONS) if "callback_attempts" in m)


@pytest.fixture
def store(any_store: StoreBackend) -> StoreBackend:
    """Each test on both backends (tests/conftest.py)."""
    return any_store


async def request(store: StoreBackend, number: str = "600111222") -> int:
    made = await store.add_callback(
        callerid=number,
        language="fr",
        queue="support-fr",
        number=number,
        alternative="915550123",
        uniqueid="1700000000.1",
    )
    return made.id


def old_database(path: Path) -> None:
    """A database as the schema just before callbacks as work made it, with requests in
    every status."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER)")
    for script in _MIGRATIONS[:CALLBACK_WORK]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (CALLBACK_WORK,))
    rows = [
        ("2026-11-01T09:00:00+00:00", "2026-11-01T09:00:00+00:00", "600000001", "pending"),
        ("2026-11-02T09:00:00+00:00", "2026-11-02T10:30:00+00:00", "600000002", "done"),
        ("2026-11-03T09:00:00+00:00", "2026-11-03T11:00:00+00:00", "600000003", "cancelled"),
    ]
    for created, updated, number, status in rows:
        conn.execute(
            "INSERT INTO callbacks (created_at, updated_at, callerid, language, queue, number, "
            "alternative, uniqueid, status) VALUES (?, ?, ?, 'ar', 'support-ar', ?, '', '', ?)",
            (created, updated, number, number, status),
        )
    conn.commit()
    conn.close()


async def test_the_migration_keeps_every_request_and_its_status(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old_database(path)
    async with Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
        kept = await store.list_callbacks()
        assert [(c.number, c.status) for c in kept] == [
            ("600000001", "pending"),
            ("600000002", "done"),
            ("600000003", "cancelled"),
        ]
        assert all(c.language == "ar" and c.queue == "support-ar" for c in kept)
        assert all(c.assigned_to == "" and c.note == "" and c.closed_by == "" for c in kept)
        # A request closed before keeps when: its last change was its closing.
        assert [c.closed_at for c in kept] == [
            None,
            "2026-11-02T10:30:00+00:00",
            "2026-11-03T11:00:00+00:00",
        ]
        # And the old rows take the new work.
        first = kept[0].id
        assigned = await store.assign_callback(first, "1002")
        assert assigned is not None and assigned.assigned_to == "1002"
        attempt = await store.add_callback_attempt(first, agent="1002", number="600000001")
        assert attempt is not None
        assert [a.id for a in await store.list_callback_attempts([first])] == [attempt.id]


async def test_assign_reassign_and_unassign(store: StoreBackend) -> None:
    first = await request(store)
    second = await request(store, "600333444")
    assigned = await store.assign_callback(first, "1002")
    assert assigned is not None
    assert assigned.assigned_to == "1002" and assigned.assigned_at is not None
    assert await store.count_callbacks("pending", assigned_to="1002") == 1
    assert [c.id for c in await store.list_callbacks("pending", assigned_to="1002")] == [first]
    # Reassigned: the first agent no longer has it.
    moved = await store.assign_callback(first, "1003")
    assert moved is not None and moved.assigned_to == "1003"
    assert await store.count_callbacks("pending", assigned_to="1002") == 0
    assert await store.count_callbacks("pending", assigned_to="1003") == 1
    # Unassigned requests are asked for with "".
    assert [c.id for c in await store.list_callbacks(assigned_to="")] == [second]
    gone = await store.assign_callback(first, "")
    assert gone is not None and gone.assigned_to == "" and gone.assigned_at is None
    assert await store.count_callbacks(assigned_to="") == 2
    assert await store.count_callbacks() == 2
    assert await store.assign_callback(9999, "1002") is None
    with pytest.raises(StoreInputError):
        await store.assign_callback(first, "1002\0")


async def test_attempts_are_rows_with_their_result(store: StoreBackend) -> None:
    first = await request(store)
    other = await request(store, "600333444")
    calling = await store.add_callback_attempt(first, agent="1002", number="600111222")
    assert calling is not None and calling.result == "calling" and calling.ended_at is None
    assert await store.finish_callback_attempt(
        calling.id, result="no_answer", reason="no answer", call_id="1700000001.5"
    )
    second = await store.add_callback_attempt(first, agent="1002", number="915550123")
    assert second is not None
    assert await store.finish_callback_attempt(second.id, result="answered", reason="answered")
    third = await store.add_callback_attempt(other, agent="1003", number="600333444")
    assert third is not None
    attempts = await store.list_callback_attempts([first])
    assert [(a.number, a.result, a.reason, a.call_id) for a in attempts] == [
        ("600111222", "no_answer", "no answer", "1700000001.5"),
        ("915550123", "answered", "answered", ""),
    ]
    assert all(a.ended_at is not None and a.agent == "1002" for a in attempts)
    both = await store.list_callback_attempts([other, first])
    assert [a.id for a in both] == [calling.id, second.id, third.id]
    assert await store.list_callback_attempts([]) == []
    # An attempt at nothing is refused; so is a result that is not one.
    assert await store.add_callback_attempt(9999, agent="1002", number="1") is None
    assert await store.finish_callback_attempt(9999, result="busy") is False
    for result in ("calling", "maybe"):
        with pytest.raises(StoreInputError, match="attempt result"):
            await store.finish_callback_attempt(third.id, result=result)
    [still] = [a for a in await store.list_callback_attempts([other])]
    assert still.result == "calling"


async def test_closing_keeps_who_when_and_the_note(store: StoreBackend) -> None:
    first = await request(store)
    second = await request(store, "600333444")
    done = await store.close_callback(first, status="done", by="1002", note="Called, sorted out")
    assert done is not None
    assert (done.status, done.closed_by, done.note) == ("done", "1002", "Called, sorted out")
    assert done.closed_at is not None
    cancelled = await store.close_callback(second, status="cancelled", by="1001", note="")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert await store.count_callbacks("pending") == 0
    with pytest.raises(StoreInputError, match="not pending"):
        await store.close_callback(first, status="pending", by="1002")
    with pytest.raises(StoreInputError):
        await store.close_callback(first, status="done", by="")
    with pytest.raises(StoreInputError):
        await store.close_callback(first, status="done", by="1002", note="x" * 20_001)
    # What a refused close would have written is not there.
    again = await store.get_callback(first)
    assert again is not None and again.note == "Called, sorted out"
    assert await store.close_callback(9999, status="done", by="1002") is None
    # Reopened by the CLI's old path: open again, not closed.
    assert await store.set_callback_status(first, "pending")
    reopened = await store.get_callback(first)
    assert reopened is not None and reopened.status == "pending" and reopened.closed_at is None


async def test_a_held_request_gets_its_alternative_later(store: StoreBackend) -> None:
    """Flow callback stores the request once the main number is confirmed, and gives it the
    alternative afterwards (a killed instance cannot lose what it already stored)."""
    held = await request(store)
    changed = await store.set_callback_alternative(held, "699000111")
    assert changed is not None and changed.alternative == "699000111"
    stored = await store.get_callback(held)
    assert stored is not None and (stored.number, stored.alternative) == ("600111222", "699000111")
    assert await store.set_callback_alternative(held + 1000, "699000111") is None
    with pytest.raises(StoreInputError):
        await store.set_callback_alternative(held, "bad\0")
    assert len(await store.list_callbacks()) == 1
