"""The database file: where it lives, its permissions, and the schema migrations."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from centralita.store.base import Connection
from centralita.store.errors import StoreSchemaError

DB_FILENAME = "centralita.sqlite3"


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
    # version 4: the audit log of /admin (centralita.store.audit).
    """
    CREATE TABLE IF NOT EXISTS audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        changes TEXT NOT NULL
    );
    """,
    # version 5: each agent's console preferences (centralita/agentprefs.py).
    """
    CREATE TABLE IF NOT EXISTS agent_preferences (
        extension TEXT PRIMARY KEY,
        preferences TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # version 6 (h12-rep): the queue events kept from AMI for reports
    # (centralita/store/queue_events.py), and the indexes a month report reads through.
    """
    CREATE TABLE IF NOT EXISTS queue_calls (
        id INTEGER PRIMARY KEY,
        uniqueid TEXT NOT NULL,
        queue TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        answered_at TEXT,
        ended_at TEXT,
        wait_s INTEGER,
        talk_s INTEGER,
        agent TEXT NOT NULL,
        outcome TEXT NOT NULL,
        service_level_s INTEGER NOT NULL,
        UNIQUE (uniqueid, queue)
    );
    -- Reports scan a period: the range on joined_at and every column they add up ride in
    -- the index, so a month is read without touching the table (covering index).
    CREATE INDEX IF NOT EXISTS queue_calls_period
        ON queue_calls (joined_at, queue, agent, outcome, wait_s, talk_s, service_level_s);
    CREATE TABLE IF NOT EXISTS pause_intervals (
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        reason TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        UNIQUE (agent, started_at)
    );
    CREATE INDEX IF NOT EXISTS pause_intervals_open ON pause_intervals (agent)
        WHERE ended_at IS NULL;
    CREATE INDEX IF NOT EXISTS pause_intervals_period ON pause_intervals (started_at);
    CREATE INDEX IF NOT EXISTS ratings_period ON ratings (created_at, queue, agent, rating);
    CREATE INDEX IF NOT EXISTS callbacks_period ON callbacks (created_at, queue, status);
    """,
    # version 7 (h12-cb): callbacks as work (centralita/store/callbacks.py): assigned to an
    # agent, closed by someone with a note, and each call-back attempt with its result.
    # Requests closed before keep their status; their last change is when they were closed.
    """
    ALTER TABLE callbacks ADD COLUMN assigned_to TEXT NOT NULL DEFAULT '';
    ALTER TABLE callbacks ADD COLUMN assigned_at TEXT;
    ALTER TABLE callbacks ADD COLUMN closed_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE callbacks ADD COLUMN closed_at TEXT;
    ALTER TABLE callbacks ADD COLUMN note TEXT NOT NULL DEFAULT '';
    UPDATE callbacks SET closed_at = updated_at WHERE status <> 'pending';
    CREATE INDEX IF NOT EXISTS callbacks_assigned ON callbacks (assigned_to, status, id);
    CREATE TABLE IF NOT EXISTS callback_attempts (
        id INTEGER PRIMARY KEY,
        callback_id INTEGER NOT NULL REFERENCES callbacks (id),
        agent TEXT NOT NULL,
        number TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        call_id TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL DEFAULT 'calling',
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS callback_attempts_callback ON callback_attempts (callback_id, id);
    """,
    # version 8 (h12-rep): the reports' running totals (centralita/store/report_tables.py),
    # and the pauses with their duration (agent_pauses replaces pause_intervals). Totals and
    # durations of rows written under version 6 are filled in when the store opens
    # (QueueEventsMixin.backfill_reports).
    """
    CREATE TABLE IF NOT EXISTS agent_pauses (
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        reason TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        duration_s INTEGER,
        UNIQUE (agent, started_at)
    );
    -- pause_intervals (version 6) had no duration: its rows move here (the WHERE lets
    -- SQLite read ON CONFLICT as the upsert's, not a join's).
    INSERT INTO agent_pauses (agent, reason, started_at, ended_at)
        SELECT agent, reason, started_at, ended_at FROM pause_intervals WHERE 1 = 1
        ON CONFLICT (agent, started_at) DO NOTHING;
    DROP TABLE IF EXISTS pause_intervals;
    CREATE INDEX IF NOT EXISTS agent_pauses_open ON agent_pauses (agent) WHERE ended_at IS NULL;
    CREATE INDEX IF NOT EXISTS agent_pauses_period
        ON agent_pauses (started_at, ended_at, agent, reason, duration_s);
    CREATE INDEX IF NOT EXISTS agent_pauses_ended ON agent_pauses (ended_at, started_at);
    CREATE TABLE IF NOT EXISTS report_queue_hours (
        hour TEXT NOT NULL,
        queue TEXT NOT NULL,
        offered INTEGER NOT NULL,
        answered INTEGER NOT NULL,
        abandoned INTEGER NOT NULL,
        answered_in_sl INTEGER NOT NULL,
        wait_sum INTEGER NOT NULL,
        wait_n INTEGER NOT NULL,
        talk_sum INTEGER NOT NULL,
        talk_n INTEGER NOT NULL,
        PRIMARY KEY (hour, queue)
    );
    CREATE TABLE IF NOT EXISTS report_agent_days (
        day TEXT NOT NULL,
        agent TEXT NOT NULL,
        answered INTEGER NOT NULL,
        answered_in_sl INTEGER NOT NULL,
        wait_sum INTEGER NOT NULL,
        wait_n INTEGER NOT NULL,
        talk_sum INTEGER NOT NULL,
        talk_n INTEGER NOT NULL,
        PRIMARY KEY (day, agent)
    );
    CREATE TABLE IF NOT EXISTS report_waits (
        span TEXT NOT NULL,
        day TEXT NOT NULL,
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        wait_s INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (span, day, scope, name, wait_s)
    );
    CREATE TABLE IF NOT EXISTS report_ratings (
        span TEXT NOT NULL,
        day TEXT NOT NULL,
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        rating INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (span, day, scope, name, rating)
    );
    """,
    # version 9 (h14-shared): what instances on one database share (centralita/store/
    # shared.py): the console's cookie signing key, made once by the first instance; the
    # login attempts the rate limits count; and the callbacks' changes in the order the
    # CSV writer reads them (centralita/csvfiles.py).
    """
    CREATE TABLE IF NOT EXISTS shared_secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS login_failures (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, at);
    CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
    CREATE INDEX IF NOT EXISTS callbacks_updated ON callbacks (updated_at, id);
    """,
    # version 10 (h14-kill): webhook events keyed by the call event they report
    # (centralita/webhooks.py `event_key`): every instance following the same Asterisk
    # queues each event, and the key lets one row in (docs/cluster.md). NULL keys (events
    # queued without one) never clash: NULLs are distinct in a unique index on both
    # databases.
    """
    ALTER TABLE outbox ADD COLUMN event_key TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS outbox_event_key ON outbox (url, event_key);
    """,
)

