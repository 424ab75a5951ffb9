"""Reports (centralita/reports.py, web/reports.py) on a small dataset whose figures were
worked out by hand, in a real SQLite store; /reports and its CSV tables for supervisors only."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from test_web_support import console_env

from centralita import reports
from centralita.reports import Period, percentile
from centralita.store import SCHEMA_VERSION, Store, StoreBackend, schema
from centralita.store.base import StoreBase
from centralita.store.queue_events import PauseChange, QueueCallUpdate, QueueEvent
from centralita.store.report_tables import wait_bucket
from centralita.store.schema import REPORT_TABLES_VERSION

DAY = date(2026, 3, 10)


def at(hour: int, minute: int = 0, day: date = DAY) -> str:
    """A local time of `day` as the store's UTC text."""
    local = datetime(day.year, day.month, day.day, hour, minute).astimezone()
    return local.astimezone(UTC).isoformat(timespec="seconds")


def call(
    uniqueid: str,
    queue: str,
    joined: str,
    outcome: str = "answered",
    *,
    wait: int | None = None,
    talk: int | None = None,
    agent: str = "",
) -> QueueCallUpdate:
    return QueueCallUpdate(
        uniqueid,
        queue,
        outcome,  # type: ignore[arg-type]
        joined,
        20,
        wait_s=wait,
        talk_s=talk,
        agent=agent,
        ended_at=joined if outcome != "waiting" else None,
    )


DATASET: list[QueueEvent] = [
    # support-en (service level 20 s)
    call("c1", "support-en", at(10, 0), wait=5, talk=100, agent="1002"),
    call("c2", "support-en", at(10, 10), wait=15, talk=200, agent="1002"),
    call("c3", "support-en", at(11, 5), wait=30, talk=60, agent="1003"),
    call("c4", "support-en", at(11, 30), "abandoned", wait=40),
    call("c5", "support-en", at(12, 0), "waiting"),
    # support-fr
    call("c6", "support-fr", at(14, 0), wait=2, talk=30, agent="1003"),
    call("c7", "support-fr", at(14, 20), "abandoned", wait=8),
    # The day before and the day after: not in the day's report.
    call("c8", "support-en", at(23, 0, DAY - timedelta(days=1)), wait=1, talk=1, agent="1002"),
    call("c9", "support-en", at(0, 30, DAY + timedelta(days=1)), "abandoned", wait=1),
    # Pauses: 30 min of lunch and 10 min of break for 1002; 1003's lunch began the day
    # before (23:50) and ended at 00:20: 20 min of it fall in the day.
    PauseChange("1002", True, at(12, 0), "lunch"),
    PauseChange("1002", False, at(12, 30)),
    PauseChange("1002", True, at(15, 0), "break"),
    PauseChange("1002", False, at(15, 10)),
    PauseChange("1003", True, at(23, 50, DAY - timedelta(days=1)), "lunch"),
    PauseChange("1003", False, at(0, 20)),
]


@pytest.fixture
def store(any_store: StoreBackend) -> StoreBackend:
    """Each store test on both backends (tests/conftest.py)."""
    return any_store


async def fill(store: StoreBackend, path: Path | None = None) -> None:
    """The dataset, ratings and callbacks, written as the app writes them."""
    await store.write_queue_events(DATASET)
    for rating, agent, queue in ((9, "1002", "support-en"), (7, "1002", "support-en")):
        await store.add_rating(callerid="600", agent=agent, queue=queue, rating=rating, call_id="x")
    await store.add_rating(callerid="600", agent="1003", queue="support-en", rating=3, call_id="x")
    await store.add_rating(callerid="600", agent="1003", queue="support-fr", rating=10, call_id="x")
    await store.add_rating(callerid="600", agent="1003", queue="support-fr", rating=0, call_id="y")
    for queue, status in (
        ("support-en", "done"),
        ("support-en", "pending"),
        ("support-fr", "pending"),
    ):
        await store.add_callback(
            callerid="600",
            language="en",
            queue=queue,
            number="600111222",
            alternative="",
            uniqueid="u",
            status=status,
        )
    await store.add_callback(
        callerid="600",
        language="en",
        queue="support-fr",
        number="600111223",
        alternative="",
        uniqueid="v",
        status="done",
    )
    # The survey and the callback flows stamp their rows with the time they are written:
    # move them into the day (the last of each to the day after, out of the report).
    # (Through the store's own connection, so on either backend.)
    assert isinstance(store, StoreBase)
    async with store._tx() as db:
        await db.execute("UPDATE ratings SET created_at = ? WHERE call_id = 'x'", (at(16),))
        await db.execute(
            "UPDATE ratings SET created_at = ? WHERE call_id = 'y'",
            (at(1, 0, DAY + timedelta(days=1)),),
        )
        await db.execute("UPDATE callbacks SET created_at = ? WHERE uniqueid = 'u'", (at(9),))
        await db.execute(
            "UPDATE callbacks SET created_at = ? WHERE uniqueid = 'v'",
            (at(9, 0, DAY - timedelta(days=1)),),
        )
    # Moved behind the store's back: its report totals are recounted.
    await store.rebuild_report_tables()


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile({}) is None
    assert percentile({5: 1}) == 5
    # 10 values 1..10: the 9th is the 90th percentile.
    assert percentile({v: 1 for v in range(1, 11)}) == 9
    assert percentile({2: 1, 8: 1}) == 8
    assert percentile({0: 9, 60: 1}) == 0
    assert percentile({0: 8, 60: 2}) == 60
    # To the second up to 30 s, then in steps (the step's upper edge).
    waits = (0, 7, 20, 30, 31, 40, 41, 119, 99999)
    assert [wait_bucket(w) for w in waits] == [0, 7, 20, 30, 35, 40, 45, 120, 86400]


