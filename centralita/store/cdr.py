"""Call records in the store: reading a cdr_csv Master.csv row, the `cdr` table's columns,
and its rows as records.

The record type itself, its identity (`CallRecord.key`) and its agent are `ami.cdr`'s, shared
with the AMI listener. Times are Asterisk's local wall-clock times, stored as its text
(`ami.cdr.cdr_text`).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import NamedTuple

from ami.cdr import CallRecord, cdr_text, parse_cdr_time
from centralita import phone
from centralita.store.base import Row
from centralita.store.errors import StoreInputError
from centralita.store.records import check_text


class ImportResult(NamedTuple):
    """What `Store.import_master_csv` did with the rows of a Master.csv."""

    imported: int
    duplicates: int  # already stored
    unreadable: int  # not a cdr-csv row, or a value the store refuses


@dataclass(frozen=True)
class CallRow:
    """One call record as the supervisor sees it, with the agent's outcome if any."""

    uniqueid: str
    linkedid: str
    start: datetime
    src: str
    dst: str
    agent: str
    disposition: str
    duration: int
    billsec: int
    contact_name: str | None
    outcome: str | None
    outcome_agent: str | None
    notes: str | None
    follow_up: date | None


def with_key(rec: CallRecord, region: str, match_digits: int, min_digits: int = 6) -> CallRecord:
    """`rec` with `src_key`, the `phone.normalize` key of `src`, so contacts and call records
    share one key."""
    return replace(rec, src_key=phone.normalize(rec.src, region, match_digits, min_digits))


def db_time(text: str | None) -> datetime | None:
    """A time column as written by `cdr_text` (None for NULL)."""
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _csv_uniqueid(row: Sequence[str]) -> str:
    """A stable id for a Master.csv row written without `loguniqueid=yes`."""
    digest = hashlib.sha256("\x1f".join(row).encode("utf-8", "surrogatepass")).hexdigest()
    return "csv-" + digest[:24]


# Asterisk uniqueids are `<epoch>.<sequence>`, prefixed by `<systemname>-` when set.
_UNIQUEID = re.compile(r"^(?:[\w.-]+-)?\d+\.\d+$")


def cdr_from_csv_row(
    row: Sequence[str], *, region: str = "ES", match_digits: int = 10, min_digits: int = 6
) -> CallRecord:
    """One cdr_csv Master.csv row as a CallRecord (columns per docs/asterisk-protocol.md#cdr).

    16 base columns, then [uniqueid if loguniqueid], [userfield if loguserfield],
    [peeraccount, linkedid, sequence if newcdrcolumns]. Raises StoreInputError for a row
    that does not fit that shape (CdrError for a time that does not parse).
    """
    n = len(row)
    if n < 16 or n > 21:
        raise StoreInputError(f"a Master.csv row has 16 to 21 columns, this one has {n}")
    base = row[:16]
    extra = list(row[16:])
    linkedid = ""
    if len(extra) >= 3:  # newcdrcolumns=yes appends peeraccount, linkedid, sequence last
        linkedid = extra[-2]
        extra = extra[:-3]
    uniqueid = ""
    userfield = ""
    if len(extra) == 2:
        uniqueid, userfield = extra
    elif len(extra) == 1:
        # loguniqueid or loguserfield alone: only a uniqueid looks like `epoch.seq`.
        if _UNIQUEID.match(extra[0]):
            uniqueid = extra[0]
        else:
            userfield = extra[0]
    (acct, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata) = base[:9]
    start = parse_cdr_time(base[9])
    answer = parse_cdr_time(base[10])
    end = parse_cdr_time(base[11])
    if start is None or end is None:
        raise StoreInputError("a CDR row needs a start and an end time")
    try:
        duration = int(base[12])
        billsec = int(base[13])
    except ValueError:
        raise StoreInputError(
            f"duration/billsec {base[12]!r}/{base[13]!r} are not integers"
        ) from None
    rec = CallRecord(
        uniqueid=uniqueid or _csv_uniqueid(row),
        linkedid=linkedid,
        src=src,
        dst=dst,
        dcontext=dcontext,
        clid=clid,
        channel=channel,
        dstchannel=dstchannel,
        lastapp=lastapp,
        lastdata=lastdata,
        start=start,
        answer=answer,
        end=end,
        duration=duration,
        billsec=billsec,
        disposition=base[14],
        amaflags=base[15],
        accountcode=acct,
        userfield=userfield,
    )
    return with_key(rec, region, match_digits, min_digits)


CDR_COLUMNS = (
    "cdr_key, uniqueid, linkedid, src, src_key, dst, agent, dcontext, clid, channel, "
    'dstchannel, lastapp, lastdata, start, answer, "end", duration, billsec, disposition, '
    "amaflags, accountcode, userfield"
)
# `cdr_params`' keys, one per column of CDR_COLUMNS in its order.
CDR_PARAM_NAMES = tuple(name.strip().strip('"') for name in CDR_COLUMNS.split(","))
# Named parameters, one per column of CDR_COLUMNS (`cdr_params` gives them).
CDR_INSERT = (
    f"INSERT INTO cdr ({CDR_COLUMNS}) VALUES ("  # noqa: S608 (constant column list)
    + ", ".join(":" + name for name in CDR_PARAM_NAMES)
    + ") ON CONFLICT (cdr_key) DO NOTHING"
)


