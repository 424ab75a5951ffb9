"""The store: callbacks, ratings, call records, contacts, outcomes, passwords and the webhook
outbox in one SQLite file (aiosqlite, WAL), behind one async interface.

Everything written here is committed before the method returns, so a caller may acknowledge
it (DESIGN.md principle 4). All SQL is parameterised; values come from callers and trunks.

Times: `created_at`/`updated_at` and outbox times are UTC ISO-8601. Call-record times
(`start`, `answer`, `end`) are the wall-clock times Asterisk writes: cdr_csv and the
cdr_manager `Cdr` event both format `%Y-%m-%d %T` in local time (asterisk-protocol.md §4),
so they are stored naive; an aware datetime handed in is converted to local time first.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import stat
import time
from collections.abc import (
    AsyncIterator,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import aiosqlite

from centralita import phone
from dialplan.names import OUTBOUND_CONTEXT

DB_FILENAME = "centralita.sqlite3"
SCHEMA_VERSION = 3

CALLBACK_STATUSES = ("pending", "done", "cancelled")
# ast_cdr_disp2str, main/cdr.c:3576-3595 (asterisk-protocol.md §4).
CDR_DISPOSITIONS = ("NO ANSWER", "FAILED", "BUSY", "ANSWERED", "CONGESTION", "CANCEL")
CONTACT_FIELDS = ("name", "company", "notes", "external_id", "url")

# Longest text accepted in one field: caller IDs and notes come from strangers, and a
# runaway value must not fill the disk one row at a time.
MAX_TEXT = 4000
MAX_NOTES = 20000

# scrypt parameters for console passwords: 16 MiB and ~50 ms per hash on one core.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAX_N = 2**20

# Longest a returning-caller lookup may run in the event loop's thread before it is
# interrupted and handed to aiosqlite's thread.
FAST_LOOKUP_S = 0.002


def protect(path: Path) -> None:
    """Create the database file 0600, and take world access away from an existing one.

    It holds password hashes, contacts and notes, and was created 0644 (issue 10, finding
    7). A group bit already granted (0640, for a backup group) is kept. SQLite creates the
    -wal and -shm files with the database file's mode (os_unix.c findCreateFileMode).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o007:
            os.fchmod(fd, mode & 0o770)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            side_mode = stat.S_IMODE(side.stat().st_mode)
            if side_mode & 0o007:
                side.chmod(side_mode & 0o770)


def default_path(data_dir: Path | str) -> Path:
    """Where the SQLite database lives inside `data_dir`."""
    return Path(data_dir) / DB_FILENAME


# --------------------------------------------------------------------------- records


class ImportResult(NamedTuple):
    """What `Store.import_master_csv` did with the rows of a Master.csv."""

    imported: int
    duplicates: int  # already stored
    unreadable: int  # not a cdr-csv row, or a value the store refuses


@dataclass(frozen=True)
class CallbackRequest:
    id: int
    created_at: str
    updated_at: str
    callerid: str
    language: str
    queue: str
    number: str
    alternative: str
    uniqueid: str
    status: str


@dataclass(frozen=True)
class Rating:
    id: int
    created_at: str
    callerid: str
    agent: str
    queue: str
    rating: int
    call_id: str


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
class Contact:
    id: int
    name: str
    company: str
    numbers: tuple[str, ...]
    notes: str
    external_id: str
    url: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Outcome:
    id: int
    call_id: str
    agent: str
    outcome: str
    notes: str
    follow_up: date | None
    contact_id: int | None
    created_at: str
    updated_at: str


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


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    url: str
    payload: dict[str, Any] = field(hash=False)
    created_at: str
    next_attempt_at: datetime
    attempts: int
    last_error: str


# --------------------------------------------------------------------------- helpers

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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _utc_text(moment: datetime) -> str:
    """Fixed-width UTC text, so outbox times compare correctly as strings."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # outbox times: naive means UTC
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


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


def _text(name: str, value: object, *, limit: int = MAX_TEXT, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    if not empty and not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _status(value: str) -> str:
    if value not in CALLBACK_STATUSES:
        raise ValueError(
            f"unknown callback status {value!r}; expected one of {', '.join(CALLBACK_STATUSES)}"
        )
    return value


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
    """One cdr_csv Master.csv row as a CdrRecord (columns per asterisk-protocol.md §4).

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
    `[mappings]` (asterisk-protocol.md §4), so `linkedid` is read if present, else "".
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


# --------------------------------------------------------------------------- schema

