"""`/reports`: a day, a week or a month per queue and per agent, with charts, for supervisors.

`GET /reports?period=day|week|month&date=YYYY-MM-DD` shows the period that holds `date`
(today by default); `GET /reports/{table}.csv` with the same query downloads one of its
tables (`CSV_TABLES`) through the project's one CSV encoder (`csvlog.encode_row`: formula
cells neutralised). Both check the session and the supervisor permission on every request.
The figures and what they mean: `centralita.reports`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from aiohttp import web
from babel.numbers import format_decimal

from centralita import csvlog, reports
from centralita.keys import SETTINGS, STORE
from centralita.reports import PERIOD_KINDS, Figures, Period, Report
from centralita.web import i18n
from centralita.web.auth import Session, require_page
from centralita.web.console import UI_LANGUAGE, _bad, render_page
from centralita.web.permissions import require_supervisor

CSV_TABLES = ("queues", "agents", "pauses", "hours", "service-level", "ratings")


def period_of(request: web.Request) -> Period:
    """The period asked for in the query; 400 for an unknown kind or a bad date."""
    kind = request.query.get("period", "day").strip() or "day"
    text = request.query.get("date", "").strip()
    if kind not in PERIOD_KINDS:
        raise _bad("period must be day, week or month", "period")
    try:
        day = date.fromisoformat(text) if text else date.today()
    except ValueError:
        raise _bad("date must be YYYY-MM-DD", "date") from None
    if not date(2000, 1, 1) <= day <= date(2100, 12, 31):
        raise _bad("date is out of range", "date")
    return Period.of(kind, day)


async def _report(request: web.Request) -> tuple[Report, Period, Session]:
    session = await require_page(request)
    require_supervisor(request, session)
    period = period_of(request)
    return await reports.report(request.app[STORE], period), period, session


def _query(period: Period) -> str:
    return f"period={period.kind}&date={period.first.isoformat()}"


def formatters(language: str) -> dict[str, Callable[[Any], str]]:
    """How the page writes numbers in `language` (Latin digits, as the console's script)."""

    def number(value: float | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=language)

    # French sets a narrow no-break space before %; with none, an Arabic (RTL) line keeps
    # the sign after its number (a European terminator joins the digits before it).
    sign = "\u202f%" if language == "fr" else "%"

    def percent(value: float | None) -> str:
        return "—" if value is None else number(value * 100, 1) + sign

    def duration(seconds: float | None) -> str:
        if seconds is None:
            return "—"
        whole = round(seconds)
        hours, rest = divmod(whole, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

    return {
        "number": number,
        "percent": percent,
        "duration": duration,
        "rating": lambda value: number(value, 1),
    }


def chart_data(report: Report) -> dict[str, Any]:
    """What static/reports.js draws (embedded as JSON in the page)."""

    def pct(value: float | None) -> float | None:
        return None if value is None else round(value * 100, 1)

    return {
        "perHour": {
            "labels": [b.label for b in report.per_hour],
            "answered": [b.answered for b in report.per_hour],
            "abandoned": [b.abandoned for b in report.per_hour],
        },
        "serviceLevel": {
            "labels": [b.label for b in report.over_time],
            "values": [pct(b.service_level) for b in report.over_time],
        },
        "ratings": {
            "labels": [str(r) for r in report.ratings],
            "values": list(report.ratings.values()),
        },
    }


async def reports_page(request: web.Request) -> web.Response:
    """`GET /reports`: the report page (supervisors)."""
    report, period, session = await _report(request)
    site = request.app[SETTINGS].current.site
    names = {a.extension: a.name for a in site.agents}
    queues = {q.name: q.service_level_s for q in site.queues}
    agent = site.agent(session.extension)
    # The page's language, as render_page picks it.
    language = i18n.supported(UI_LANGUAGE.get() or (agent.language if agent else "")) or "en"
    return render_page(
        request,
        "reports.html",
        session,
        report=report,
        period=period,
        kinds=PERIOD_KINDS,
        names=names,
        service_levels=queues,
        query=_query(period),
        previous=_query(period.previous()),
        following=_query(period.next()),
        charts=chart_data(report),
        fmt=formatters(language),
        tables=CSV_TABLES,
    )


def _pct_cell(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def _num_cell(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _int_cell(value: int | None) -> str:
    return "" if value is None else str(value)


def _queue_row(figures: Figures) -> list[str]:
    return [
        figures.name or "all",
        _int_cell(figures.offered),
        str(figures.answered),
        _int_cell(figures.abandoned),
        _pct_cell(figures.answer_rate),
        _pct_cell(figures.service_level),
        _num_cell(figures.avg_wait_s),
        _int_cell(figures.p90_wait_s),
        _num_cell(figures.avg_talk_s),
        _int_cell(figures.callbacks_requested),
        _int_cell(figures.callbacks_done),
        _num_cell(figures.rating_avg, 2),
        str(figures.rating_count),
    ]


def csv_rows(table: str, report: Report, names: dict[str, str]) -> Iterable[Sequence[object]]:
    """The header and the rows of one of the report's tables."""
    if table == "queues":
        yield (
            "queue",
            "offered",
            "answered",
            "abandoned",
            "answer_rate_pct",
            "service_level_pct",
            "avg_wait_s",
            "p90_wait_s",
            "avg_talk_s",
            "callbacks_requested",
            "callbacks_done",
            "rating_avg",
            "ratings",
        )
        for figures in (*report.queues, report.total):
            yield _queue_row(figures)
    elif table == "agents":
        yield (
            "agent",
            "name",
            "answered",
            "service_level_pct",
            "avg_wait_s",
            "p90_wait_s",
            "avg_talk_s",
            "pause_s",
            "rating_avg",
            "ratings",
        )
        for a in report.agents:
            yield (
                a.name,
                names.get(a.name, ""),
                a.answered,
                _pct_cell(a.service_level),
                _num_cell(a.avg_wait_s),
                _int_cell(a.p90_wait_s),
                _num_cell(a.avg_talk_s),
                _int_cell(a.pause_s),
                _num_cell(a.rating_avg, 2),
                a.rating_count,
            )
    elif table == "pauses":
        yield ("agent", "name", "reason", "pause_s")
        for agent, reason, seconds in report.pauses:
            yield (agent, names.get(agent, ""), reason, seconds)
    elif table in ("hours", "service-level"):
        yield (
            "hour" if table == "hours" else "when",
            "offered",
            "answered",
            "abandoned",
            "service_level_pct",
        )
        for b in report.per_hour if table == "hours" else report.over_time:
            yield (b.label, b.offered, b.answered, b.abandoned, _pct_cell(b.service_level))
    else:
        yield ("rating", "count")
        yield from report.ratings.items()


async def reports_csv(request: web.Request) -> web.Response:
    """`GET /reports/{table}.csv`: one table of the report as CSV (supervisors)."""
    table = request.match_info["table"]
    if table not in CSV_TABLES:
        raise web.HTTPNotFound(text="no such report table")
    report, period, _session = await _report(request)
    names = {a.extension: a.name for a in request.app[SETTINGS].current.site.agents}
    body = b"".join(
        csvlog.encode_row([str(c) for c in row]) for row in csv_rows(table, report, names)
    )
    filename = f"report-{table}-{period.kind}-{period.first.isoformat()}.csv"
    return web.Response(
        body=body,
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/reports", reports_page)
    router.add_get("/reports/{table}.csv", reports_csv)
