"""The store on SQLite and on PostgreSQL, side by side in one run: call-record ingest and the
returning-caller lookup at scale.

For each backend, through the store itself (`open_location`, the same mixins):
* ingest one at a time: `upsert_cdr` per record, each its own committed transaction (what
  the AMI feed does for every `Cdr` event);
* bulk ingest: batches of 5,000 in one transaction each (what `cdr import` does), which also
  fills the table to --rows records;
* the returning-caller lookup (`last_agent_for`, normalise + query) for --lookups callers,
  a tenth of them never seen, after the fill: p50/p99/max.

PostgreSQL is a scratch cluster from the Debian binaries with its default durability
(fsync on; tests/pgcluster.py), or CENTRALITA_TEST_POSTGRES_URL's server; SQLite runs with
the store's own settings (WAL, synchronous=FULL). Goal: lookup p99 < 2 ms on PostgreSQL.
Usage: python bench/store_bench.py [--rows N] [--lookups N] [--backends sqlite,postgresql]
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
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from lookup_bench import AGENTS, DAYS, DISPOSITIONS, NOW, WANTED, pct, spellings  # noqa: E402
from pgcluster import PostgresUnavailable, start_cluster  # noqa: E402

from centralita import phone  # noqa: E402
from centralita.store import CallRecord, SqliteLocation, cdr_params, open_location  # noqa: E402
from centralita.store.base import StoreBase  # noqa: E402
from centralita.store.cdr import CDR_INSERT  # noqa: E402
from centralita.store.url import StoreLocation, parse_store_url  # noqa: E402

BATCH = 5000


class Records:
    """Call records of `callers` Spanish callers, some calling a lot (a skewed pick)."""

    def __init__(self, callers: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.people: list[tuple[str, str]] = []
        seen: set[str] = set()
        while len(self.people) < callers:
            national = str(self.rng.choice((6, 7, 8, 9))) + f"{self.rng.randrange(10**8):08d}"
            if national not in seen:
                seen.add(national)
                self.people.append((national, phone.normalize(national, "ES") or ""))
        self.weights = [1.0 / (1 + i % 500) for i in range(callers)]
        self.serial = 0

    def batch(self, size: int) -> list[CallRecord]:
        rng = self.rng
        out = []
        for who in rng.choices(range(len(self.people)), weights=self.weights, k=size):
            n = self.serial = self.serial + 1
            national, key = self.people[who]
            start = NOW - timedelta(seconds=rng.randrange(DAYS * 86400))
            agent = rng.choice(AGENTS)
            disposition = rng.choice(DISPOSITIONS)
            src = rng.choice(spellings(national))
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

    def lookups(self, count: int) -> list[str]:
        sample = [self.rng.choice(spellings(self.rng.choice(self.people)[0])) for _ in range(count)]
        for i in range(0, count, 10):  # a tenth never called before
            sample[i] = "699" + f"{self.rng.randrange(10**6):06d}"
        return sample


async def run_backend(
    location: StoreLocation, rows: int, one_by_one: int, lookups: int, seed: int
) -> dict[str, Any]:
    records = Records(min(200_000, max(1000, rows // 5)), seed)
    result: dict[str, Any] = {}
    async with open_location(location) as store:
        assert isinstance(store, StoreBase)
        # One at a time, as the AMI feed stores each Cdr event.
        singles = records.batch(one_by_one)
        t0 = time.perf_counter()
        for rec in singles:
            await store.upsert_cdr(rec)
        result["one_by_one"] = one_by_one / (time.perf_counter() - t0)
        # Bulk, as `cdr import` does, up to --rows records; only the store's part is timed
        # (making the records is the benchmark's own work).
        spent = 0.0
        left = rows - one_by_one
        while left > 0:
            batch = [cdr_params(r) for r in records.batch(min(BATCH, left))]
            t0 = time.perf_counter()
            async with store._tx() as db:
                await db.executemany(CDR_INSERT, batch)
            spent += time.perf_counter() - t0
            left -= len(batch)
        result["bulk"] = (rows - one_by_one) / spent
        async with store._tx() as db:
            await db.execute("ANALYZE")
        result["count"] = await store.count_cdrs()
        since = NOW - timedelta(days=30)
        agents = set(AGENTS)
        sample = records.lookups(lookups)
        for spelling in sample[:200]:  # warm caches and prepared statements
            key = store.key(spelling) or ""
            await store.last_agent_for(key, since=since, dispositions=WANTED, agents=agents)
        times = []
        found = 0
        for spelling in sample:
            t0 = time.perf_counter()
            key = store.key(spelling) or ""
            agent = await store.last_agent_for(key, since=since, dispositions=WANTED, agents=agents)
            times.append((time.perf_counter() - t0) * 1000)
            found += agent is not None
        result["lookup"] = times
        result["found"] = found
    return result


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--one-by-one", type=int, default=2000)
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=20260301)
    args = parser.parse_args()
    backends = args.backends.split(",")
    results: dict[str, dict[str, Any]] = {}
    sizes: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="centralita-store-bench-"))
    cluster = None
    try:
        if "sqlite" in backends:
            location: StoreLocation = SqliteLocation(tmp / "centralita.sqlite3")
            results["sqlite"] = asyncio.run(
                run_backend(location, args.rows, args.one_by_one, args.lookups, args.seed)
            )
            sizes["sqlite"] = f"{disk_mb(tmp):,.0f} MB"
            (tmp / "centralita.sqlite3").unlink()
        if "postgresql" in backends:
            try:
                cluster = start_cluster(durable=True)
            except PostgresUnavailable as exc:
                print(f"store_bench: PostgreSQL skipped: {exc}")
            else:
                with psycopg.connect(cluster.url, autocommit=True) as conn:
                    conn.execute("DROP SCHEMA IF EXISTS store_bench CASCADE")
                    conn.execute("CREATE SCHEMA store_bench")
                location = parse_store_url(cluster.schema_url("store_bench"), base=tmp)
                results["postgresql"] = asyncio.run(
                    run_backend(location, args.rows, args.one_by_one, args.lookups, args.seed)
                )
                with psycopg.connect(cluster.url, autocommit=True) as conn:
                    row = conn.execute(
                        "SELECT pg_total_relation_size('store_bench.cdr')"
                    ).fetchone()
                    sizes["postgresql"] = f"{(row[0] if row else 0) / 1e6:,.0f} MB (cdr)"
                    conn.execute("DROP SCHEMA store_bench CASCADE")
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"store_bench: {args.rows:,} call records per backend, {args.lookups:,} lookups")
    print(
        f"{'backend':<12}{'upsert_cdr rows/s':>18}{'bulk rows/s':>13}"
        f"{'lookup p50 ms':>15}{'p99 ms':>9}{'max ms':>9}{'found':>8}  size"
    )
    for name, res in results.items():
        times = res["lookup"]
        print(
            f"{name:<12}{res['one_by_one']:>18,.0f}{res['bulk']:>13,.0f}"
            f"{pct(times, 0.5):>15.3f}{pct(times, 0.99):>9.3f}{max(times):>9.3f}"
            f"{res['found']:>8}  {sizes.get(name, '')}"
        )
        assert res["count"] == args.rows, (name, res["count"])
    if "postgresql" in results:
        p99 = pct(results["postgresql"]["lookup"], 0.99)
        print(f"target: PostgreSQL lookup p99 < 2 ms {'PASS' if p99 < 2.0 else 'FAIL'}")
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
