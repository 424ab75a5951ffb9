"""Call records: the `CdrRecord` type, its identity, and reading it from Asterisk's two
sources (a cdr_csv Master.csv row, a cdr_manager `Cdr` event).

Times (`start`, `answer`, `end`) are the wall-clock times Asterisk writes: cdr_csv and the
cdr_manager `Cdr` event both format `%Y-%m-%d %T` in local time (docs/asterisk-protocol.md#cdr),
so they are stored naive; an aware datetime handed in is converted to local time first.
"""

from __future__ import annotations

import csv
import hashlib
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import NamedTuple

from centralita import phone
from centralita.store.records import check_text
from dialplan.names import OUTBOUND_CONTEXT

# ast_cdr_disp2str, main/cdr.c:3576-3595 (docs/asterisk-protocol.md#cdr).
CDR_DISPOSITIONS = ("NO ANSWER", "FAILED", "BUSY", "ANSWERED", "CONGESTION", "CANCEL")


class ImportResult(NamedTuple):
    """What `Store.import_master_csv` did with the rows of a Master.csv."""

    imported: int
    duplicates: int  # already stored
    unreadable: int  # not a cdr-csv row, or a value the store refuses


@dataclass(frozen=True)
class CdrRecord:
    """One Asterisk CDR record (cdr_csv row or cdr_manager `Cdr` event).

    `src_key` is the `phone.normalize` key of `src`; left as None, the store computes it with
    its own region settings, so contacts and call records share one key.
    """

    uniqueid: str
    linkedid: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    start: datetime
    answer: datetime | None
    end: datetime
    duration: int
    billsec: int
    disposition: str
    accountcode: str = ""
    userfield: str = ""
    lastdata: str = ""
    amaflags: str = ""
    src_key: str | None = None

    @property
    def agent(self) -> str:
        """The extension that took the call: from DestinationChannel, else `dst`.

        A queue call's CDR has the queue's extension in `dst` and the agent only in the
        channel name (`Destination: 300`, `DestinationChannel: SIP/1001-00000000` in
        asterisk-traces/ami-queue-sip-call.txt).

        A click-to-dial call is the other way round: Asterisk calls the agent's device first
        and that channel runs the outbound context to dial the customer, so the CDR's
        `Channel` is the agent's and `DestinationChannel` the trunk's (`DestinationContext` is
        OUTBOUND_CONTEXT, `Channel: SIP/1002-00000000`, `DestinationChannel:
        Local/+34600000001@centralita-test-customer-00000000;1` on Asterisk 20 and 22).
        """
        if self.dcontext == OUTBOUND_CONTEXT:
            return agent_of(self.dst, self.channel)
        return agent_of(self.dst, self.dstchannel)

    def with_key(self, region: str, match_digits: int, min_digits: int = 6) -> CdrRecord:
        """This record with `src_key` computed from `src`."""
        key = phone.normalize(self.src, region, match_digits, min_digits)
        return replace(self, src_key=key)


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


_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]{8}$")


def agent_of(dst: str, dstchannel: str) -> str:
    """The extension behind a destination channel (`SIP/1001-00000000` -> `1001`,
    `PJSIP/1001-0000002a` -> `1001`, `Local/1001@agents-00000001;1` -> `1001`); "" when
    there is none.

    Channel names are `<tech>/<resource>-<8 hex digits>` (the suffix Asterisk appends to
    make names unique; see DestChannel in asterisk-traces/ami-queue-sip-call.txt). A record
    without a destination channel is a call that never reached anyone: its `dst` is only
    where the dialplan stopped (`s` after the callback flow, `600` after voicemail), not an
    agent (cdr.c sets the destination channel only when a channel is dialed or bridged).
    """
    if not dstchannel or "/" not in dstchannel:
        return ""
    resource = dstchannel.split("/", 1)[1].split(";", 1)[0]
    resource = _CHANNEL_SUFFIX.sub("", resource)
    resource = resource.split("@", 1)[0]
    return resource or dst


