"""The store on SQLite and on PostgreSQL, side by side in one run: call-record ingest and the
returning-caller lookup at 1M and 10M records.

Each backend is the store itself (`open_location`: its migrations, schema and indexes), the
`cdr` table filled to each --sizes total by bench/store_fill.py (records made inside the
database, the same on both backends, indexes made again after the fill by their own
definitions). At each size, through the store:
* the returning-caller lookup (`last_agent_for`: normalise + query) for --lookups callers
  picked as traffic comes (a caller per random stored record, so frequent callers are asked
  for often) and a tenth never seen: p50/p99/max. Each lookup is paired with a baseline
  timed right after it on the same path (`SELECT 1` where the lookup runs: the event
  loop's read-only connection on SQLite, the lookup connection on PostgreSQL), so both
  see the same load; and the same lookup through the fallback path (aiosqlite's thread /
  the pool);
* ingest one at a time: `upsert_cdr` per record, each its own committed transaction (what
  the AMI feed does for every `Cdr` event);
* bulk ingest: batches of 5,000 in one transaction each, as `cdr import` stores them
  (`_insert_cdrs`).
Then the lookup's plan (EXPLAIN QUERY PLAN / EXPLAIN (ANALYZE, BUFFERS) of the prepared
generic plan) for the most frequent caller.

PostgreSQL is a scratch cluster from the Debian binaries with its default durability
(fsync on; tests/pgcluster.py), or CENTRALITA_TEST_POSTGRES_URL's server; SQLite runs with
the store's own settings (WAL, synchronous=FULL). Goal: lookup p99 < 2 ms on PostgreSQL at
10M. Usage: python bench/store_bench.py [--sizes 1M,10M] [--lookups N]
[--backends sqlite,postgresql] (make bench: 1M).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from ami.cdr import cdr_text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from lookup_bench import AGENTS, DISPOSITIONS, NOW, WANTED, pct, spellings  # noqa: E402
from pgcluster import Cluster, PostgresUnavailable, start_cluster  # noqa: E402
from store_fill import CALLERS, DAYS, caller_of, fill_pg, fill_sqlite, national  # noqa: E402

from centralita import phone  # noqa: E402
from centralita.store import CallRecord, SqliteLocation, cdr_params, open_location  # noqa: E402
from centralita.store.calls import CallRecordsMixin  # noqa: E402
from centralita.store.url import StoreLocation, parse_store_url  # noqa: E402

BATCH = 5000
SINCE = NOW - timedelta(days=30)


class Records:
    """Call records made in Python for the ingest (one at a time and in bulk): callers of
    their own, uniqueids apart from the generated ones."""

    def __init__(self, callers: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.people: list[tuple[str, str]] = []
        seen: set[str] = set()
        while len(self.people) < callers:
            number = str(self.rng.choice((6, 7, 8, 9))) + f"{self.rng.randrange(10**8):08d}"
            if number not in seen:
                seen.add(number)
                self.people.append((number, phone.normalize(number, "ES") or ""))
        self.weights = [1.0 / (1 + i % 500) for i in range(callers)]
        self.serial = 0

    def batch(self, size: int) -> list[CallRecord]:
        rng = self.rng
        out = []
        for who in rng.choices(range(len(self.people)), weights=self.weights, k=size):
            n = self.serial = self.serial + 1
            number, key = self.people[who]
            start = NOW - timedelta(seconds=rng.randrange(DAYS * 86400))
            agent = rng.choice(AGENTS)
            disposition = rng.choice(DISPOSITIONS)
            src = rng.choice(spellings(number))
            out.append(
                CallRecord(
                    uniqueid=f"{1772000000 + n}.{n}", linkedid="", src=src, dst="300",
                    dcontext="queue-sip", clid=f'"Caller" <{src}>',
                    channel=f"SIP/trunk-{n:08x}", dstchannel=f"SIP/{agent}-{n:08x}",
                    lastapp="Queue", start=start,
                    answer=start if disposition == "ANSWERED" else None,
                    end=start + timedelta(seconds=90), duration=90,
                    billsec=80 if disposition == "ANSWERED" else 0,
                    disposition=disposition, src_key=key,
                )
            )  # fmt: skip
        return out


def uniqueid_of(i: int) -> str:
    """The uniqueid store_fill gives generated row `i`."""
    return f"{1700000000 + i // 100}.{i}"


def lookup_sample(generated: int, count: int, rng: random.Random) -> list[str]:
    """Callers as they ring: the caller of a random generated record, in one of its four
    spellings; every tenth a number that never called."""
    sample = []
    for n in range(count):
        who = (
            CALLERS + rng.randrange(CALLERS)
            if n % 10 == 0
            else caller_of(rng.randint(1, generated))
        )
        sample.append(rng.choice(spellings(national(who))))
    return sample


def parse_size(text: str) -> int:
    text = text.strip().upper().replace("_", "")
    scale = {"K": 1000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


async def check_rows(
    store: CallRecordsMixin, generated: int, rng: random.Random
) -> list[CallRecord]:
    """Generated records read back through the store, each checked against what the
    store itself would store for it (its number key and agent); returned for the
    comparison across backends."""
    picks = sorted({rng.randint(1, generated) for _ in range(200)} | {1, generated})
    records = []
    for i in picks:
        found = await store.get_cdrs(uniqueid_of(i))
        assert len(found) == 1, (i, found)
        rec = found[0]
        assert rec.src_key == store.key(rec.src) == "34" + national(caller_of(i)), rec
        async with (
            store._read() as db,
            db.execute("SELECT agent FROM cdr WHERE uniqueid = ?", (rec.uniqueid,)) as cur,
        ):
            row = await cur.fetchone()
        assert row is not None and row["agent"] == rec.agent, (row, rec)
        records.append(rec)
    return records


async def server_pid(store: CallRecordsMixin) -> int | None:
    """The pid of the PostgreSQL backend behind the store's lookup connection; None on
    SQLite (in-process)."""
    fast = getattr(store, "_fast_pg", None)
    if fast is None:
        return None
    cursor = await fast.execute("SELECT pg_backend_pid()")
    row = await cursor.fetchone()
    return int(row[0]) if row else None


def backend_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process `pid` so far; None for None, or when it does
    not run on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spin(loops: int) -> None:
    for _ in range(loops):
        pass


def spin_loops(ms: float) -> int:
    """How many `spin` loops take `ms` of CPU here (the quickest of a few tries)."""
    tries = []
    for _ in range(30):
        t0 = time.perf_counter()
        spin(10_000)
        tries.append((time.perf_counter() - t0) * 1000)
    return max(1, int(ms / min(tries) * 10_000))


async def measure(
    location: StoreLocation, generated: int, args: argparse.Namespace, records: Records
) -> dict[str, Any]:
    rng = random.Random(args.seed + generated)
    res: dict[str, Any] = {}
    agents = set(AGENTS)
    async with open_location(location) as store:
        assert isinstance(store, CallRecordsMixin)
        res["check"] = await check_rows(store, generated, rng)
        sample = lookup_sample(generated, args.lookups, rng)

        async def lookup(spelling: str) -> str | None:
            key = store.key(spelling) or ""
            return await store.last_agent_for(key, since=SINCE, dispositions=WANTED, agents=agents)

        async def fallback(spelling: str) -> object:
            sql, params = store._last_agent_query(
                store.key(spelling) or "", cdr_text(SINCE), WANTED, agents
            )
            async with store._read() as db, db.execute(sql, params) as cur:
                return await cur.fetchone()

        warm = []
        for spelling in sample[:300]:  # warm caches and prepared statements
            t0 = time.perf_counter()
            await lookup(spelling)
            warm.append((time.perf_counter() - t0) * 1000)
            await store._first_row_soon("SELECT 1", ())
            await fallback(spelling)
        loops = spin_loops(pct(warm, 0.5))
        res["lookup"], res["baseline"], res["fallback"], res["spin"] = [], [], [], []
        found = 0
        # Lookups the quick path gave up on (busy, or past the deadline: FAST_LOOKUP_S) and
        # handed to the fallback: counted by the store's `_read` while a lookup runs.
        handed_over = [0]
        in_lookup = [False]
        real_read = store._read

        def counting_read() -> Any:
            handed_over[0] += in_lookup[0]
            return real_read()

        store._read = counting_read  # type: ignore[method-assign]
        for spelling in sample:
            in_lookup[0] = True
            t0 = time.perf_counter()
            agent = await lookup(spelling)
            t1 = time.perf_counter()
            in_lookup[0] = False
            await store._first_row_soon("SELECT 1", ())
            t2 = time.perf_counter()
            res["lookup"].append((t1 - t0) * 1000)
            res["baseline"].append((t2 - t1) * 1000)
            spin(loops)
            res["spin"].append((time.perf_counter() - t2) * 1000)
            found += agent is not None
        res["found"] = found
        res["handed_over"] = handed_over[0]
        store._read = real_read  # type: ignore[method-assign]
        for spelling in sample[: args.lookups // 3]:
            t0 = time.perf_counter()
            await fallback(spelling)
            res["fallback"].append((time.perf_counter() - t0) * 1000)

        # CPU per lookup, which the load does not inflate as it does wall-clock time: this
        # process, and the PostgreSQL backend serving the lookup connection (its
        # /proc/<pid>/stat, when the server runs here).
        backend = await server_pid(store)
        cpu0, srv0 = time.process_time(), backend_cpu_s(backend) if backend else None
        cpu_sample = sample[: args.lookups // 2]
        for spelling in cpu_sample:
            await lookup(spelling)
        cpu1, srv1 = time.process_time(), backend_cpu_s(backend) if backend else None
        res["cpu_us"] = (cpu1 - cpu0) / len(cpu_sample) * 1e6
        res["server_cpu_us"] = (
            None if srv0 is None or srv1 is None else (srv1 - srv0) / len(cpu_sample) * 1e6
        )

        # One at a time, as the AMI feed stores each Cdr event.
        singles = records.batch(args.one_by_one)
        t0 = time.perf_counter()
        for rec in singles:
            await store.upsert_cdr(rec)
        res["one_by_one"] = len(singles) / (time.perf_counter() - t0)
        # Bulk, as `cdr import` does: only the store's part is timed.
        spent = 0.0
        for _ in range(args.bulk // BATCH):
            batch = [cdr_params(r) for r in records.batch(BATCH)]
            t0 = time.perf_counter()
            async with store._tx() as db:
                await store._insert_cdrs(db, batch)
            spent += time.perf_counter() - t0
        res["bulk"] = (args.bulk // BATCH) * BATCH / spent if spent else 0.0
        res["count"] = await store.count_cdrs()
    return res


def heaviest_key() -> str:
    return "34" + national(0)  # caller 0 calls most (store_fill)


def sqlite_plan(path: Path) -> list[str]:
    import sqlite3

    async def query() -> tuple[str, tuple[Any, ...]]:
        async with open_location(SqliteLocation(path)) as store:
            assert isinstance(store, CallRecordsMixin)
            return store._last_agent_query(heaviest_key(), cdr_text(SINCE), WANTED, set(AGENTS))

    sql, params = asyncio.run(query())
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return [str(r[-1]) for r in rows]


def pg_plan(conninfo: str) -> list[str]:
    from centralita.store.postgres import pg_sql, text_array

    sql = pg_sql(
        "SELECT agent FROM cdr WHERE src_key = ? AND start >= ? "
        "AND disposition = ANY(?::text[]) AND agent = ANY(?::text[]) ORDER BY start DESC LIMIT 1"
    )
    params = (heaviest_key(), cdr_text(SINCE), text_array(WANTED), text_array(tuple(AGENTS)))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")  # as the lookup connection
        for n in range(1, 5):
            sql = sql.replace("%s", f"${n}", 1)
        conn.execute(f"PREPARE lookup AS {sql}")
        # EXPLAIN takes no bound parameters: the values go in as literals (a client cursor).
        with psycopg.ClientCursor(conn) as cur:
            cur.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE lookup(%s, %s, %s, %s)", params
            )
            rows = cur.fetchall()
    return [str(r[0]) for r in rows]


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


class Backends:
    """The backends' stores, kept across the sizes (each size adds to the last)."""

    def __init__(self, names: list[str], tmp: Path) -> None:
        self.tmp = tmp
        self.locations: dict[str, StoreLocation] = {}
        self.cluster: Cluster | None = None
        self.pg_url = ""
        if "sqlite" in names:
            self.locations["sqlite"] = SqliteLocation(tmp / "centralita.sqlite3")
        if "postgresql" in names:
            try:
                self.cluster = start_cluster(durable=True)
            except PostgresUnavailable as exc:
                print(f"store_bench: PostgreSQL skipped: {exc}")
            else:
                with psycopg.connect(self.cluster.url, autocommit=True) as conn:
                    conn.execute("DROP SCHEMA IF EXISTS store_bench CASCADE")
                    conn.execute("CREATE SCHEMA store_bench")
                    if self.cluster.folder is not None:
                        # A bulk fill writes GBs of WAL; fewer forced checkpoints meanwhile.
                        conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
                        conn.execute("SELECT pg_reload_conf()")
                self.pg_url = self.cluster.schema_url("store_bench")
                self.locations["postgresql"] = parse_store_url(self.pg_url, base=tmp)
        for location in self.locations.values():  # created and migrated by the store

            async def create(location: StoreLocation = location) -> None:
                async with open_location(location):
                    pass

            asyncio.run(create())

    def fill(self, name: str, lo: int, hi: int) -> Any:
        if name == "sqlite":
            return fill_sqlite(self.tmp / "centralita.sqlite3", lo, hi)
        return fill_pg(self.pg_url, lo, hi)

    def plan(self, name: str) -> list[str]:
        if name == "sqlite":
            return sqlite_plan(self.tmp / "centralita.sqlite3")
        return pg_plan(self.pg_url)

    def size(self, name: str) -> str:
        if name == "sqlite":
            return f"{disk_mb(self.tmp):,.0f}"
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_total_relation_size('cdr')").fetchone()
        return f"{(row[0] if row else 0) / 1e6:,.0f}"

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def print_size(size: int, results: dict[str, dict[str, Any]], loads: tuple[str, str]) -> None:
    names = list(results)
    print()
    print(
        f"store_bench at {size:,} generated call records "
        f"(load average 1,5 min before / after: {loads[0]} / {loads[1]})"
    )
    print(f"{'':<52}" + "".join(f"{n:>14}" for n in names))

    def line(label: str, cell: Callable[[dict[str, Any]], str]) -> None:
        print(f"{label:<52}" + "".join(f"{cell(results[n]):>14}" for n in names))

    line("records in the table", lambda r: f"{r['count']:,}")
    line("fill rows/s (setup, in the database, +indexes)", lambda r: f"{r['fill'].rows_per_s:,.0f}")
    line(
        "  fill: insert s / indexes (+VACUUM ANALYZE) s",
        lambda r: f"{r['fill'].insert_s:.0f} / {r['fill'].index_s:.0f}",
    )
    line("ingest one at a time (upsert_cdr) rows/s", lambda r: f"{r['one_by_one']:,.0f}")
    line(f"ingest bulk ({BATCH:,} per transaction) rows/s", lambda r: f"{r['bulk']:,.0f}")
    for label, key in (
        ("lookup last_agent_for", "lookup"),
        ("baseline SELECT 1, same path, same moment", "baseline"),
        ("baseline CPU-only loop of the lookup's p50", "spin"),
        ("lookup via the fallback (thread / pool)", "fallback"),
    ):
        for name, figure in (
            ("p50", lambda times: pct(times, 0.5)),
            ("p99", lambda times: pct(times, 0.99)),
            ("max", max),
        ):
            print(
                f"{label + ' ' + name + ' ms':<52}"
                + "".join(f"{figure(results[n][key]):>14.3f}" for n in names)
            )
    line("lookup CPU per call, this process us", lambda r: f"{r['cpu_us']:,.0f}")
    line(
        "lookup CPU per call, PostgreSQL backend us",
        lambda r: "-" if r["server_cpu_us"] is None else f"{r['server_cpu_us']:,.0f}",
    )
    line("lookups with an agent found", lambda r: f"{r['found']}/{len(r['lookup'])}")
    line("lookups handed to the fallback (deadline/busy)", lambda r: f"{r['handed_over']}")
    line("size on disk MB (SQLite file / cdr relation)", lambda r: r["disk"])
    for name in names:
        print(f"{name} plan of the lookup for the most frequent caller:")
        for row in results[name]["plan"]:
            print(f"    {row}")
    if "postgresql" in results:
        p99 = pct(results["postgresql"]["lookup"], 0.99)
        print(
            f"target: PostgreSQL lookup p99 < 2 ms: "
            f"{'PASS' if p99 < 2.0 else 'FAIL'} ({p99:.3f} ms)"
        )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f},{five:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M", help="comma-separated totals, e.g. 1M,10M")
    parser.add_argument("--one-by-one", type=int, default=1000)
    parser.add_argument("--bulk", type=int, default=50_000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=20260301)
    args = parser.parse_args()
    sizes = sorted(parse_size(s) for s in args.sizes.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="centralita-store-bench-"))
    print(f"store_bench: {os.cpu_count()} cores, scratch in {tmp}")
    backends = None
    try:
        backends = Backends(args.backends.split(","), tmp)
        ingest = {name: Records(20_000, args.seed) for name in backends.locations}
        done = 0
        for size in sizes:
            results: dict[str, dict[str, Any]] = {}
            before = load()
            for name, location in backends.locations.items():
                filled = backends.fill(name, done + 1, size)
                res = asyncio.run(measure(location, size, args, ingest[name]))
                res["fill"] = filled
                res["plan"] = backends.plan(name)
                res["disk"] = backends.size(name)
                results[name] = res
            done = size
            checks = [r.pop("check") for r in results.values()]
            assert all(c == checks[0] for c in checks), "the backends hold different records"
            print_size(size, results, (before, load()))
    finally:
        if backends is not None:
            backends.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