_MIGRATIONS: tuple[str, ...] = (
    # version 1
    """
    CREATE TABLE callbacks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        callerid TEXT NOT NULL,
        language TEXT NOT NULL,
        queue TEXT NOT NULL,
        number TEXT NOT NULL,
        alternative TEXT NOT NULL,
        uniqueid TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'cancelled'))
    );
    CREATE INDEX callbacks_status ON callbacks (status, id);

    CREATE TABLE ratings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        callerid TEXT NOT NULL,
        agent TEXT NOT NULL,
        queue TEXT NOT NULL,
        rating INTEGER NOT NULL CHECK (rating BETWEEN 0 AND 10),
        call_id TEXT NOT NULL
    );

    CREATE TABLE cdr (
        id INTEGER PRIMARY KEY,
        cdr_key BLOB NOT NULL UNIQUE,
        uniqueid TEXT NOT NULL,
        linkedid TEXT NOT NULL,
        src TEXT NOT NULL,
        src_key TEXT,
        dst TEXT NOT NULL,
        agent TEXT NOT NULL,
        dcontext TEXT NOT NULL,
        clid TEXT NOT NULL,
        channel TEXT NOT NULL,
        dstchannel TEXT NOT NULL,
        lastapp TEXT NOT NULL,
        lastdata TEXT NOT NULL,
        start TEXT NOT NULL,
        answer TEXT,
        "end" TEXT NOT NULL,
        duration INTEGER NOT NULL,
        billsec INTEGER NOT NULL,
        disposition TEXT NOT NULL,
        amaflags TEXT NOT NULL,
        accountcode TEXT NOT NULL,
        userfield TEXT NOT NULL
    );
    -- The returning-caller lookup: equality on src_key, newest start first; disposition
    -- and agent ride along so the lookup never touches the table (covering index).
    CREATE INDEX cdr_caller ON cdr (src_key, start, disposition, agent);
    CREATE INDEX cdr_start ON cdr (start);
    CREATE INDEX cdr_uniqueid ON cdr (uniqueid);
    CREATE INDEX cdr_linkedid ON cdr (linkedid) WHERE linkedid != '';
    CREATE INDEX cdr_agent ON cdr (agent);
    CREATE INDEX cdr_dst ON cdr (dst);

    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        name_fold TEXT NOT NULL,
        company TEXT NOT NULL,
        notes TEXT NOT NULL,
        external_id TEXT NOT NULL,
        url TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE contact_numbers (
        contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
        number TEXT NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (contact_id, key)
    );
    CREATE INDEX contact_numbers_key ON contact_numbers (key);

    CREATE TABLE outcomes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        agent TEXT NOT NULL,
        outcome TEXT NOT NULL,
        notes TEXT NOT NULL,
        follow_up TEXT,
        contact_id INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (call_id, agent)
    );
    CREATE INDEX outcomes_agent ON outcomes (agent);

    CREATE TABLE agent_passwords (
        extension TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        url TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        sent_at TEXT
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE sent_at IS NULL;
    """,
    # version 2: console sessions that outlive a restart (issue 10, finding 3), and outbox
    # rows claimed by the sender before it posts them (finding 10).
    """
    CREATE TABLE revoked_sessions (
        sid TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    CREATE TABLE session_versions (
        extension TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
    """,
    # version 3: records without a destination channel have no agent (see agent_of); earlier
    # versions stored their `dst` (`s`, a queue or a voicemail box) as the agent.
    """
    UPDATE cdr SET agent = '' WHERE dstchannel = '' OR instr(dstchannel, '/') = 0;
    """,
)

CDR_COLUMNS = (
    "cdr_key, uniqueid, linkedid, src, src_key, dst, agent, dcontext, clid, channel, "
    'dstchannel, lastapp, lastdata, start, answer, "end", duration, billsec, disposition, '
    "amaflags, accountcode, userfield"
)
_CDR_INSERT = (
    f"INSERT INTO cdr ({CDR_COLUMNS}) VALUES "  # noqa: S608 (constant column list)
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (cdr_key) DO NOTHING"
)


def cdr_params(rec: CdrRecord) -> tuple[object, ...]:
    """The INSERT parameters of one record, in `CDR_COLUMNS` order (also used by bench/)."""
    return (
        _cdr_key(rec),
        rec.uniqueid,
        rec.linkedid,
        rec.src,
        rec.src_key,
        rec.dst,
        rec.agent,
        rec.dcontext,
        rec.clid,
        rec.channel,
        rec.dstchannel,
        rec.lastapp,
        rec.lastdata,
        _cdr_text(rec.start),
        _cdr_text(rec.answer) if rec.answer is not None else None,
        _cdr_text(rec.end),
        rec.duration,
        rec.billsec,
        rec.disposition,
        rec.amaflags,
        rec.accountcode,
        rec.userfield,
    )


def _check_cdr(rec: CdrRecord) -> None:
    for name in ("uniqueid", "linkedid", "src", "dst", "dcontext", "clid", "channel"):
        _text(name, getattr(rec, name))
    for name in ("dstchannel", "lastapp", "lastdata", "disposition", "amaflags"):
        _text(name, getattr(rec, name))
    _text("accountcode", rec.accountcode)
    _text("userfield", rec.userfield)
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


# --------------------------------------------------------------------------- the store


class _Opening:
    """What `Store.open` returns: await it, or use it directly in `async with`."""

    def __init__(self, path: Path, kwargs: dict[str, Any]) -> None:
        self._path = path
        self._kwargs = kwargs
        self._store: Store | None = None

    def __await__(self) -> Generator[Any, None, Store]:
        return Store._open(self._path, **self._kwargs).__await__()

    async def __aenter__(self) -> Store:
        self._store = await Store._open(self._path, **self._kwargs)
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