def _cdr_text(moment: datetime) -> str:
    """Asterisk CDR wall-clock text `%Y-%m-%d %H:%M:%S` (cdr_csv.c:52, cdr_manager.c:182)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone().replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _cdr_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def parse_cdr_time(text: str) -> datetime | None:
    """Parse an Asterisk CDR time; the empty string (never answered) gives None."""
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValueError(f"{text!r} is not a CDR time (YYYY-MM-DD HH:MM:SS)") from None


def _cdr_key(rec: CdrRecord) -> bytes:
    """Identity of a CDR record.

    Not the uniqueid alone: one channel produces several records when it dials more than
    once, all with the same UniqueID (asterisk-traces/ami-queue-timeout.txt has two `Cdr`
    events with `UniqueID: 1795301710.17`: the Queue attempt NO ANSWER to SIP/1001, then
    the Hangup). Start, channel, destination channel and application tell them apart while
    a replayed event or a re-imported row maps to the same key.
    """
    parts = (rec.uniqueid, _cdr_text(rec.start), rec.channel, rec.dstchannel, rec.lastapp)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()[:16]


def _csv_uniqueid(row: Sequence[str]) -> str:
    """A stable id for a Master.csv row written without `loguniqueid=yes`."""
    digest = hashlib.sha256("\x1f".join(row).encode("utf-8", "surrogatepass")).hexdigest()
    return "csv-" + digest[:24]


# Asterisk uniqueids are `<epoch>.<sequence>`, prefixed by `<systemname>-` when set.
_UNIQUEID = re.compile(r"^(?:[\w.-]+-)?\d+\.\d+$")


def cdr_from_csv_row(
    row: Sequence[str], *, region: str = "ES", match_digits: int = 10, min_digits: int = 6
) -> CdrRecord:
    """One cdr_csv Master.csv row as a CdrRecord (columns per docs/asterisk-protocol.md#cdr).

    16 base columns, then [uniqueid if loguniqueid], [userfield if loguserfield],
    [peeraccount, linkedid, sequence if newcdrcolumns]. Raises ValueError for a row that
    does not fit that shape.
    """
    n = len(row)
    if n < 16 or n > 21:
        raise ValueError(f"a Master.csv row has 16 to 21 columns, this one has {n}")
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
        raise ValueError("a CDR row needs a start and an end time")
    try:
        duration = int(base[12])
        billsec = int(base[13])
    except ValueError:
        raise ValueError(f"duration/billsec {base[12]!r}/{base[13]!r} are not integers") from None
    rec = CdrRecord(
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
    return rec.with_key(region, match_digits, min_digits)


def cdr_from_ami(headers: Mapping[str, str]) -> CdrRecord:
    """A cdr_manager `Cdr` event as a CdrRecord (fields per cdr/cdr_manager.c:312-335).

    The event has `UniqueID` (capital ID) and no Linkedid unless mapped in cdr_manager.conf
    `[mappings]` (docs/asterisk-protocol.md#cdr), so `linkedid` is read if present, else "".
    Raises ValueError when StartTime or EndTime is missing or malformed.
    """

    def get(name: str) -> str:
        return headers.get(name, "")

    start = parse_cdr_time(get("StartTime"))
    end = parse_cdr_time(get("EndTime"))
    if start is None or end is None:
        raise ValueError("a Cdr event needs StartTime and EndTime")
    try:
        duration = int(get("Duration") or 0)
        billsec = int(get("BillableSeconds") or 0)
    except ValueError:
        raise ValueError("Duration/BillableSeconds are not integers") from None
    return CdrRecord(
        uniqueid=get("UniqueID") or get("Uniqueid"),
        linkedid=get("Linkedid") or get("LinkedID"),
        src=get("Source"),
        dst=get("Destination"),
        dcontext=get("DestinationContext"),
        clid=get("CallerID"),
        channel=get("Channel"),
        dstchannel=get("DestinationChannel"),
        lastapp=get("LastApplication"),
        lastdata=get("LastData"),
        start=start,
        answer=parse_cdr_time(get("AnswerTime")),
        end=end,
        duration=duration,
        billsec=billsec,
        disposition=get("Disposition"),
        amaflags=get("AMAFlags"),
        accountcode=get("AccountCode"),
        userfield=get("UserField"),
    )


CDR_COLUMNS = (
    "cdr_key, uniqueid, linkedid, src, src_key, dst, agent, dcontext, clid, channel, "
    'dstchannel, lastapp, lastdata, start, answer, "end", duration, billsec, disposition, '
    "amaflags, accountcode, userfield"
)
# Named parameters, one per column of CDR_COLUMNS (`cdr_params` gives them).
CDR_INSERT = (
    f"INSERT INTO cdr ({CDR_COLUMNS}) VALUES ("  # noqa: S608 (constant column list)
    + ", ".join(":" + name.strip().strip('"') for name in CDR_COLUMNS.split(","))
    + ") ON CONFLICT (cdr_key) DO NOTHING"
)


def cdr_params(rec: CdrRecord) -> dict[str, object]:
    """The INSERT parameters of one record, by column name (also used by bench/)."""
    return {
        "cdr_key": _cdr_key(rec),
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
        "start": _cdr_text(rec.start),
        "answer": _cdr_text(rec.answer) if rec.answer is not None else None,
        "end": _cdr_text(rec.end),
        "duration": rec.duration,
        "billsec": rec.billsec,
        "disposition": rec.disposition,
        "amaflags": rec.amaflags,
        "accountcode": rec.accountcode,
        "userfield": rec.userfield,
    }


# What `cdr_from_row` reads back: every field of a CdrRecord.
CDR_RECORD_COLUMNS = (
    "uniqueid, linkedid, src, dst, dcontext, clid, channel, dstchannel, lastapp, start, "
    'answer, "end", duration, billsec, disposition, accountcode, userfield, lastdata, '
    "amaflags, src_key"
)


def cdr_from_row(row: sqlite3.Row) -> CdrRecord:
    """A `cdr` row (CDR_RECORD_COLUMNS) as a CdrRecord."""
    start, end = _cdr_time(row["start"]), _cdr_time(row["end"])
    assert start is not None and end is not None  # NOT NULL columns
    return CdrRecord(
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
        answer=_cdr_time(row["answer"]),
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


def call_row_from_row(row: sqlite3.Row) -> CallRow:
    """A row of the supervisor's call list (see `Store.list_calls`) as a CallRow."""
    start = _cdr_time(row["start"])
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


def check_cdr(rec: CdrRecord) -> None:
    for name in ("uniqueid", "linkedid", "src", "dst", "dcontext", "clid", "channel"):
        check_text(name, getattr(rec, name))
    for name in ("dstchannel", "lastapp", "lastdata", "disposition", "amaflags"):
        check_text(name, getattr(rec, name))
    check_text("accountcode", rec.accountcode)
    check_text("userfield", rec.userfield)
    if not rec.uniqueid:
        raise ValueError("a call record needs a uniqueid")
    for name in ("start", "end"):
        if not isinstance(getattr(rec, name), datetime):
            raise ValueError(f"{name} must be a datetime")
    if rec.answer is not None and not isinstance(rec.answer, datetime):
        raise ValueError("answer must be a datetime or None")
    for name in ("duration", "billsec"):
        value = getattr(rec, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")


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