async def test_a_day_report_worked_out_by_hand(store: StoreBackend) -> None:
    await fill(store)
    period = Period.of("day", DAY)
    end_of_day = datetime.fromisoformat(period.end_utc)
    report = await reports.report(store, period, now=end_of_day)
    en, fr = report.queues
    assert (en.name, en.offered, en.answered, en.abandoned, en.answered_in_sl) == (
        "support-en",
        5,
        3,
        1,
        2,
    )
    assert en.answer_rate == 3 / 4  # answered / (answered + abandoned); c5 still waits
    assert en.service_level == 2 / 4  # c1 (5 s) and c2 (15 s) within 20 s
    assert en.avg_wait_s == (5 + 15 + 30 + 40) / 4
    assert en.p90_wait_s == 40  # 4 waits: the 4th (ceil(0.9 * 4)) in order
    assert en.avg_talk_s == (100 + 200 + 60) / 3
    assert (en.callbacks_requested, en.callbacks_done) == (2, 1)
    assert (en.rating_avg, en.rating_count) == ((9 + 7 + 3) / 3, 3)
    assert (fr.name, fr.offered, fr.answered, fr.abandoned) == ("support-fr", 2, 1, 1)
    assert (fr.answer_rate, fr.service_level) == (1 / 2, 1 / 2)
    assert (fr.avg_wait_s, fr.p90_wait_s, fr.avg_talk_s) == (5.0, 8, 30.0)
    assert (fr.callbacks_requested, fr.callbacks_done) == (1, 0)
    assert (fr.rating_avg, fr.rating_count) == (10.0, 1)

    total = report.total
    assert (total.offered, total.answered, total.abandoned, total.answered_in_sl) == (7, 4, 2, 3)
    assert total.answer_rate == 4 / 6 and total.service_level == 3 / 6
    assert total.avg_wait_s == (5 + 15 + 30 + 40 + 2 + 8) / 6
    assert total.p90_wait_s == 40  # 6 waits: the 6th
    assert total.avg_talk_s == (100 + 200 + 60 + 30) / 4
    assert (total.callbacks_requested, total.callbacks_done, total.rating_count) == (3, 1, 4)
    assert total.rating_avg == (9 + 7 + 3 + 10) / 4

    a1002, a1003 = report.agents
    assert (a1002.name, a1002.answered, a1002.service_level) == ("1002", 2, 1.0)
    assert (a1002.avg_wait_s, a1002.p90_wait_s, a1002.avg_talk_s) == (10.0, 15, 150.0)
    assert (a1002.pause_s, a1002.rating_avg, a1002.rating_count) == (1800 + 600, 8.0, 2)
    assert (a1003.name, a1003.answered, a1003.service_level) == ("1003", 2, 0.5)
    assert (a1003.avg_wait_s, a1003.p90_wait_s, a1003.avg_talk_s) == (16.0, 30, 45.0)
    assert (a1003.pause_s, a1003.rating_avg, a1003.rating_count) == (1200, 6.5, 2)
    assert report.pauses == [
        ("1002", "break", 600),
        ("1002", "lunch", 1800),
        ("1003", "lunch", 1200),
    ]

    hours = {b.label: b for b in report.per_hour}
    assert len(hours) == 24
    assert [
        (h, hours[h].offered, hours[h].answered, hours[h].abandoned)
        for h in ("10", "11", "12", "14")
    ] == [
        ("10", 2, 2, 0),
        ("11", 2, 1, 1),
        ("12", 1, 0, 0),
        ("14", 2, 1, 1),
    ]
    assert sum(b.offered for b in report.per_hour) == 7
    levels = {b.label: b.service_level for b in report.over_time}
    assert (levels["10"], levels["11"], levels["12"], levels["14"], levels["00"]) == (
        1.0,
        0.0,
        None,
        0.5,
        None,
    )
    assert report.ratings == {0: 0, 1: 0, 2: 0, 3: 1, 4: 0, 5: 0, 6: 0, 7: 1, 8: 0, 9: 1, 10: 1}


