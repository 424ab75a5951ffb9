"""Filling the store's `cdr` table fast for bench/store_bench.py: millions of call records
made inside the database (PostgreSQL: `INSERT ... SELECT` over `generate_series`; SQLite:
`INSERT ... SELECT` over a recursive CTE), the same rows on both backends.

Row `i` is a pure function of `i` in integer arithmetic both SQL dialects compute alike
(64-bit integers, truncating division; squares of values below 2**31 stay below 2**62), so
both backends hold identical records but for `cdr_key` (the 16-byte identity: an md5 of `i`
on PostgreSQL, `randomblob(16)` on SQLite, which has no hash function) and `id`. The same
functions in Python (`caller_of`, `national`) pick the lookups' callers.

The records: CALLERS callers, skewed (the caller of a row is CALLERS * u**2 for a uniform
u, so caller 0 calls about one time in a thousand, the median caller rarely), one of four
spellings of the number, a start within the DAYS days before NOW, one of 60 agents, the
dispositions of bench/lookup_bench.py.

The secondary indexes are dropped before a fill and made again after it by their own
definitions, read from the catalogue (`sqlite_master`, `pg_indexes`/`pg_constraint`): the
lookups then run on exactly the store's schema and indexes, which the bench checks.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

P = 2147483647  # 2**31 - 1, a prime
CALLERS = 1_000_000
DAYS = 90
NOW_TEXT = "2026-03-31 23:59:59"  # bench/lookup_bench.py's NOW
SPAN_S = DAYS * 86400
CHUNK = 1_000_000  # rows per transaction while filling


def _h(i: int, a: int, b: int) -> int:
    x = (i * a + b) % P
    return (x * x + x) % P


def caller_of(i: int) -> int:
    """The caller (0 <= c < CALLERS) of generated row `i`, as the SQL computes it."""
    u = _h(i, 48271, 11) % 1_000_000
    return (u * u // 1_000_000) * CALLERS // 1_000_000


def national(caller: int) -> str:
    """The nine-digit Spanish number of `caller`: distinct for distinct callers below 4e8
    (7919 is prime to 4e8), so callers at CALLERS and above never called."""
    return str(600_000_000 + (caller * 7919 + 12345) % 400_000_000)


# The columns made from i, in CDR_COLUMNS' order but cdr_key (dialect-specific).
_COMMON = """
h AS (SELECT i, (i * 48271 + 11) % 2147483647 AS x1, (i * 69621 + 7) % 2147483647 AS x2,
             (i * 16807 + 3) % 2147483647 AS x3 FROM seq),
r AS (SELECT i, (x1 * x1 + x1) % 2147483647 AS h1, (x2 * x2 + x2) % 2147483647 AS h2,
             (x3 * x3 + x3) % 2147483647 AS h3 FROM h),
f AS (SELECT i, h1,
             ((h1 % 1000000) * (h1 % 1000000) / 1000000) * {callers} / 1000000 AS caller,
             h2 % {span} AS ago, 1001 + h3 % 60 AS agent_n, (h3 / 60) % 19 AS d FROM r),
g AS (SELECT i, CAST(600000000 + (caller * 7919 + 12345) % 400000000 AS TEXT) AS nat,
             (h1 / 1000000) % 4 AS sp, ago, CAST(agent_n AS TEXT) AS agent,
             CASE WHEN d < 14 THEN 'ANSWERED' WHEN d < 17 THEN 'NO ANSWER'
                  WHEN d = 17 THEN 'BUSY' ELSE 'FAILED' END AS disp,
             {hex8} AS hx FROM f),
s AS (SELECT g.*,
             CASE sp WHEN 0 THEN nat WHEN 1 THEN '+34' || nat WHEN 2 THEN '0034' || nat
                  ELSE '+34 ' || substr(nat, 1, 3) || ' ' || substr(nat, 4) END AS src,
             {start} AS st FROM g)
"""
_SELECT = """
SELECT {key}, CAST(1700000000 + i / 100 AS TEXT) || '.' || CAST(i AS TEXT), '', src,
       '34' || nat, '300', agent, 'queue-sip', '"Caller" <' || src || '>', 'SIP/trunk-' || hx,
       'SIP/' || agent || '-' || hx, 'Queue', '', st,
       CASE WHEN disp = 'ANSWERED' THEN st END, {end}, 90,
       CASE WHEN disp = 'ANSWERED' THEN 80 ELSE 0 END, disp, '', '', ''
