"""Report benchmark: a month of 1,000,000 queued calls, the month report end to end.

    .venv/bin/python bench/report_bench.py [--calls 1000000] [--rounds 7]

Builds, in a real SQLite file in a temporary data folder, `--calls` queued calls spread over
October 2026 (10 queues, 100 agents, 85 % answered), a rating for one call in five, a
callback for one abandoned call in ten and about ten pauses per agent and day; the report
tables are computed from the calls by `Store.rebuild_report_tables` (what the queue-event
log keeps up to date call by call). Then the app runs on loopback (AMI unreachable: the
page does not need it) and a supervisor's session asks for the reports.

Measured, `--rounds` times each (median and worst):

* the store alone: `reports.report(app_store, month)` (the queries and the arithmetic);
* the HTTP `GET /reports?period=month` of a supervisor, end to end (session check, the
  report, the page rendered, the body read);
* baselines in the same run: the same for a day of that month, `GET /healthz`, and the
  month counted straight from `queue_calls` (one GROUP BY over a million rows, what the
  report tables spare every report).

Target: the month report under 1 s (the store alone, and the GET).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from centralita import reports  # noqa: E402
from centralita.app import create_app  # noqa: E402
from centralita.keys import AUTH, STORE  # noqa: E402
from centralita.reports import Period  # noqa: E402
from centralita.settings import demo_text, parse_settings  # noqa: E402
from centralita.store import Store, default_path  # noqa: E402
from centralita.web.auth import COOKIE  # noqa: E402

MONTH = date(2026, 10, 1)
DAYS = 31
QUEUES = [f"queue-{n}" for n in range(10)]
AGENTS = [str(2000 + n) for n in range(100)]
REASONS = ["lunch", "break", "training", "meeting"]
SUPERVISOR = "1001"  # the demo's supervisor


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def build(path: Path, calls: int, seed: int = 1) -> dict[str, int]:
    """Write the month's rows straight into the store's tables (bulk, one transaction)."""
    rnd = random.Random(seed)
    start = datetime.combine(MONTH, datetime.min.time()).astimezone().astimezone(UTC)
    rows: list[tuple[object, ...]] = []
    ratings: list[tuple[object, ...]] = []
    callbacks: list[tuple[object, ...]] = []
    for i in range(calls):
        joined = start + timedelta(seconds=rnd.randrange(DAYS * 86400))
        queue = rnd.choice(QUEUES)
        wait = int(rnd.expovariate(1 / 25))
        if rnd.random() < 0.85:
            agent = rnd.choice(AGENTS)
            talk = int(rnd.expovariate(1 / 180))
            answered = joined + timedelta(seconds=wait)
            ended = answered + timedelta(seconds=talk)
            rows.append(
                (f"{i}.1", queue, iso(joined), iso(answered), iso(ended), wait, talk, agent,
                 "answered", 20)
            )  # fmt: skip
            if rnd.random() < 0.2:
                ratings.append((iso(answered), "600", agent, queue, rnd.randrange(11), f"{i}.0"))
        else:
            ended = joined + timedelta(seconds=wait)
            rows.append(
                (f"{i}.1", queue, iso(joined), None, iso(ended), wait, None, "", "abandoned", 20)
            )
            if rnd.random() < 0.1:
                status = rnd.choice(["pending", "done", "done", "cancelled"])
                callbacks.append(
                    (iso(ended), iso(ended), "600", "en", queue, "600111222", "", f"{i}.1", status)
                )
    pauses = []
    for agent in AGENTS:
        for day in range(DAYS):
            for _ in range(10):
                began = start + timedelta(days=day, seconds=rnd.randrange(86400))
                seconds = rnd.randrange(60, 1800)
                ended = began + timedelta(seconds=seconds)
                pauses.append((agent, rnd.choice(REASONS), iso(began), iso(ended), seconds))
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO queue_calls (uniqueid, queue, joined_at, answered_at, ended_at, wait_s, "
            "talk_s, agent, outcome, service_level_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.executemany(
            "INSERT INTO ratings (created_at, callerid, agent, queue, rating, call_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ratings,
        )
        db.executemany(
            "INSERT INTO callbacks (created_at, updated_at, callerid, language, queue, number, "
            "alternative, uniqueid, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            callbacks,
        )
        db.executemany(
            "INSERT INTO agent_pauses (agent, reason, started_at, ended_at, duration_s) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (agent, started_at) DO NOTHING",
            pauses,
        )
    return {
        "calls": len(rows),
        "ratings": len(ratings),
        "callbacks": len(callbacks),
        "pauses": len(pauses),
    }


async def timed(rounds: int, work: Callable[[], Awaitable[object]]) -> list[float]:
    await work()  # warm: templates compiled, pages of the file in the cache
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        await work()
        times.append(time.perf_counter() - began)
    return times


def figures(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"median {statistics.median(ms):8.1f} ms   worst {max(ms):8.1f} ms"


def config_text(data_dir: Path) -> str:
    text = demo_text()
    text = text.replace("agi_port = 4573", "agi_port = 0")
    text = text.replace("ami_port = 5038", "ami_port = 9")  # nobody there: AMI stays away
    text = text.replace('data_dir = "data"', f'data_dir = "{data_dir}"')
    return text.replace('log_level = "INFO"', 'log_level = "ERROR"')


async def run(args: argparse.Namespace, tmp: Path) -> int:
    logging.getLogger("ami").setLevel(logging.CRITICAL)  # AMI is away on purpose
    data_dir = tmp / "data"
    data_dir.mkdir()
    began = time.perf_counter()
    async with Store.open(default_path(data_dir)):
        pass  # the schema
    counts = await asyncio.to_thread(build, default_path(data_dir), args.calls)
    built = time.perf_counter() - began
    began = time.perf_counter()
    async with Store.open(default_path(data_dir)) as store:
        counted = await store.rebuild_report_tables()
    rolled = time.perf_counter() - began
    size_mb = default_path(data_dir).stat().st_size / 1e6

    config = tmp / "centralita.toml"
    text = config_text(data_dir)
    config.write_text(text, encoding="utf-8")
    app = create_app(parse_settings(text, str(config), tmp, config))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    cookie, _session = app[AUTH].issue(SUPERVISOR)
    month = Period.of("month", MONTH)
    day = Period.of("day", MONTH + timedelta(days=14))
    app_store = app[STORE]
    http = aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Cookie": f"{COOKIE}={cookie}"},
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    sizes: dict[str, int] = {}

    async def get(path: str, params: dict[str, str] | None = None) -> None:
        async with http.get(path, params=params) as resp:
            body = await resp.read()
            assert resp.status == 200, (path, resp.status, body[:200])
            sizes[path + str(params)] = len(body)

    def raw_month() -> list[tuple[object, ...]]:
        with sqlite3.connect(default_path(data_dir)) as db:
            return db.execute(
                "SELECT queue, COUNT(*), SUM(CASE WHEN outcome = 'answered' THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN outcome = 'answered' AND wait_s <= service_level_s "
                "THEN 1 ELSE 0 END), "
                "SUM(wait_s), SUM(talk_s) FROM queue_calls WHERE joined_at >= ? AND joined_at < ? "
                "GROUP BY queue",
                (month.start_utc, month.end_utc),
            ).fetchall()

    try:
        month_report = await reports.report(app_store, month)
        month_params = {"period": "month", "date": MONTH.isoformat()}
        day_params = {"period": "day", "date": day.first.isoformat()}
        results = [
            ("baseline: GET /healthz", await timed(args.rounds, lambda: get("/healthz"))),
            (
                "baseline: day report, store alone",
                await timed(args.rounds, lambda: reports.report(app_store, day)),
            ),
            (
                "baseline: day report, GET /reports",
                await timed(args.rounds, lambda: get("/reports", day_params)),
            ),
            (
                "baseline: month from queue_calls (GROUP BY)",
                await timed(1, lambda: asyncio.to_thread(raw_month)),
            ),
            (
                "month report, store alone",
                await timed(args.rounds, lambda: reports.report(app_store, month)),
            ),
            (
                "month report, GET /reports",
                await timed(args.rounds, lambda: get("/reports", month_params)),
            ),
            (
                "month CSV, GET /reports/agents.csv",
                await timed(args.rounds, lambda: get("/reports/agents.csv", month_params)),
            ),
        ]
    finally:
        await http.close()
        await runner.cleanup()

    print(__doc__.split("\n")[0])
    print(
        f"  built {counts} in {built:.1f} s; report tables from {counted} calls "
        f"in {rolled:.1f} s; file {size_mb:.0f} MB"
    )
    total = month_report.total
    page_kib = sizes[f"/reports{month_params}"] // 1024
    print(
        f"  month: offered {total.offered}, answered {total.answered}, service level "
        f"{100 * (total.service_level or 0):.1f} %, {len(month_report.agents)} agents; "
        f"page {page_kib} KiB"
    )
    for label, values in results:
        print(f"  {label:<46} {figures(values)}")
    store_ms = statistics.median(results[4][1]) * 1000
    http_ms = statistics.median(results[5][1]) * 1000
    met = store_ms < 1000 and http_ms < 1000
    print(f"  {'target: month report < 1 s (median)':<46} {'met' if met else 'NOT met'}")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        return asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main())