async def test_a_month_holds_its_days_and_the_totals_rebuild_the_same(store: StoreBackend) -> None:
    await fill(store)
    month = Period.of("month", DAY)
    assert (month.first, month.end) == (date(2026, 3, 1), date(2026, 4, 1))
    report = await reports.report(store, month, now=datetime.fromisoformat(month.end_utc))
    # The day before and the day after belong to the month too.
    assert (report.total.offered, report.total.answered, report.total.abandoned) == (9, 5, 3)
    assert len(report.over_time) == 31
    by_day = {b.label: b.offered for b in report.over_time}
    assert (by_day["2026-03-09"], by_day["2026-03-10"], by_day["2026-03-11"]) == (1, 7, 1)
    week = Period.of("week", DAY)
    assert (week.first, week.end) == (date(2026, 3, 9), date(2026, 3, 16))  # Monday to Monday
    # The running totals equal what a full recount from queue_calls gives.
    before = await store.report_data(
        first_day="2026-03-01",
        end_day="2026-04-01",
        start_utc=month.start_utc,
        end_utc=month.end_utc,
        by_hour=False,
    )
    assert await store.rebuild_report_tables() == 9
    after = await store.report_data(
        first_day="2026-03-01",
        end_day="2026-04-01",
        start_utc=month.start_utc,
        end_utc=month.end_utc,
        by_hour=False,
    )
    assert after == before


async def test_replayed_and_changing_events_keep_the_totals_right(store: StoreBackend) -> None:
    """A call that joins, is answered and completes, each event twice: counted once."""
    joined = at(9)
    events = [
        QueueCallUpdate("r1", "support-en", "waiting", joined, 20),
        QueueCallUpdate("r1", "support-en", "answered", joined, 20, wait_s=25, agent="1002"),
        QueueCallUpdate(
            "r1", "support-en", "answered", joined, 20, wait_s=25, talk_s=50, agent="1002"
        ),
    ]
    await store.write_queue_events(events + events)
    report = await reports.report(store, Period.of("day", DAY))
    [en] = report.queues
    assert (en.offered, en.answered, en.abandoned, en.answered_in_sl) == (1, 1, 0, 0)  # 25 s > 20 s
    assert (en.avg_wait_s, en.p90_wait_s, en.avg_talk_s) == (25.0, 25, 50.0)
    [agent] = report.agents
    assert (agent.answered, agent.avg_talk_s, agent.p90_wait_s) == (1, 50.0, 25)
    assert await store.rebuild_report_tables() == 1
    assert await reports.report(store, Period.of("day", DAY)) == report


def test_periods() -> None:
    assert Period.of("day", DAY).next().first == date(2026, 3, 11)
    assert Period.of("month", date(2026, 12, 31)).next().first == date(2027, 1, 1)
    assert Period.of("month", DAY).previous().first == date(2026, 2, 1)
    assert Period.of("week", date(2026, 3, 15)).first == date(2026, 3, 9)
    with pytest.raises(ValueError, match="unknown period"):
        Period.of("year", DAY)


# -- the web pages --------------------------------------------------------------------------

ROUTES = [
    "/reports",
    *(
        f"/reports/{table}.csv"
        for table in ("queues", "agents", "pauses", "hours", "service-level", "ratings")
    ),
]


