"""`centralita db copy`: every row of every table from one store to another (SQLite to
PostgreSQL, to move a site; any direction works), ids kept.

Both stores are opened first, which brings both to this Centralita's schema. The console's
cookie signing key and the login failures stay where they are (`SKIPPED_TABLES`). The copy runs
in one transaction on the target: it lands whole or not at all. A target that already holds
rows is refused unless `replace` (then its rows are deleted first, in that transaction).
PostgreSQL's id sequences are moved past the copied ids, and each table's row count is
compared on both sides at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from centralita.store.base import Connection, StoreBase
from centralita.store.errors import StoreError
from centralita.store.interface import StoreBackend

BATCH_ROWS = 5000
# Centralita's own bookkeeping: each store has its own, at the same version after opening.
# The console's cookie signing key is not copied: a copy (a file, a dump) would be one more
# place it could leak from, and whoever holds it can sign a session for any extension. The
# target makes its own when an instance first starts on it (consoles log in again once).
# Login failures are counts of the last minutes, not records.
SKIPPED_TABLES = frozenset({"schema_version", "shared_secrets", "login_failures"})


class CopyError(StoreError):
    """The copy was refused or did not check out; the target is as it was (refused) or
    holds the whole copy that failed the count (then the message says which table)."""


@dataclass(frozen=True)
class CopyReport:
    tables: dict[str, int]  # rows copied per table, in copy order

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def _base(store: StoreBackend) -> StoreBase:
    assert isinstance(store, StoreBase)
    return store


async def _rows(db: Connection, sql: str, params: Any = ()) -> list[Any]:
    return list(await db.execute_fetchall(sql, params))


async def tables_of(store: StoreBackend) -> list[str]:
    """The store's tables (its schema's, on PostgreSQL), parents before the tables whose
    foreign keys name them."""
    base = _base(store)
    async with base._read() as db:
        if store.dialect == "postgresql":
            names = [
                r["table_name"]
                for r in await _rows(
                    db,
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                )
            ]
            refs = await _rows(
                db,
                "SELECT tc.table_name AS child, ccu.table_name AS parent "
                "FROM information_schema.table_constraints tc "
                "JOIN information_schema.constraint_column_usage ccu "
                "ON ccu.constraint_name = tc.constraint_name "
                "AND ccu.table_schema = tc.table_schema "
                "WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
            )
            parents = {(str(r["child"]), str(r["parent"])) for r in refs}
        else:
            names = [
                r["name"]
                for r in await _rows(
                    db,
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'",
                )
            ]
            parents = set()
            for name in names:
                for ref in await _rows(db, f'PRAGMA foreign_key_list("{name}")'):
                    parents.add((name, str(ref["table"])))
    ordered: list[str] = []
    pending = sorted(str(n) for n in names if n not in SKIPPED_TABLES)
    while pending:
        ready = [
            t for t in pending if not any(c == t and p != t and p in pending for c, p in parents)
        ]
        if not ready:  # a cycle: keep the remaining order (not in Centralita's schema)
            ready = pending[:1]
        ordered += ready
        pending = [t for t in pending if t not in ready]
    return ordered


async def columns_of(store: StoreBackend, table: str) -> list[str]:
    base = _base(store)
    async with base._read() as db:
        if store.dialect == "postgresql":
            rows = await _rows(
                db,
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ? "
                "ORDER BY ordinal_position",
                (table,),
            )
            return [str(r["column_name"]) for r in rows]
        return [str(r["name"]) for r in await _rows(db, f'PRAGMA table_info("{table}")')]


async def count_rows(store: StoreBackend, table: str) -> int:
    async with _base(store)._read() as db:
        rows = await _rows(db, f'SELECT count(*) AS n FROM "{table}"')  # noqa: S608
    return int(rows[0]["n"])


async def copy_store(
    source: StoreBackend,
    target: StoreBackend,
    *,
    replace: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy every table of `source` into `target` (see the module's docstring)."""
    tables = await tables_of(source)
    target_tables = set(await tables_of(target))
    missing = [t for t in tables if t not in target_tables]
    if missing:
        raise CopyError(f"the target has no table {', '.join(missing)}: is it the same version?")
    if not replace:
        full = [t for t in await tables_of(target) if await count_rows(target, t)]
        if full:
            raise CopyError(
                f"the target already holds rows (in {', '.join(full)}); "
                "copy into an empty store, or pass --replace to delete them first"
            )
    plans = []
    for table in tables:
        wanted = await columns_of(target, table)
        have = await columns_of(source, table)
        # SQLite's implicit rowid, made a column on PostgreSQL (schema._PG_AFTER).
        implicit = source.dialect == "sqlite" and "rowid" in wanted and "rowid" not in have
        columns = [c for c in wanted if c in have or (c == "rowid" and implicit)]
        order = "id" if "id" in have else ("rowid" if source.dialect == "sqlite" else None)
        plans.append((table, columns, order))
    copied: dict[str, int] = {}
    async with _base(target)._tx() as out:
        if replace:
            for table in reversed(await tables_of(target)):
                await out.execute(f'DELETE FROM "{table}"')  # noqa: S608 (catalogue names)
        for table, columns, order in plans:
            copied[table] = await _copy_table(source, out, table, columns, order)
            if progress is not None:
                progress(table, copied[table])
        if target.dialect == "postgresql":
            await _advance_sequences(out)
    for table in tables:
        want, got = await count_rows(source, table), await count_rows(target, table)
        if want != got:
            raise CopyError(f"{table}: {want} rows in the source but {got} in the target")
    return CopyReport(copied)


async def _copy_table(
    source: StoreBackend, out: Connection, table: str, columns: list[str], order: str | None
) -> int:
    quoted = ", ".join(f'"{c}"' for c in columns)
    insert = (
        f'INSERT INTO "{table}" ({quoted}) '  # noqa: S608 (catalogue names)
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    total = 0
    last: Any = None
    offset = 0
    while True:
        # Keyset pages on the id (or SQLite's rowid): each page one index range.
        select = f'SELECT {quoted} FROM "{table}"'  # noqa: S608 (catalogue names)
        params: tuple[Any, ...]
        if order is not None:
            key = order  # `id` or `rowid`: plain names
            where = f" WHERE {key} > ?" if last is not None else ""
            select = f'SELECT {key} AS copy_key, {quoted} FROM "{table}"{where} '  # noqa: S608
            select += f"ORDER BY {key} LIMIT ?"
            params = (last, BATCH_ROWS) if last is not None else (BATCH_ROWS,)
        else:
            select += " LIMIT ? OFFSET ?"
            params = (BATCH_ROWS, offset)
        async with _base(source)._read() as db:
            rows = await _rows(db, select, params)
        if not rows:
            return total
        skip = 1 if order is not None else 0
        await out.executemany(insert, [tuple(r)[skip:] for r in rows])
        total += len(rows)
        offset += len(rows)
        if order is not None:
            last = rows[-1]["copy_key"]
        if len(rows) < BATCH_ROWS:
            return total


async def _advance_sequences(out: Connection) -> None:
    """Each identity column's next value: past the largest id copied."""
    async with out.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ) as cur:
        identities = [(str(r["table_name"]), str(r["column_name"])) for r in await cur.fetchall()]
    for table, column in identities:
        await out.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?), "  # noqa: S608 (catalogue names)
            f'COALESCE((SELECT max("{column}") FROM "{table}"), 0) + 1, false)',
            (f'"{table}"', column),
        )
