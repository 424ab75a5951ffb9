"""The store's public interface is the `StoreBackend` Protocol, and the SQLite `Store` is
exactly that: what a second backend must implement is written in one place."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from centralita.store import Contact, Store, StoreBackend, default_path
from centralita.store.postgres import PgStore

# What Store has beyond the interface: how it is opened, and SQLite's own file.
SQLITE_ONLY = {"open", "path"}
# What PgStore has beyond it: how it is opened, the server's URL, and the leases that only
# instances sharing a server elect with (centralita/csvfiles.py).
POSTGRES_ONLY = {"open", "location", "try_lease", "lease_candidate"}


def public(cls: type) -> set[str]:
    names = {n for n in dir(cls) if not n.startswith("_")}
    return names | {"__aenter__", "__aexit__"}


def protocol_members() -> set[str]:
    declared = set(StoreBackend.__annotations__)
    declared |= {n for n, v in vars(StoreBackend).items() if inspect.isfunction(v)}
    return {n for n in declared if not n.startswith("_")} | {"__aenter__", "__aexit__"}


def test_every_public_method_of_the_store_is_in_the_interface() -> None:
    instance_attributes = {"region", "match_digits", "min_digits", "path"}
    assert public(Store) | instance_attributes == protocol_members() | SQLITE_ONLY
    instance_attributes = {"region", "match_digits", "min_digits", "location"}
    assert public(PgStore) | instance_attributes == protocol_members() | POSTGRES_ONLY


@pytest.mark.parametrize("backend", [Store, PgStore])
@pytest.mark.parametrize("name", sorted(n for n in vars(StoreBackend) if not n.startswith("_")))
def test_the_store_has_the_interface_signatures(backend: type, name: str) -> None:
    declared = getattr(StoreBackend, name)
    if not inspect.isfunction(declared):
        return
    implemented = getattr(backend, name)
    # Annotations evaluated: an alias (`Rows`) and what it stands for are the same type.
    implemented_signature = inspect.signature(implemented, eval_str=True)
    assert implemented_signature == inspect.signature(declared, eval_str=True), name
    assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(declared)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store.open(default_path(tmp_path)) as s:
        yield s


async def test_a_pop_lookup_is_answered_in_the_loops_thread(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = await store.create_contact(name="Bob", numbers=["+34 915 550 123", "600000001"])
    await store.create_contact(name="ann", numbers=["915550123"])
    await store.create_contact(name="Carl", numbers=["915550999"])
    calls: list[str] = []
    real = store._db.execute

    def spy(sql: str, params: Any = None) -> Any:
        calls.append(sql)
        return real(sql, params)

    monkeypatch.setattr(store._db, "execute", spy)
    now = store.contacts_for_number_now("915 55 01 23")
    assert calls == []  # nothing went to aiosqlite's thread
    assert now is not None
    assert [c.name for c in now] == ["ann", "Bob"]
    assert now == await store.contacts_for_number("915 55 01 23")
    assert isinstance(now[1], Contact) and now[1].numbers == bob.numbers
    assert store.contacts_for_number_now("anonymous") == []
    assert store.contacts_for_number_now("915550000") == []
