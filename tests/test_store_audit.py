"""The audit log table (store migration 4): kept across restarts, newest first, and a file
from before it is migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from centralita.store import SCHEMA_VERSION, Store, StoreLocation, open_location


async def test_entries_are_kept_newest_first(store_location: StoreLocation) -> None:
    async with open_location(store_location) as store:
        first = await store.add_audit(
            actor="1101", action="add member", subject="1102", changes="+a\n"
        )
        await store.add_audit(actor="1101", action="edit queue", subject="support-en", changes="")
    async with open_location(store_location) as store:
        newest, oldest = await store.list_audit()
        assert oldest == first
        assert (newest.action, newest.subject) == ("edit queue", "support-en")
        assert await store.list_audit(limit=1, offset=1) == [first]
        with pytest.raises(ValueError, match="actor must not be empty"):
            await store.add_audit(actor=" ", action="x", subject="", changes="")
        assert len(await store.list_audit()) == 2  # nothing written by the refused one


async def test_a_version_3_file_gets_the_audit_table(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    async with Store.open(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE audit_log")
    conn.execute("UPDATE schema_version SET version = 3")
    conn.commit()
    conn.close()
    async with Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION >= 4  # 5 since issue 11
        await store.add_audit(actor="1101", action="remove member", subject="1200", changes="")
        assert [e.subject for e in await store.list_audit()] == ["1200"]