def cdr_params(rec: CallRecord) -> dict[str, object]:
    """The INSERT parameters of one record, by column name (also used by bench/)."""
    return {
        "cdr_key": rec.key,
        "uniqueid": rec.uniqueid,
        "linkedid": rec.linkedid,
        "src": rec.src,
        "src_key": rec.src_key,
        "dst": rec.dst,
        "agent": rec.agent,
        "dcontext": rec.dcontext,
        "clid": rec.clid,
        "channel": rec.channel,
        "dstchannel": rec.dstchannel,
        "lastapp": rec.lastapp,
        "lastdata": rec.lastdata,
        "start": cdr_text(rec.start),
        "answer": cdr_text(rec.answer) if rec.answer is not None else None,
        "end": cdr_text(rec.end),
        "duration": rec.duration,
        "billsec": rec.billsec,
        "disposition": rec.disposition,
        "amaflags": rec.amaflags,
        "accountcode": rec.accountcode,
        "userfield": rec.userfield,
    }


# What `cdr_from_row` reads back: every field of a CallRecord.
CDR_RECORD_COLUMNS = (
    "uniqueid, linkedid, src, dst, dcontext, clid, channel, dstchannel, lastapp, start, "
    'answer, "end", duration, billsec, disposition, accountcode, userfield, lastdata, '
    "amaflags, src_key"
)


def cdr_from_row(row: Row) -> CallRecord:
    """A `cdr` row (CDR_RECORD_COLUMNS) as a CallRecord."""
    start, end = db_time(row["start"]), db_time(row["end"])
    assert start is not None and end is not None  # NOT NULL columns
    return CallRecord(
        uniqueid=row["uniqueid"],
        linkedid=row["linkedid"],
        src=row["src"],
        dst=row["dst"],
        dcontext=row["dcontext"],
        clid=row["clid"],
        channel=row["channel"],
        dstchannel=row["dstchannel"],
        lastapp=row["lastapp"],
        start=start,
        answer=db_time(row["answer"]),
        end=end,
        duration=row["duration"],
        billsec=row["billsec"],
        disposition=row["disposition"],
        accountcode=row["accountcode"],
        userfield=row["userfield"],
        lastdata=row["lastdata"],
        amaflags=row["amaflags"],
        src_key=row["src_key"],
    )


def call_row_from_row(row: Row) -> CallRow:
    """A row of the supervisor's call list (see `Store.list_calls`) as a CallRow."""
    start = db_time(row["start"])
    assert start is not None  # NOT NULL column
    follow_up = row["follow_up"]
    return CallRow(
        uniqueid=row["uniqueid"],
        linkedid=row["linkedid"],
        start=start,
        src=row["src"],
        dst=row["dst"],
        agent=row["agent"],
        disposition=row["disposition"],
        duration=row["duration"],
        billsec=row["billsec"],
        contact_name=row["contact_name"],
        outcome=row["outcome"],
        outcome_agent=row["outcome_agent"],
        notes=row["notes"],
        follow_up=date.fromisoformat(follow_up) if follow_up else None,
    )


def check_cdr(rec: CallRecord) -> None:
    for name in ("uniqueid", "linkedid", "src", "dst", "dcontext", "clid", "channel"):
        check_text(name, getattr(rec, name))
    for name in ("dstchannel", "lastapp", "lastdata", "disposition", "amaflags"):
        check_text(name, getattr(rec, name))
    check_text("accountcode", rec.accountcode)
    check_text("userfield", rec.userfield)
    if not rec.uniqueid:
        raise StoreInputError("a call record needs a uniqueid")
    for name in ("start", "end"):
        if not isinstance(getattr(rec, name), datetime):
            raise StoreInputError(f"{name} must be a datetime")
    if rec.answer is not None and not isinstance(rec.answer, datetime):
        raise StoreInputError("answer must be a datetime or None")
    for name in ("duration", "billsec"):
        value = getattr(rec, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StoreInputError(f"{name} must be a non-negative integer, not {value!r}")


def read_chunk(reader: Iterator[list[str]], size: int) -> tuple[list[list[str] | None], bool]:
    """Up to `size` rows (None for a row the csv module cannot read), and whether the end
    of the file was reached."""
    chunk: list[list[str] | None] = []
    while len(chunk) < size:
        try:
            row = next(reader)
        except StopIteration:
            return chunk, True
        except csv.Error:  # e.g. a field over csv.field_size_limit(): skip that row
            chunk.append(None)
            continue
        if row:
            chunk.append(row)
    return chunk, False