class Store:
    """SQLite store. Open with `await Store.open(path)` or `async with Store.open(path)`."""

    def __init__(
        self, db: aiosqlite.Connection, path: Path, region: str, match_digits: int, min_digits: int
    ) -> None:
        self._db = db
        self.path = path
        self.region = region
        self.match_digits = match_digits
        self.min_digits = min_digits
        # One aiosqlite connection is one SQLite connection: a transaction must not
        # interleave with another coroutine's statements.
        self._lock = asyncio.Lock()
        # Read-only connection for the returning-caller lookup, used in the loop's thread:
        # see `last_agent_for`.
        self._fast: sqlite3.Connection | None = None
        self._fast_deadline = 0.0

    @staticmethod
    def open(
        path: Path | str,
        *,
        region: str = "ES",
        match_digits: int = 10,
        min_digits: int = 6,
    ) -> _Opening:
        """Open (creating or migrating) the database at `path`.

        `region`, `match_digits` and `min_digits` are the `phone.normalize` settings used for
        call-record and contact keys (config `[manager]`).
        """
        kwargs = {"region": region, "match_digits": match_digits, "min_digits": min_digits}
        return _Opening(Path(path), kwargs)

    @classmethod
    async def _open(cls, path: Path, *, region: str, match_digits: int, min_digits: int) -> Store:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        protect(path)
        # isolation_level=None: no implicit transactions; `_tx` issues BEGIN IMMEDIATE.
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute("PRAGMA busy_timeout = 5000")  # the CLI and the server share it
            await db.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed callback survives a power cut, not only a crash.
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            store = cls(db, path, region, match_digits, min_digits)
            await store._migrate()
            store._open_fast()
        except BaseException:
            await db.close()
            raise
        return store

    def _open_fast(self) -> None:
        # After the migration, so the WAL files exist for a read-only opener. busy_timeout 0:
        # the event loop never waits on a lock; a busy database falls back to aiosqlite.
        fast = sqlite3.connect(
            self.path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None
        )
        fast.execute("PRAGMA busy_timeout = 0")
        # Bound the time spent in the loop's thread: a lookup past the deadline is
        # interrupted (OperationalError) and retried on aiosqlite's thread.
        fast.set_progress_handler(self._past_deadline, 1000)
        self._fast = fast

    def _past_deadline(self) -> int:
        return 1 if time.perf_counter() > self._fast_deadline else 0

    async def close(self) -> None:
        """Close the connections (idempotent)."""
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException:
                # Also on cancellation: a BEGIN already queued to aiosqlite's thread runs
                # anyway, and would leave the connection inside a transaction. The thread
                # runs calls in order, so this ROLLBACK comes after it.
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass  # no transaction open: BEGIN failed, or COMMIT went through

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            yield self._db

    async def _migrate(self) -> None:
        async with self._tx() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            async with db.execute("SELECT version FROM schema_version") as cur:
                row = await cur.fetchone()
            version = int(row[0]) if row else 0
            if row is None:
                await db.execute("INSERT INTO schema_version (version) VALUES (0)")
            if version > len(_MIGRATIONS):
                raise RuntimeError(
                    f"{self.path}: database schema version {version} is newer than this "
                    f"Centralita knows ({len(_MIGRATIONS)}); upgrade Centralita"
                )
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    await db.execute(statement)
                await db.execute("UPDATE schema_version SET version = ?", (number,))

    async def schema_version(self) -> int:
        """The schema version of the open database."""
        async with self._read() as db, db.execute("SELECT version FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    def key(self, number: str) -> str | None:
        """The matching key of `number` with this store's settings."""
        return phone.normalize(number, self.region, self.match_digits, self.min_digits)

    # ----------------------------------------------------------------- callbacks

    async def add_callback(
        self,
        *,
        callerid: str,
        language: str,
        queue: str,
        number: str,
        alternative: str,
        uniqueid: str,
        status: str = "pending",
    ) -> CallbackRequest:
        """Record a callback request left by a caller."""
        values = {
            "callerid": _text("callerid", callerid),
            "language": _text("language", language),
            "queue": _text("queue", queue),
            "number": _text("number", number, empty=False),
            "alternative": _text("alternative", alternative),
            "uniqueid": _text("uniqueid", uniqueid),
        }
        _status(status)
        now = _now_iso()
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO callbacks (created_at, updated_at, callerid, language, queue, "
                "number, alternative, uniqueid, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, now, *values.values(), status),
            )
            new_id = cur.lastrowid
        assert new_id is not None
        return CallbackRequest(id=new_id, created_at=now, updated_at=now, status=status, **values)

    async def list_callbacks(self, status: str | None = None) -> list[CallbackRequest]:
        """Callback requests, oldest first; only those in `status` when given."""
        sql = (
            "SELECT id, created_at, updated_at, callerid, language, queue, number, "
            "alternative, uniqueid, status FROM callbacks"
        )
        params: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (_status(status),)
        async with self._read() as db, db.execute(sql + " ORDER BY id", params) as cur:
            rows = await cur.fetchall()
        return [CallbackRequest(*row) for row in rows]

    async def get_callback(self, callback_id: int) -> CallbackRequest | None:
        """One callback request by id."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT id, created_at, updated_at, callerid, language, queue, number, "
                "alternative, uniqueid, status FROM callbacks WHERE id = ?",
                (callback_id,),
            ) as cur,
        ):
            row = await cur.fetchone()
        return CallbackRequest(*row) if row else None

    async def set_callback_status(self, callback_id: int, status: str) -> bool:
        """Set a callback's status; False when there is no such callback."""
        _status(status)
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE callbacks SET status = ?, updated_at = ? WHERE id = ?",
                (status, _now_iso(), callback_id),
            )
            return cur.rowcount > 0

    # ----------------------------------------------------------------- ratings

    async def add_rating(
        self, *, callerid: str, agent: str, queue: str, rating: int, call_id: str
    ) -> Rating:
        """Record a survey rating (0-10)."""
        if not isinstance(rating, int) or isinstance(rating, bool) or not 0 <= rating <= 10:
            raise ValueError(f"rating must be an integer from 0 to 10, not {rating!r}")
        values = {
            "callerid": _text("callerid", callerid),
            "agent": _text("agent", agent),
            "queue": _text("queue", queue),
        }
        _text("call_id", call_id)
        now = _now_iso()
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO ratings (created_at, callerid, agent, queue, rating, call_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now, *values.values(), rating, call_id),
            )
            new_id = cur.lastrowid
        assert new_id is not None
        return Rating(id=new_id, created_at=now, rating=rating, call_id=call_id, **values)

    async def list_ratings(self, *, below: int | None = None) -> list[Rating]:
        """Ratings, oldest first; only those under `below` (the complaints) when given."""
        sql = "SELECT id, created_at, callerid, agent, queue, rating, call_id FROM ratings"
        params: tuple[int, ...] = ()
        if below is not None:
            sql += " WHERE rating < ?"
            params = (int(below),)
        async with self._read() as db, db.execute(sql + " ORDER BY id", params) as cur:
            rows = await cur.fetchall()
        return [Rating(*row) for row in rows]

    # ----------------------------------------------------------------- call records

    def _keyed(self, rec: CdrRecord) -> CdrRecord:
        return rec if rec.src_key is not None else rec.with_key(*self._phone_settings())

    def _phone_settings(self) -> tuple[str, int, int]:
        return self.region, self.match_digits, self.min_digits

    async def upsert_cdr(self, rec: CdrRecord) -> bool:
        """Store a call record; True if new, False if it was already there (then updated in
        place: a repeated `Cdr` event or a re-imported row never makes a second record)."""
        _check_cdr(rec)
        rec = self._keyed(rec)
        params = cdr_params(rec)
        async with self._tx() as db:
            cur = await db.execute(_CDR_INSERT, params)
            if cur.rowcount > 0:
                return True
            # Already present: refresh the mutable fields, but keep a known linkedid when
            # this copy lacks it (the AMI Cdr event has none, Master.csv may).
            await db.execute(
                "UPDATE cdr SET linkedid = CASE WHEN ? != '' THEN ? ELSE linkedid END, "
                "src = ?, src_key = ?, dst = ?, agent = ?, dcontext = ?, clid = ?, "
                'lastdata = ?, answer = ?, "end" = ?, duration = ?, billsec = ?, '
                "disposition = ?, amaflags = ?, accountcode = ?, userfield = ? "
                "WHERE cdr_key = ?",
                # src..clid, lastdata, answer..userfield, then the key (cdr_params order).
                (rec.linkedid, rec.linkedid, *params[3:9], params[12], *params[14:], params[0]),
            )
            return False

    async def get_cdrs(self, uniqueid: str) -> list[CdrRecord]:
        """All records of one channel (several when it dialled more than once), by start."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT uniqueid, linkedid, src, dst, dcontext, clid, channel, dstchannel, "
                'lastapp, start, answer, "end", duration, billsec, disposition, accountcode, '
                "userfield, lastdata, amaflags, src_key FROM cdr WHERE uniqueid = ? "
                "ORDER BY start, id",
                (uniqueid,),
            ) as cur,
        ):
            rows = await cur.fetchall()
        out = []
        for r in rows:
            start, answer, end = _cdr_time(r[9]), _cdr_time(r[10]), _cdr_time(r[11])
            assert start is not None and end is not None
            out.append(
                CdrRecord(
                    uniqueid=r[0],
                    linkedid=r[1],
                    src=r[2],
                    dst=r[3],
                    dcontext=r[4],
                    clid=r[5],
                    channel=r[6],
                    dstchannel=r[7],
                    lastapp=r[8],
                    start=start,
                    answer=answer,
                    end=end,
                    duration=r[12],
                    billsec=r[13],
                    disposition=r[14],
                    accountcode=r[15],
                    userfield=r[16],
                    lastdata=r[17],
                    amaflags=r[18],
                    src_key=r[19],
                )
            )
        return out

    async def count_cdrs(self) -> int:
        """How many call records are stored."""
        async with self._read() as db, db.execute("SELECT count(*) FROM cdr") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def last_agent_for(
        self,
        src_key: str,
        *,
        since: datetime,
        dispositions: Sequence[str],
        agents: Collection[str],
    ) -> str | None:
        """The agent of the caller's most recent call since `since` whose disposition is in
        `dispositions` and whose agent is in `agents`; None if there is none.

        One range scan of the covering index (src_key, start, disposition, agent), newest
        first, stopping at the first row that passes the filters.
        """
        if not src_key or not dispositions or not agents:
            return None
        agent_list = list(agents)
        disp_list = list(dispositions)
        sql = (
            "SELECT agent FROM cdr WHERE src_key = ? AND start >= ? "  # noqa: S608 (only ?s)
            f"AND disposition IN ({','.join('?' * len(disp_list))}) "
            f"AND agent IN ({','.join('?' * len(agent_list))}) "
            "ORDER BY start DESC LIMIT 1"
        )
        params = (src_key, _cdr_text(since), *disp_list, *agent_list)
        # The query is one covering-index probe, ~10-30 us. A trip to aiosqlite's thread
        # costs more, and on a loaded 2-core machine its tail reaches ~2 ms (bench/
        # lookup_bench.py prints both), so it runs here, bounded to FAST_LOOKUP_S.
        if self._fast is not None:
            self._fast_deadline = time.perf_counter() + FAST_LOOKUP_S
            try:
                row = self._fast.execute(sql, params).fetchone()
            except sqlite3.OperationalError:
                pass  # busy or past the deadline: ask the worker thread instead
            else:
                return str(row[0]) if row else None
        async with self._read() as db:
            rows = list(await db.execute_fetchall(sql, params))
        return str(rows[0][0]) if rows else None

    async def import_master_csv(
        self, path: Path | str, *, region: str, match_digits: int, min_digits: int = 6
    ) -> ImportResult:
        """Import an Asterisk cdr-csv Master.csv; returns what was imported and skipped.

        Skipped rows are counted apart: duplicates (already stored, so a re-import is
        idempotent) and unreadable rows (which an admin may want to look at).
        """
        imported = duplicates = unreadable = 0
        # Asterisk writes bytes as they came; a stray Latin-1 caller name must not stop
        # the import, so undecodable bytes become U+FFFD.
        handle = await asyncio.to_thread(open, path, encoding="utf-8", errors="replace", newline="")
        with handle:
            reader = csv.reader(handle)
            while True:
                chunk, at_end = await asyncio.to_thread(_read_chunk, reader, 5000)
                batch = []
                for row in chunk:
                    if row is None:
                        unreadable += 1
                        continue
                    try:
                        rec = cdr_from_csv_row(
                            row, region=region, match_digits=match_digits, min_digits=min_digits
                        )
                        _check_cdr(rec)
                    except ValueError:
                        unreadable += 1
                        continue
                    batch.append(cdr_params(rec))
                async with self._tx() as db:
                    before = db.total_changes
                    await db.executemany(_CDR_INSERT, batch)
                    added = db.total_changes - before
                imported += added
                duplicates += len(batch) - added  # ON CONFLICT (cdr_key) DO NOTHING
                if at_end:
                    break
        return ImportResult(imported, duplicates, unreadable)

    # ----------------------------------------------------------------- contacts

    async def create_contact(
        self,
        *,
        name: str,
        company: str = "",
        numbers: Iterable[str] = (),
        notes: str = "",
        external_id: str = "",
        url: str = "",
    ) -> Contact:
        """Create a contact with its phone numbers."""
        _text("name", name, empty=False)
        _text("company", company)
        _text("notes", notes, limit=MAX_NOTES)
        _text("external_id", external_id)
        _text("url", url)
        keyed = [self._number_key(n) for n in numbers]
        now = _now_iso()
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO contacts (name, name_fold, company, notes, external_id, url, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, name.casefold(), company, notes, external_id, url, now, now),
            )
            contact_id = cur.lastrowid
            assert contact_id is not None
            await db.executemany(
                "INSERT OR IGNORE INTO contact_numbers (contact_id, number, key) VALUES (?, ?, ?)",
                [(contact_id, number, key) for number, key in keyed],
            )
            contact = await self._contact(db, contact_id)
        assert contact is not None
        return contact

    def _number_key(self, number: str) -> tuple[str, str]:
        _text("number", number, limit=100)
        key = self.key(number)
        if key is None:
            raise ValueError(f"{number!r} is not a phone number that can be matched")
        return number.strip(), key

    async def update_contact(self, contact_id: int, **fields: Any) -> Contact | None:
        """Change a contact's name, company, notes, external_id, url (or, with `numbers`,
        replace its numbers); None when there is no such contact."""
        unknown = set(fields) - {*CONTACT_FIELDS, "numbers"}
        if unknown:
            raise ValueError(f"unknown contact field(s): {', '.join(sorted(unknown))}")
        numbers = fields.pop("numbers", None)
        for name, value in fields.items():
            limit = MAX_NOTES if name == "notes" else MAX_TEXT
            _text(name, value, limit=limit, empty=name != "name")
        keyed = [self._number_key(n) for n in numbers] if numbers is not None else None
        async with self._tx() as db:
            if await self._contact(db, contact_id) is None:
                return None
            if "name" in fields:
                fields["name_fold"] = fields["name"].casefold()
            fields["updated_at"] = _now_iso()
            # Column names come from the CONTACT_FIELDS allow-list above, never from input.
            assignments = ", ".join(f"{name} = ?" for name in fields)
            await db.execute(
                f"UPDATE contacts SET {assignments} WHERE id = ?",  # noqa: S608
                (*fields.values(), contact_id),
            )
            if keyed is not None:
                await db.execute("DELETE FROM contact_numbers WHERE contact_id = ?", (contact_id,))
                await db.executemany(
                    "INSERT OR IGNORE INTO contact_numbers (contact_id, number, key) "
                    "VALUES (?, ?, ?)",
                    [(contact_id, number, key) for number, key in keyed],
                )
            return await self._contact(db, contact_id)

    async def add_contact_number(self, contact_id: int, number: str) -> Contact | None:
        """Link one more number to a contact; None when there is no such contact."""
        number, key = self._number_key(number)
        async with self._tx() as db:
            if await self._contact(db, contact_id) is None:
                return None
            await db.execute(
                "INSERT OR IGNORE INTO contact_numbers (contact_id, number, key) VALUES (?, ?, ?)",
                (contact_id, number, key),
            )
            await db.execute(
                "UPDATE contacts SET updated_at = ? WHERE id = ?", (_now_iso(), contact_id)
            )
            return await self._contact(db, contact_id)

    async def get_contact(self, contact_id: int) -> Contact | None:
        """One contact by id."""
        async with self._read() as db:
            return await self._contact(db, contact_id)

    async def contacts_for_number(self, number: str) -> list[Contact]:
        """Every contact with this number (by normalised key), by name."""
        key = self.key(number)
        if key is None:
            return []
        async with self._read() as db:
            async with db.execute(
                "SELECT DISTINCT c.id FROM contact_numbers n "
                "JOIN contacts c ON c.id = n.contact_id "
                "WHERE n.key = ? ORDER BY c.name_fold, c.id",
                (key,),
            ) as cur:
                ids = [int(r[0]) for r in await cur.fetchall()]
            return [c for i in ids if (c := await self._contact(db, i)) is not None]

    async def search_contacts(self, name_query: str, limit: int = 20) -> list[Contact]:
        """Contacts whose name contains `name_query` (case-insensitive), by name."""
        _text("name_query", name_query, limit=200)
        limit = max(1, min(int(limit), 500))
        needle = name_query.strip().casefold()
        async with self._read() as db:
            async with db.execute(
                "SELECT id FROM contacts WHERE instr(name_fold, ?) > 0 "
                "ORDER BY name_fold, id LIMIT ?",
                (needle, limit),
            ) as cur:
                ids = [int(r[0]) for r in await cur.fetchall()]
            return [c for i in ids if (c := await self._contact(db, i)) is not None]

    @staticmethod
    async def _contact(db: aiosqlite.Connection, contact_id: int) -> Contact | None:
        async with db.execute(
            "SELECT id, name, company, notes, external_id, url, created_at, updated_at "
            "FROM contacts WHERE id = ?",
            (contact_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        async with db.execute(
            "SELECT number FROM contact_numbers WHERE contact_id = ? ORDER BY rowid",
            (contact_id,),
        ) as cur:
            numbers = tuple(str(r[0]) for r in await cur.fetchall())
        return Contact(
            id=row[0],
            name=row[1],
            company=row[2],
            numbers=numbers,
            notes=row[3],
            external_id=row[4],
            url=row[5],
            created_at=row[6],
            updated_at=row[7],
        )

    # ----------------------------------------------------------------- outcomes

    async def save_outcome(
        self,
        *,
        call_id: str,
        agent: str,
        outcome: str,
        notes: str = "",
        follow_up: date | None = None,
        contact_id: int | None = None,
    ) -> Outcome:
        """Save an agent's outcome for a call; saving again for the same call and agent
        replaces it."""
        _text("call_id", call_id, empty=False)
        _text("agent", agent, empty=False)
        _text("outcome", outcome, empty=False)
        _text("notes", notes, limit=MAX_NOTES)
        if follow_up is not None and (
            not isinstance(follow_up, date) or isinstance(follow_up, datetime)
        ):
            raise ValueError("follow_up must be a date")
        now = _now_iso()
        async with self._tx() as db:
            if contact_id is not None and await self._contact(db, contact_id) is None:
                raise ValueError(f"there is no contact {contact_id}")
            await db.execute(
                "INSERT INTO outcomes (call_id, agent, outcome, notes, follow_up, contact_id, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (call_id, agent) DO UPDATE SET outcome = excluded.outcome, "
                "notes = excluded.notes, follow_up = excluded.follow_up, "
                "contact_id = excluded.contact_id, updated_at = excluded.updated_at",
                (
                    call_id,
                    agent,
                    outcome,
                    notes,
                    follow_up.isoformat() if follow_up else None,
                    contact_id,
                    now,
                    now,
                ),
            )
            async with db.execute(
                "SELECT id, call_id, agent, outcome, notes, follow_up, contact_id, created_at, "
                "updated_at FROM outcomes WHERE call_id = ? AND agent = ?",
                (call_id, agent),
            ) as cur:
                row = await cur.fetchone()
        assert row is not None
        return _outcome(row)

    async def took_part(self, call_id: str, agent: str) -> bool:
        """True when a call record (by Uniqueid or Linkedid) names `agent` as its agent or
        destination: the proof, once the call has ended, that the agent was on it."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT 1 FROM cdr WHERE (uniqueid = ? OR (linkedid = ? AND linkedid != '')) "
                "AND (agent = ? OR dst = ?) LIMIT 1",
                (call_id, call_id, agent, agent),
            ) as cur,
        ):
            return await cur.fetchone() is not None

    async def get_outcomes(self, call_id: str) -> list[Outcome]:
        """Every agent's outcome for one call."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT id, call_id, agent, outcome, notes, follow_up, contact_id, created_at, "
                "updated_at FROM outcomes WHERE call_id = ? ORDER BY id",
                (call_id,),
            ) as cur,
        ):
            return [_outcome(r) for r in await cur.fetchall()]

    # ----------------------------------------------------------------- calls listing

    async def list_calls(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        agent: str | None = None,
        customer: str | None = None,
        viewer: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[CallRow], int]:
        """Call records newest first, with outcomes and contact names, and the total count.

        `start`/`end` are inclusive days; `agent` matches the record's agent or dst;
        `customer` matches a substring of the caller number or of the name of a contact
        with that number. With `viewer` (an agent who is not a supervisor), only that
        agent's own outcome and notes are shown: another agent's notes stay private.
        """
        where: list[str] = []
        params: list[object] = []
        if start is not None:
            where.append("c.start >= ?")
            params.append(start.strftime("%Y-%m-%d 00:00:00"))
        if end is not None:
            where.append("c.start < ?")
            params.append((end + timedelta(days=1)).strftime("%Y-%m-%d 00:00:00"))
        if agent:
            _text("agent", agent, limit=200)
            where.append(
                # A set of row ids built from two indexes, not a per-row test: the count
                # stays fast on a million records. Only the record itself says who took
                # part: an outcome is the agent's claim, not proof (issue 10, finding 1).
                "c.id IN (SELECT id FROM cdr WHERE agent = ? "
                "UNION SELECT id FROM cdr WHERE dst = ?)"
            )
            params += [agent, agent]
        if customer:
            _text("customer", customer, limit=200)
            needle = customer.strip()
            where.append(
                "c.id IN (SELECT id FROM cdr WHERE instr(src, ?) > 0 "
                "UNION SELECT c2.id FROM contacts k "
                "JOIN contact_numbers n ON n.contact_id = k.id "
                "JOIN cdr c2 ON c2.src_key = n.key WHERE instr(k.name_fold, ?) > 0)"
            )
            params += [needle, needle.casefold()]
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        offset = max(0, int(offset))
        limit = max(1, min(int(limit), 1000))
        # The outcome shown is the one of this record's agent if there is one, else the
        # latest; the outcome's chosen contact wins over a contact found by number.
        if viewer is not None:
            _text("viewer", viewer, limit=200, empty=False)
            pick = (
                "SELECT o3.id FROM outcomes o3 WHERE o3.call_id IN (c.linkedid, c.uniqueid) "
                "AND o3.agent = ? ORDER BY o3.updated_at DESC, o3.id DESC LIMIT 1"
            )
        else:
            pick = (
                # (SQLite cannot name an outer column in a subquery's ORDER BY, hence two.)
                "COALESCE((SELECT o3.id FROM outcomes o3 "
                "  WHERE o3.call_id IN (c.linkedid, c.uniqueid) AND o3.agent = c.agent), "
                " (SELECT o4.id FROM outcomes o4 WHERE o4.call_id IN (c.linkedid, c.uniqueid) "
                "  ORDER BY o4.updated_at DESC, o4.id DESC LIMIT 1))"
            )
        sql = (
            # `clause` and `pick` join the fixed fragments above; every value is a parameter.
            "SELECT c.uniqueid, c.linkedid, c.start, c.src, c.dst, c.agent, "  # noqa: S608
            "c.disposition, "
            "c.duration, c.billsec, "
            "COALESCE((SELECT k.name FROM contacts k WHERE k.id = o.contact_id), "
            " (SELECT k.name FROM contact_numbers n JOIN contacts k ON k.id = n.contact_id "
            "  WHERE n.key = c.src_key ORDER BY k.name_fold, k.id LIMIT 1)), "
            "o.outcome, o.agent, o.notes, o.follow_up "
            f"FROM cdr c LEFT JOIN outcomes o ON o.id = ({pick})"
            f"{clause} ORDER BY c.start DESC, c.id DESC LIMIT ? OFFSET ?"
        )
        select_params = ([viewer] if viewer is not None else []) + params
        async with self._read() as db:
            count_sql = f"SELECT count(*) FROM cdr c{clause}"  # noqa: S608 (as above)
            async with db.execute(count_sql, params) as cur:
                total_row = await cur.fetchone()
            async with db.execute(sql, (*select_params, limit, offset)) as cur:
                rows = await cur.fetchall()
        calls = []
        for r in rows:
            started = _cdr_time(r[2])
            assert started is not None
            calls.append(
                CallRow(
                    uniqueid=r[0],
                    linkedid=r[1],
                    start=started,
                    src=r[3],
                    dst=r[4],
                    agent=r[5],
                    disposition=r[6],
                    duration=r[7],
                    billsec=r[8],
                    contact_name=r[9],
                    outcome=r[10],
                    outcome_agent=r[11],
                    notes=r[12],
                    follow_up=date.fromisoformat(r[13]) if r[13] else None,
                )
            )
        return calls, int(total_row[0]) if total_row else 0

    # ----------------------------------------------------------------- passwords

    async def set_agent_password(self, extension: str, password: str) -> None:
        """Store a console password for `extension` as a salted scrypt hash; the agent's
        open sessions end (their session version moves on)."""
        _text("extension", extension, limit=80, empty=False)
        _text("password", password, limit=1024, empty=False)
        encoded = await asyncio.to_thread(_hash_password, password)
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO agent_passwords (extension, hash, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (extension) DO UPDATE SET hash = excluded.hash, "
                "updated_at = excluded.updated_at",
                (extension, encoded, _now_iso()),
            )
            await self._bump_session_version(db, extension)

    @staticmethod
    async def _bump_session_version(db: aiosqlite.Connection, extension: str) -> None:
        await db.execute(
            "INSERT INTO session_versions (extension, version) VALUES (?, 1) "
            "ON CONFLICT (extension) DO UPDATE SET version = version + 1",
            (extension,),
        )

    async def end_agent_sessions(self, extension: str) -> int:
        """End every console session of `extension` (agent removed); the new version."""
        _text("extension", extension, limit=80, empty=False)
        async with self._tx() as db:
            await self._bump_session_version(db, extension)
        return await self.session_version(extension)

    async def session_version(self, extension: str) -> int:
        """The session version of `extension`: a cookie issued under another is void."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT version FROM session_versions WHERE extension = ?", (extension,)
            ) as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def session_valid(self, extension: str, sid: str, version: int) -> bool:
        """False when the session was logged out or its agent's version moved on."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT (SELECT version FROM session_versions WHERE extension = ?), "
                "EXISTS (SELECT 1 FROM revoked_sessions WHERE sid = ?)",
                (extension, sid),
            ) as cur,
        ):
            row = await cur.fetchone()
        assert row is not None
        return int(row[0] or 0) == version and not row[1]

    async def ended_sessions(self, sessions: Iterable[tuple[str, str, int]]) -> set[str]:
        """The ids among (extension, sid, version) whose session ended (see
        `session_valid`), in two queries for all of them."""
        async with self._read() as db:
            async with db.execute("SELECT extension, version FROM session_versions") as cur:
                versions = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
            async with db.execute(
                "SELECT sid FROM revoked_sessions WHERE expires_at >= ?", (time.time(),)
            ) as cur:
                revoked = {str(r[0]) for r in await cur.fetchall()}
        return {
            sid
            for extension, sid, version in sessions
            if sid in revoked or versions.get(extension, 0) != version
        }

    async def revoke_session(self, sid: str, expires_at: float) -> None:
        """Log one session out for good (kept until its cookie would expire anyway)."""
        _text("sid", sid, limit=200, empty=False)
        async with self._tx() as db:
            await db.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (time.time(),))
            await db.execute(
                "INSERT OR REPLACE INTO revoked_sessions (sid, expires_at) VALUES (?, ?)",
                (sid, float(expires_at)),
            )

    async def verify_agent_password(self, extension: str, password: str) -> bool:
        """True when `password` is the console password of `extension`."""
        if not isinstance(extension, str) or not isinstance(password, str):
            return False
        async with (
            self._read() as db,
            db.execute("SELECT hash FROM agent_passwords WHERE extension = ?", (extension,)) as cur,
        ):
            row = await cur.fetchone()
        if row is None or len(password) > 1024:
            # Hash anyway: an unknown extension takes as long as a wrong password, so the
            # login form does not tell which extensions exist.
            await asyncio.to_thread(_hash_password, password[:1024])
            return False
        return await asyncio.to_thread(_check_password, password, str(row[0]))

    async def remove_agent_password(self, extension: str) -> bool:
        """Forget an extension's console password and end its sessions; False when it had
        no password."""
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM agent_passwords WHERE extension = ?", (extension,))
            await self._bump_session_version(db, extension)
            return cur.rowcount > 0

    # ----------------------------------------------------------------- webhook outbox

    async def enqueue_event(
        self, url: str, payload: dict[str, Any], *, now: datetime | None = None
    ) -> int:
        """Queue a webhook delivery (due at once); returns its id."""
        _text("url", url, empty=False)
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {url!r} must start with http:// or https://")
        try:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"webhook payload is not JSON: {exc}") from None
        moment = now or datetime.now(UTC)
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO outbox (url, payload, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?)",
                (url, body, _now_iso(), _utc_text(moment)),
            )
            new_id = cur.lastrowid
        assert new_id is not None
        return new_id

    async def due_events(self, now: datetime, limit: int = 100) -> list[OutboxEvent]:
        """Unsent events whose next attempt is due at `now`, oldest first."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT id, url, payload, created_at, next_attempt_at, attempts, last_error "
                "FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, id LIMIT ?",
                (_utc_text(now), max(1, int(limit))),
            ) as cur,
        ):
            rows = await cur.fetchall()
        return [_outbox_event(r) for r in rows]

    async def claim_due(
        self, now: datetime, *, lease_s: float, limit: int = 100
    ) -> list[OutboxEvent]:
        """Take the due, unclaimed events (oldest first) for `lease_s` seconds.

        Claimed in one transaction before anything is sent, so a second sender (another
        process) does not post them too. A sender killed mid-send leaves its claim to
        expire, and the event is sent again then: delivered once, or retried, never lost
        (issue 10, finding 10).
        """
        moment = _utc_text(now)
        async with self._tx() as db:
            async with db.execute(
                "SELECT id, url, payload, created_at, next_attempt_at, attempts, last_error "
                "FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= ? "
                "AND (claimed_until IS NULL OR claimed_until <= ?) "
                "ORDER BY next_attempt_at, id LIMIT ?",
                (moment, moment, max(1, int(limit))),
            ) as cur:
                rows = await cur.fetchall()
            until = _utc_text(now + timedelta(seconds=lease_s))
            await db.executemany(
                "UPDATE outbox SET claimed_until = ? WHERE id = ?", [(until, r[0]) for r in rows]
            )
        return [_outbox_event(r) for r in rows]

    async def mark_sent(self, event_id: int) -> bool:
        """Mark an event delivered; False when unknown or already sent."""
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, claimed_until = NULL "
                "WHERE id = ? AND sent_at IS NULL",
                (_utc_text(datetime.now(UTC)), event_id),
            )
            return cur.rowcount > 0

    async def mark_failed(self, event_id: int, next_attempt_at: datetime, error: str) -> bool:
        """Record a failed delivery and when to retry; False when unknown or already sent."""
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
                "claimed_until = NULL WHERE id = ? AND sent_at IS NULL",
                (_utc_text(next_attempt_at), str(error)[:1000], event_id),
            )
            return cur.rowcount > 0

    async def outbox_backlog(self) -> int:
        """How many events are waiting to be delivered."""
        async with (
            self._read() as db,
            db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL") as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else 0


# --------------------------------------------------------------------------- private


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no `;` inside our literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _read_chunk(reader: Iterator[list[str]], size: int) -> tuple[list[list[str] | None], bool]:
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


def _outcome(row: Sequence[Any]) -> Outcome:
    return Outcome(
        id=row[0],
        call_id=row[1],
        agent=row[2],
        outcome=row[3],
        notes=row[4],
        follow_up=date.fromisoformat(row[5]) if row[5] else None,
        contact_id=row[6],
        created_at=row[7],
        updated_at=row[8],
    )


def _hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=32,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def _check_password(password: str, encoded: str) -> bool:
    try:
        scheme, n_text, r_text, p_text, salt_hex, digest_hex = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    if scheme != "scrypt" or not 1 < n <= _SCRYPT_MAX_N or not 0 < r <= 32 or not 0 < p <= 16:
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=len(expected),
        maxmem=256 * r * n + 2**20,
    )
    return hmac.compare_digest(digest, expected)


def _outbox_event(r: Any) -> OutboxEvent:
    """An outbox row (id, url, payload, created_at, next_attempt_at, attempts, last_error)."""
    return OutboxEvent(
        id=r[0],
        url=r[1],
        payload=json.loads(r[2]),
        created_at=r[3],
        next_attempt_at=datetime.fromisoformat(r[4]),
        attempts=r[5],
        last_error=r[6],
    )
