"""The store's errors: StoreError, StoreInputError (a ValueError) for a refused value, with
nothing stored; StoreSchemaError for a database from a newer Centralita."""

from __future__ import annotations

import ast
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from centralita.store import (
    Store,
    StoreBackend,
    StoreError,
    StoreInputError,
    StoreSchemaError,
    default_path,
)

STORE_PACKAGE = Path(__file__).resolve().parent.parent / "centralita" / "store"


@pytest.fixture
def store(any_store: StoreBackend) -> StoreBackend:
    """An empty store, on SQLite and on PostgreSQL in turn (tests/conftest.py)."""
    return any_store


async def _counts(store: Store) -> tuple[int, int, int, int]:
    contacts = await store.search_contacts("", limit=500)
    return (
        len(await store.list_callbacks()),
        len(await store.list_ratings()),
        len(contacts),
        await store.outbox_backlog(),
    )


REFUSED: list[tuple[str, Callable[[Store], Awaitable[Any]]]] = [
    (
        "NUL",
        lambda s: s.add_callback(
            callerid="1\0", language="en", queue="q", number="1", alternative="", uniqueid="u"
        ),
    ),
    (
        "status",
        lambda s: s.add_callback(
            callerid="1",
            language="en",
            queue="q",
            number="1",
            alternative="",
            uniqueid="u",
            status="lost",
        ),
    ),
    (
        "rating",
        lambda s: s.add_rating(callerid="1", agent="1001", queue="q", rating=11, call_id="c"),
    ),
    ("phone number", lambda s: s.create_contact(name="Bob", numbers=["abc"])),
    ("contact field", lambda s: s.update_contact(1, colour="red")),
    ("no contact", lambda s: s.save_outcome(call_id="c", agent="1", outcome="x", contact_id=99)),
    ("url", lambda s: s.enqueue_event("ftp://example.com/", {})),
    ("JSON", lambda s: s.enqueue_event("http://example.com/", {"x": float("nan")})),
]


@pytest.mark.parametrize(("what", "call"), REFUSED, ids=[w for w, _ in REFUSED])
async def test_a_refused_value_is_a_store_input_error_and_nothing_is_stored(
    store: Store, what: str, call: Callable[[Store], Awaitable[Any]]
) -> None:
    await store.create_contact(name="Ann", numbers=["915550123"])
    before = await _counts(store)
    with pytest.raises(StoreInputError) as info:
        await call(store)
    assert isinstance(info.value, StoreError) and isinstance(info.value, ValueError)
    assert str(info.value)  # a reason a person can read
    assert await _counts(store) == before


async def test_a_newer_database_is_a_store_schema_error(tmp_path: Path) -> None:
    path = default_path(tmp_path)
    async with Store.open(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(StoreSchemaError, match="newer") as info:
        await Store.open(path)
    assert isinstance(info.value, StoreError) and isinstance(info.value, RuntimeError)


async def test_an_unknown_id_is_none_or_false_not_an_error(store: Store) -> None:
    assert await store.get_callback(12345) is None
    assert await store.set_callback_status(12345, "done") is False
    assert await store.update_contact(12345, name="x") is None
    assert await store.mark_sent(12345) is False
    assert await store.mark_failed(12345, datetime.now(UTC), "x") is False


def test_the_store_raises_no_bare_value_error() -> None:
    bare = []
    for path in sorted(STORE_PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                called = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(called, ast.Name) and called.id in ("ValueError", "RuntimeError"):
                    bare.append(f"{path.name}:{node.lineno}")
    assert bare == []