# One version per migration: the number is counted, never written by hand (two branches
# that each append one then merge without a clash).
SCHEMA_VERSION = len(_MIGRATIONS)

# The schema version that added the report tables and the pauses' durations (found by its
# text, so renumbering the migrations keeps it right): a file migrated from an earlier one
# has them filled in by `QueueEventsMixin.backfill_reports` when it opens.
REPORT_TABLES_VERSION = next(
    number
    for number, script in enumerate(_MIGRATIONS, start=1)
    if "CREATE TABLE IF NOT EXISTS report_queue_hours" in script
)


# PostgreSQL: the same migrations, with the few DDL words that differ translated by
# `pg_statements` (the one place the dialects' DDL meet), and what SQLite has built in.
_PG_TYPES = (
    # An id that a copy may set explicitly (`db copy` keeps ids), then advanced by setval.
    (
        re.compile(r"\bINTEGER PRIMARY KEY( AUTOINCREMENT)?\b", re.I),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),  # REAL is 4 bytes on PostgreSQL
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    # Byte order, as SQLite compares text: the same ORDER BY on both, whatever the
    # database's locale (and ISO times and keys need no more).
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
    # A migration may run again over a database that has its columns (see _has_column).
    (re.compile(r"\bADD COLUMN (?!IF NOT EXISTS)", re.I), "ADD COLUMN IF NOT EXISTS "),
)
# Run before the first migration on PostgreSQL: SQLite functions the SQL uses.
PG_PRELUDE = (
    # instr(haystack, needle): SQLite's substring position (1-based, 0 when absent).
    "CREATE OR REPLACE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT strpos(haystack, needle)'",
)
# PostgreSQL-only statements run after a migration (by its version): SQLite's implicit
# `rowid` made explicit where the SQL orders by it (a contact's numbers, as added).
_PG_AFTER: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE contact_numbers ADD COLUMN rowid BIGINT GENERATED BY DEFAULT AS IDENTITY",),
}


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no `;` inside our literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", re.IGNORECASE)


async def _has_column(db: Connection, statement: str) -> bool:
    """True for an `ALTER TABLE t ADD COLUMN c` whose column is already there: a migration
    may run again over a file that has it (its version set back by hand), and SQLite has no
    `ADD COLUMN IF NOT EXISTS` (sqlite.org/lang_altertable.html); PostgreSQL's DDL gets
    `IF NOT EXISTS` instead (`pg_statements`)."""
    match = ADD_COLUMN.match(statement)
    if match is None:
        return False
    table, column = match.groups()
    async with db.execute(f"PRAGMA table_info({table})") as cur:
        return any(row[1] == column for row in await cur.fetchall())


def pg_statements(script: str) -> list[str]:
    """A migration script's statements in PostgreSQL's DDL."""
    out = []
    for statement in _statements(script):
        for pattern, replacement in _PG_TYPES:
            statement = pattern.sub(replacement, statement)
        out.append(statement)
    return out


def migration_statements(dialect: str, version: int) -> list[str]:
    """The statements of migration `version` (1-based) in `dialect`."""
    script = _MIGRATIONS[version - 1]
    if dialect == "postgresql":
        return [*pg_statements(script), *_PG_AFTER.get(version, ())]
    return _statements(script)


async def migrate(db: Connection, where: str, dialect: str = "sqlite") -> int:
    """Bring the schema up to SCHEMA_VERSION; call inside a write transaction. `where`
    names the database in an error (a path, or a URL without its password). Returns the
    version the database had (0 for a new one)."""
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    async with db.execute("SELECT version FROM schema_version") as cur:
        row = await cur.fetchone()
    version = int(row["version"]) if row else 0
    if row is None:
        await db.execute("INSERT INTO schema_version (version) VALUES (0)")
    if version > len(_MIGRATIONS):
        raise StoreSchemaError(
            f"{where}: database schema version {version} is newer than this "
            f"Centralita knows ({len(_MIGRATIONS)}); upgrade Centralita"
        )
    if dialect == "postgresql" and version < len(_MIGRATIONS):
        for statement in PG_PRELUDE:
            await db.execute(statement)
    for number in range(version + 1, len(_MIGRATIONS) + 1):
        for statement in migration_statements(dialect, number):
            if dialect == "sqlite" and await _has_column(db, statement):
                continue
            await db.execute(statement)
        await db.execute("UPDATE schema_version SET version = ?", (number,))
    return version