FROM s
"""
_COLUMNS = (
    "cdr_key, uniqueid, linkedid, src, src_key, dst, agent, dcontext, clid, channel, "
    'dstchannel, lastapp, lastdata, start, answer, "end", duration, billsec, disposition, '
    "amaflags, accountcode, userfield"
)

SQLITE_FILL = (
    f"INSERT INTO cdr ({_COLUMNS}) "
    "WITH RECURSIVE seq(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM seq WHERE i < :hi),"
    + _COMMON.format(
        callers=CALLERS,
        span=SPAN_S,
        hex8="printf('%08x', i)",
        start=f"datetime('{NOW_TEXT}', '-' || ago || ' seconds')",
    )
    + _SELECT.format(key="randomblob(16)", end="datetime(st, '+90 seconds')")
)

PG_FILL = (
    f"INSERT INTO cdr ({_COLUMNS}) "
    "WITH seq AS (SELECT i FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i),"
    + _COMMON.format(
        callers=CALLERS,
        span=SPAN_S,
        hex8="lpad(to_hex(i), 8, '0')",
        start=f"to_char(timestamp '{NOW_TEXT}' - ago * interval '1 second', "
        "'YYYY-MM-DD HH24:MI:SS')",
    ).replace("%", "%%")
    + _SELECT.format(
        key="decode(md5(CAST(i AS TEXT)), 'hex')",
        end="to_char(CAST(st AS timestamp) + interval '90 seconds', 'YYYY-MM-DD HH24:MI:SS')",
    )
)


@dataclass
class Filled:
    rows: int
    insert_s: float  # generating and inserting the rows, indexes off
    index_s: float  # making the indexes again (PostgreSQL: and VACUUM ANALYZE)

    @property
    def rows_per_s(self) -> float:
        return self.rows / (self.insert_s + self.index_s)


def sqlite_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """The `cdr` table's indexes as (name, CREATE statement), but the UNIQUE constraint's
    (an automatic index SQLite cannot drop)."""
    return sorted(
        conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cdr' "
            "AND sql IS NOT NULL"
        ).fetchall()
    )


def fill_sqlite(path: Path, lo: int, hi: int) -> Filled:
    """Rows lo..hi (inclusive) into the store's file (the store closed meanwhile)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Setup, not the store's write path: the store's durability is measured apart.
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: the UNIQUE index in memory
        indexes = sqlite_indexes(conn)
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("COMMIT")
        for start in range(lo, hi + 1, CHUNK):
            conn.execute("BEGIN")
            conn.execute(SQLITE_FILL, {"lo": start, "hi": min(hi, start + CHUNK - 1)})
            conn.execute("COMMIT")
        t1 = time.perf_counter()
        conn.execute("BEGIN")
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        # No ANALYZE: the store never runs it, so its planner has no statistics either.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        t2 = time.perf_counter()
        if sqlite_indexes(conn) != indexes:
            raise RuntimeError("the cdr indexes differ after the fill")
    finally:
        conn.close()
    return Filled(hi - lo + 1, t1 - t0, t2 - t1)


def pg_indexes(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[str, str]]:
    """Every index of `cdr` as (name, definition)."""
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename = 'cdr' ORDER BY indexname"
    ).fetchall()
    return [(str(name), str(sql)) for name, sql in rows]


def fill_pg(conninfo: str, lo: int, hi: int) -> Filled:
    """Rows lo..hi (inclusive) into the store's schema that `conninfo` reaches."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")  # index builds sort in memory
        before = pg_indexes(conn)
        # The UNIQUE constraint (cdr_key) is dropped and added again by its definition; the
        # primary key stays (ids only grow).
        constraints = [
            (str(name), str(definition))
            for name, definition in conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'cdr'::regclass AND contype = 'u' ORDER BY conname"
            ).fetchall()
        ]
        names = {name for name, _ in constraints}
        pkey = {
            str(row[0])
            for row in conn.execute(
                "SELECT conname FROM pg_constraint "
                "WHERE conrelid = 'cdr'::regclass AND contype = 'p'"
            ).fetchall()
        }
        plain = [(n, sql) for n, sql in before if n not in names and n not in pkey]
        t0 = time.perf_counter()
        with conn.transaction():
            for name, _ in constraints:
                conn.execute(f'ALTER TABLE cdr DROP CONSTRAINT "{name}"')
            for name, _ in plain:
                conn.execute(f'DROP INDEX "{name}"')
        for start in range(lo, hi + 1, CHUNK):
            conn.execute(PG_FILL, {"lo": start, "hi": min(hi, start + CHUNK - 1)})
        t1 = time.perf_counter()
        for name, definition in constraints:
            conn.execute(f'ALTER TABLE cdr ADD CONSTRAINT "{name}" {definition}')
        for _, sql in plain:
            conn.execute(sql)
        # What autovacuum does after a bulk insert (autovacuum_vacuum_insert_threshold):
        # the visibility map lets the lookup read the index alone (Index Only Scan).
        conn.execute("VACUUM (ANALYZE) cdr")
        t2 = time.perf_counter()
        if pg_indexes(conn) != before:
            raise RuntimeError("the cdr indexes differ after the fill")
    return Filled(hi - lo + 1, t1 - t0, t2 - t1)