async def test_reports_are_for_supervisors_only(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        for route in ROUTES:
            async with client.get(route, allow_redirects=False) as resp:
                assert (resp.status, resp.headers["Location"]) == (303, "/login"), route
        await env.login(client, "1002")  # an agent
        for route in ROUTES:
            async with client.get(route, params={"period": "day"}) as resp:
                assert resp.status == 403, route
        async with client.get("/") as resp:
            assert 'href="/reports"' not in await resp.text()


async def test_the_report_page_and_its_csv(tmp_path: Path) -> None:
    async with console_env(tmp_path) as env, env.session() as client:
        store = env.store
        assert isinstance(store, Store)
        await fill(store)
        # A reason chosen on a phone is a stranger's text: it reaches a spreadsheet inert.
        await store.write_queue_events(
            [
                PauseChange("1003", True, at(17), '=HYPERLINK("http://x")'),
                PauseChange("1003", False, at(17, 5)),
            ]
        )
        await env.login(client, "1001")  # a supervisor
        params = {"period": "day", "date": DAY.isoformat()}
        async with client.get("/reports", params=params) as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            html = await resp.text()
        assert 'href="/reports" aria-current="page"' in html
        assert 'id="kpi-offered">7<' in html
        assert 'id="kpi-sl">50.0%<' in html
        assert "vendor/chartjs/chart.umd.min.js" in html
        assert 'id="report-data"' in html
        assert (
            "=HYPERLINK(&#34;http://x&#34;)" in html or "=HYPERLINK(&quot;http://x&quot;)" in html
        )

        async with client.get("/reports/queues.csv", params=params) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/csv")
            assert "report-queues-day-2026-03-10.csv" in resp.headers["Content-Disposition"]
            rows = list(csv.reader(io.StringIO(await resp.text())))
        assert rows[0][:6] == [
            "queue",
            "offered",
            "answered",
            "abandoned",
            "answer_rate_pct",
            "service_level_pct",
        ]
        assert rows[1] == [
            "support-en",
            "5",
            "3",
            "1",
            "75.0",
            "50.0",
            "22.5",
            "40",
            "120.0",
            "2",
            "1",
            "6.33",
            "3",
        ]
        assert rows[3][:6] == ["all", "7", "4", "2", "66.7", "50.0"]

        async with client.get("/reports/pauses.csv", params=params) as resp:
            rows = list(csv.reader(io.StringIO(await resp.text())))
        assert ["1003", "Élodie Martin", '\'=HYPERLINK("http://x")', "300"] in rows
        async with client.get("/reports/ratings.csv", params=params) as resp:
            rows = list(csv.reader(io.StringIO(await resp.text())))
        assert rows[0] == ["rating", "count"] and rows[1 + 9] == ["9", "1"]

        for bad in ({"period": "year"}, {"date": "2026-13-01"}, {"date": "1999-01-01"}):
            async with client.get("/reports", params=bad) as resp:
                assert resp.status == 400, bad
        async with client.get("/reports/secrets.csv") as resp:
            assert resp.status == 404


async def test_a_file_from_before_the_report_tables_gets_them_when_it_opens(
    tmp_path: Path,
) -> None:
    """Calls and pauses written under the schema that had no report tables yet."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER)")
    before = REPORT_TABLES_VERSION - 1
    for script in schema._MIGRATIONS[:before]:
        for statement in schema._statements(script):
            db.execute(statement)
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (before,))
    db.executemany(
        "INSERT INTO queue_calls (uniqueid, queue, joined_at, answered_at, ended_at, wait_s, "
        "talk_s, agent, outcome, service_level_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 20)",
        [
            ("o1", "support-en", at(10), at(10), at(10, 5), 5, 300, "1002", "answered"),
            ("o2", "support-en", at(11), None, at(11, 1), 60, None, "", "abandoned"),
        ],
    )
    db.execute(
        "INSERT INTO ratings (created_at, callerid, agent, queue, rating, call_id) "
        "VALUES (?, '600', '1002', 'support-en', 8, 'o1')",
        (at(10, 10),),
    )
    db.execute(
        "INSERT INTO pause_intervals (agent, reason, started_at, ended_at) VALUES (?, ?, ?, ?)",
        ("1002", "lunch", at(12), at(12, 30)),
    )
    db.close()
    async with Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
        period = Period.of("day", DAY)
        report = await reports.report(store, period, now=datetime.fromisoformat(period.end_utc))
    [en] = report.queues
    assert (en.offered, en.answered, en.abandoned, en.answered_in_sl) == (2, 1, 1, 1)
    assert (en.avg_wait_s, en.avg_talk_s) == ((5 + 60) / 2, 300.0)
    assert report.pauses == [("1002", "lunch", 1800)]
    assert (en.rating_avg, en.rating_count, report.ratings[8]) == (8.0, 1, 1)


async def test_a_rating_counts_in_the_report_as_it_is_given(store: StoreBackend) -> None:
    await store.add_rating(callerid="600", agent="1003", queue="support-fr", rating=4, call_id="n")
    today = Period.of("month", date.today())
    report = await reports.report(store, today)
    [fr] = report.queues
    [agent] = report.agents
    assert (fr.name, fr.rating_avg, fr.rating_count) == ("support-fr", 4.0, 1)
    assert (agent.name, agent.rating_avg, agent.rating_count) == ("1003", 4.0, 1)
    assert report.ratings[4] == 1 and sum(report.ratings.values()) == 1
