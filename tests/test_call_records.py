"""One call record type for the AMI listener and the store: one duplicate key, one agent rule."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest

from ami.cdr import (
    CDR_TIME_FORMAT,
    CallRecord,
    CdrError,
    channel_extension,
    parse_cdr,
    parse_cdr_time,
)
from ami.protocol import AmiError, AmiMessage
from ami.testing import load_trace
from ami.tracker import CallTracker
from centralita.store import Store, StoreBackend, cdr_from_csv_row

TRACES = Path(__file__).parent / "fixtures" / "asterisk-traces"


@pytest.fixture
def store(any_store: StoreBackend) -> StoreBackend:
    """An empty store, on SQLite and on PostgreSQL in turn (tests/conftest.py)."""
    return any_store


def trace_records(name: str) -> list[CallRecord]:
    records = [parse_cdr(m) for m in load_trace(TRACES / name)]
    return [r for r in records if r is not None]


def as_master_csv_row(rec: CallRecord) -> list[str]:
    """The cdr_csv row Asterisk writes for the same record with loguniqueid=yes
    (cdr_csv.c build_csv_record: 16 columns, then the uniqueid)."""
    line = io.StringIO()
    csv.writer(line).writerow(
        [
            rec.accountcode,
            rec.src,
            rec.dst,
            rec.dcontext,
            rec.clid,
            rec.channel,
            rec.dstchannel,
            rec.lastapp,
            rec.lastdata,
            rec.start.strftime("%Y-%m-%d %H:%M:%S"),
            rec.answer.strftime("%Y-%m-%d %H:%M:%S") if rec.answer else "",
            rec.end.strftime("%Y-%m-%d %H:%M:%S"),
            str(rec.duration),
            str(rec.billsec),
            rec.disposition,
            rec.amaflags,
            rec.uniqueid,
        ]
    )
    return next(csv.reader([line.getvalue()]))


def test_the_event_and_the_csv_row_of_one_call_are_one_record() -> None:
    for event in trace_records("ami-queue-timeout.txt"):
        row = cdr_from_csv_row(as_master_csv_row(event))
        assert row.key == event.key
        assert row.agent == event.agent
        assert (row.uniqueid, row.start, row.end) == (event.uniqueid, event.start, event.end)


async def test_the_store_keeps_one_row_for_the_event_and_the_csv_row(
    store: Store, tmp_path: Path
) -> None:
    events = trace_records("ami-queue-timeout.txt")
    for event in events:
        assert await store.upsert_cdr(event) is True
    master = tmp_path / "Master.csv"
    with master.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(as_master_csv_row(e) for e in events)
    result = await store.import_master_csv(master, region="ES", match_digits=10)
    assert (result.imported, result.duplicates, result.unreadable) == (0, len(events), 0)
    assert await store.count_cdrs() == len(events)


def test_a_repeated_event_has_the_key_of_the_first_and_a_later_copy_too() -> None:
    first, *_ = trace_records("ami-queue-sip-call.txt")
    again = parse_cdr(AmiMessage.build([("Event", "Cdr"), *first_headers()]))
    assert again == first and again is not None and again.key == first.key
    # A later copy of the same record (the end moved on) is the same record, updated.
    moved = [(n, "2026-11-21 22:45:00" if n == "EndTime" else v) for n, v in first_headers()]
    later = parse_cdr(AmiMessage.build([("Event", "Cdr"), *moved]))
    assert later is not None and later.key == first.key and later.end != first.end


def first_headers() -> list[tuple[str, str]]:
    cdr = next(m for m in load_trace(TRACES / "ami-queue-sip-call.txt") if m.name == "Cdr")
    return [(n, v) for n, v in cdr.headers if n != "Event"]


def test_the_tracker_and_the_records_name_the_same_agent() -> None:
    tracker = CallTracker(["1001", "1002"], ("PJSIP", "SIP"))
    for channel, extension in [
        ("SIP/1001-00000000", "1001"),
        ("PJSIP/1002-0000002a", "1002"),
        ("PJSIP/1002", "1002"),
    ]:
        assert channel_extension(channel) == extension
        assert tracker.agent_of_channel(channel) == extension
    # A Local channel names the extension for a record; it is no device the tracker follows.
    assert channel_extension("Local/1001@agents-00000001;1") == "1001"
    assert tracker.agent_of_channel("Local/1001@agents-00000001;1") is None
    assert tracker.agent_of_channel("PJSIP/9999-00000001") is None  # not an agent
    assert channel_extension("nonsense") == ""


def test_an_unreadable_cdr_event_is_a_cdr_error() -> None:
    bad = AmiMessage.build([("Event", "Cdr"), ("UniqueID", "1.2"), ("StartTime", "yesterday")])
    with pytest.raises(CdrError) as info:
        parse_cdr(bad)
    assert isinstance(info.value, AmiError) and isinstance(info.value, ValueError)
    assert "yesterday" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-21 22:44:46",
        "2024-02-29 00:00:00",
        "2026-1-5 3:04:05",  # strptime takes one-digit fields
        "2026-11-21  22:44:46",  # and a run of blanks for the space
        "2026-13-01 10:00:00",
        "2026-02-30 10:00:00",
        "2026-11-21 24:00:00",
        "2026-11-21 23:59:60",
        "2026-11-21T22:44:46",
        "2026-11-21 22:44:46.5",
        "٢٠٢٦-11-21 22:44:46",
        "20261121 224446",
    ],
)
def test_a_cdr_time_reads_as_strptime_reads_it(text: str) -> None:
    try:
        expected: datetime | None = datetime.strptime(text, CDR_TIME_FORMAT)
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(CdrError, match="is not a CDR time"):
            parse_cdr_time(text)
    else:
        assert parse_cdr_time(f" {text} ") == expected
