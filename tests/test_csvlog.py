"""CSV logs: whole rows under concurrency, formula neutralisation, round trip."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, datetime
from pathlib import Path

import pytest

from centralita.csvlog import (
    CALLBACKS_HEADER,
    CALLS_HEADER,
    COMPLAINTS_HEADER,
    CsvLog,
    call_row,
    callback_row,
    callbacks_log,
    complaint_row,
    neutralize,
    read_rows,
)
from centralita.store import CallbackRequest, CallRow, Rating
from centralita.times import shown


async def test_concurrent_appends_give_whole_rows(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    # Two instances for the same file share one lock (one writer per file).
    logs = [CsvLog(path, ("n", "text")), CsvLog(tmp_path / "." / "calls.csv", ("n", "text"))]
    payload = "x" * 3000 + ',"quoted"\nsecond line'
    await asyncio.gather(*(logs[i % 2].append((i, f"{i}:{payload}")) for i in range(1000)))
    records = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    assert records[0] == ["n", "text"]
    body = records[1:]
    assert len(body) == 1000
    assert sorted(int(r[0]) for r in body) == list(range(1000))
    assert all(r[1] == f"{r[0]}:{payload}" for r in body)
    assert len(read_rows(path)) == 1000


async def test_header_written_once_and_for_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "complaints.csv"
    log = CsvLog(path, COMPLAINTS_HEADER)
    await log.append(("t", "915550123", "1001", "support-en", 2, "1.0"))
    await CsvLog(path, COMPLAINTS_HEADER).append(("t", "915550124", "1002", "q", 1, "2.0"))
    lines = path.read_bytes().split(b"\r\n")
    assert lines[0] == b"time,caller,agent,queue,rating,call_id"
    assert lines.count(lines[0]) == 1 and len(lines) == 4 and lines[-1] == b""
    empty = tmp_path / "empty.csv"
    empty.touch()
    await CsvLog(empty, ("a",)).append(("1",))
    assert empty.read_bytes() == b"a\r\n1\r\n"


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+34915550123", "'+34915550123"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'=1", "''=1"),
        ("Bob", "Bob"),
        ("915550123", "915550123"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_neutralize(cell: str, written: str) -> None:
    assert neutralize(cell) == written


def test_numbers_are_not_formulas() -> None:
    assert neutralize(-1) == "-1"
    assert neutralize(2.5) == "2.5"
    assert neutralize(None) == ""


async def test_round_trip_of_hostile_cells(tmp_path: Path) -> None:
    path = tmp_path / "callbacks.csv"
    cells = ["=cmd|' /C calc'!A0", "+34915550123", "'=x", "a,b", 'say "hi"', "line\nbreak", "ü"]
    log = CsvLog(path, [f"c{i}" for i in range(len(cells))])
    await log.append(cells)
    raw = path.read_bytes().decode("utf-8")
    assert "\r\n'=cmd|" in raw  # the formula is inert in a spreadsheet
    [row] = read_rows(path)
    assert list(row.values()) == cells


async def test_row_width_is_checked(tmp_path: Path) -> None:
    log = CsvLog(tmp_path / "x.csv", ("a", "b"))
    with pytest.raises(ValueError, match="2 cells"):
        await log.append(("only one",))
    assert not (tmp_path / "x.csv").exists()


def test_read_missing_file(tmp_path: Path) -> None:
    assert read_rows(tmp_path / "nope.csv") == []


async def test_row_builders(tmp_path: Path) -> None:
    cb = CallbackRequest(
        id=7,
        created_at="2026-03-01T10:00:00+00:00",
        updated_at="2026-03-01T10:00:00+00:00",
        callerid="+34915550123",
        language="en",
        queue="support-en",
        number="915550123",
        alternative="",
        uniqueid="1.0",
        status="pending",
    )
    log = callbacks_log(tmp_path)
    assert log.header == CALLBACKS_HEADER
    await log.append(callback_row(cb, "2026-03-01T10:00:00+00:00"))
    [row] = read_rows(tmp_path / "callbacks.csv")
    assert row == {
        "time": "2026-03-01T10:00:00+00:00",
        "callerid": "+34915550123",
        "language": "en",
        "queue": "support-en",
        "number": "915550123",
        "alternative": "",
        "status": "pending",
        "id": "7",
    }
    rating = Rating(7, "2026-03-01T10:00:00+00:00", "915550123", "1001", "q", 3, "1.0")
    assert len(complaint_row(rating)) == len(COMPLAINTS_HEADER)
    call = CallRow(
        "1.1", "1.0", datetime(2026, 3, 1, 9), "915550123", "300", "1001", "ANSWERED",
        30, 28, "Bob", "sale", "1001", "=1+1", date(2026, 3, 5),
    )  # fmt: skip
    assert len(call_row(call)) == len(CALLS_HEADER)
    # Asterisk's wall-clock time, with the local offset it was written in (centralita.times).
    offset = datetime(2026, 3, 1, 9).astimezone().isoformat()[-6:]
    assert call_row(call)[0] == f"2026-03-01 09:00:00{offset}"
    assert complaint_row(rating)[0] == shown("2026-03-01T10:00:00+00:00")
