"""Call records in the store: writing them (one at a time from the AMI feed, in bulk from a
Master.csv), the returning-caller lookup, and the supervisor's call list."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ami.cdr import CallRecord, CdrError, cdr_text
from centralita.store.base import Connection, StoreBase
from centralita.store.cdr import (
    CDR_INSERT,
    CDR_RECORD_COLUMNS,
    CallRow,
    ImportResult,
    call_row_from_row,
    cdr_from_csv_row,
    cdr_from_row,
    cdr_params,
    check_cdr,
    read_chunk,
    with_key,
)
from centralita.store.errors import StoreInputError
from centralita.store.records import check_text


class CallRecordsMixin(StoreBase):
    """The `cdr` table."""

    # ----------------------------------------------------------------- call records

    def _keyed(self, rec: CallRecord) -> CallRecord:
        return rec if rec.src_key is not None else with_key(rec, *self._phone_settings())

    async def upsert_cdr(self, rec: CallRecord) -> bool:
        """Store a call record; True if new, False if it was already there (then updated in
        place: a repeated `Cdr` event or a re-imported row never makes a second record)."""
        check_cdr(rec)
        rec = self._keyed(rec)
        params = cdr_params(rec)
        async with self._tx() as db:
            cur = await db.execute(CDR_INSERT, params)
            if cur.rowcount > 0:
                return True
            # Already present: refresh the mutable fields, but keep a known linkedid when
            # this copy lacks it (the AMI Cdr event has none, Master.csv may).
            await db.execute(
                "UPDATE cdr SET linkedid = CASE WHEN :linkedid != '' THEN :linkedid "
                "ELSE linkedid END, src = :src, src_key = :src_key, dst = :dst, agent = :agent, "
                "dcontext = :dcontext, clid = :clid, lastdata = :lastdata, answer = :answer, "
                '"end" = :end, duration = :duration, billsec = :billsec, '
                "disposition = :disposition, amaflags = :amaflags, accountcode = :accountcode, "
                "userfield = :userfield WHERE cdr_key = :cdr_key",
                params,
            )
            return False

    async def get_cdrs(self, uniqueid: str) -> list[CallRecord]:
        """All records of one channel (several when it dialled more than once), by start."""
        async with (
            self._read() as db,
            db.execute(
                f"SELECT {CDR_RECORD_COLUMNS} FROM cdr WHERE uniqueid = ? "  # noqa: S608
                "ORDER BY start, id",
                (uniqueid,),
            ) as cur,
        ):
            return [cdr_from_row(row) for row in await cur.fetchall()]

    async def count_cdrs(self) -> int:
        """How many call records are stored."""
        async with self._read() as db, db.execute("SELECT count(*) AS n FROM cdr") as cur:
            row = await cur.fetchone()
        return int(row["n"]) if row else 0

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
        sql, params = self._last_agent_query(src_key, cdr_text(since), dispositions, agents)
        row = await self._first_row_soon(sql, params)
        return str(row["agent"]) if row else None

    def _last_agent_query(
        self, src_key: str, since: str, dispositions: Sequence[str], agents: Collection[str]
    ) -> tuple[str, tuple[Any, ...]]:
        """`last_agent_for`'s query and parameters (PostgreSQL passes the lists as arrays)."""
        agent_list = list(agents)
        disp_list = list(dispositions)
        sql = (
            "SELECT agent FROM cdr WHERE src_key = ? AND start >= ? "  # noqa: S608 (only ?s)
            f"AND disposition IN ({','.join('?' * len(disp_list))}) "
            f"AND agent IN ({','.join('?' * len(agent_list))}) "
            "ORDER BY start DESC LIMIT 1"
        )
        return sql, (src_key, since, *disp_list, *agent_list)

    async def import_master_csv(
        self,
        path: Path | str,
        *,
        region: str | None = None,
        match_digits: int | None = None,
        min_digits: int | None = None,
    ) -> ImportResult:
        """Import an Asterisk cdr-csv Master.csv; returns what was imported and skipped.

        Callers' number keys follow the store's `[manager]` rules unless `region`,
        `match_digits` or `min_digits` are given. Skipped rows are counted apart: duplicates
        (already stored, so a re-import is idempotent) and unreadable rows (which an admin
        may want to look at).
        """
        region = self.region if region is None else region
        match_digits = self.match_digits if match_digits is None else match_digits
        min_digits = self.min_digits if min_digits is None else min_digits
        imported = duplicates = unreadable = 0
        # Asterisk writes bytes as they came; a stray Latin-1 caller name must not stop
        # the import, so undecodable bytes become U+FFFD.
        handle = await asyncio.to_thread(open, path, encoding="utf-8", errors="replace", newline="")
        with handle:
            reader = csv.reader(handle)
            while True:
                chunk, at_end = await asyncio.to_thread(read_chunk, reader, 5000)
                batch = []
                for row in chunk:
                    if row is None:
                        unreadable += 1
                        continue
                    try:
                        rec = cdr_from_csv_row(
                            row, region=region, match_digits=match_digits, min_digits=min_digits
                        )
                        check_cdr(rec)
                    except (StoreInputError, CdrError):
                        unreadable += 1
                        continue
                    batch.append(cdr_params(rec))
                async with self._tx() as db:
                    added = await self._insert_cdrs(db, batch)
                imported += added
                duplicates += len(batch) - added  # ON CONFLICT (cdr_key) DO NOTHING
                if at_end:
                    break
        return ImportResult(imported, duplicates, unreadable)

    async def _insert_cdrs(self, db: Connection, rows: list[dict[str, object]]) -> int:
        """Insert call records (`cdr_params` each) in the open transaction, leaving out
        those already stored (by `cdr_key`); returns how many were inserted."""
        # executemany's rowcount: the rows inserted, conflicts left out.
        return max(0, (await db.executemany(CDR_INSERT, rows)).rowcount)

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

    # ----------------------------------------------------------------- calls listing

    async def list_calls(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        agent: str | None = None,
        customer: str | None = None,
        viewer: str | None = None,
        call: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[CallRow], int]:
        """Call records newest first, with outcomes and contact names, and the total count.

        `start`/`end` are inclusive days; `agent` matches the record's agent or dst;
        `customer` matches a substring of the caller number or of the name of a contact
        with that number. With `viewer` (an agent who is not a supervisor), only that
        agent's own outcome and notes are shown: another agent's notes stay private.
        `call` keeps the records of one call (its Uniqueid or Linkedid: a complaint's link).
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
            check_text("agent", agent, limit=200)
            where.append(
                # A set of row ids built from two indexes, not a per-row test: the count
                # stays fast on a million records. Only the record itself says who took
                # part: an outcome is the agent's claim, not proof (issue 10, finding 1).
                "c.id IN (SELECT id FROM cdr WHERE agent = ? "
                "UNION SELECT id FROM cdr WHERE dst = ?)"
            )
            params += [agent, agent]
        if call:
            check_text("call", call, limit=200)
            where.append(
                "c.id IN (SELECT id FROM cdr WHERE uniqueid = ? "
                "UNION SELECT id FROM cdr WHERE linkedid = ? AND linkedid != '')"
            )
            params += [call, call]
        if customer:
            check_text("customer", customer, limit=200)
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
            check_text("viewer", viewer, limit=200, empty=False)
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
            "c.disposition, c.duration, c.billsec, "
            "COALESCE((SELECT k.name FROM contacts k WHERE k.id = o.contact_id), "
            " (SELECT k.name FROM contact_numbers n JOIN contacts k ON k.id = n.contact_id "
            "  WHERE n.key = c.src_key ORDER BY k.name_fold, k.id LIMIT 1)) AS contact_name, "
            "o.outcome AS outcome, o.agent AS outcome_agent, o.notes AS notes, "
            "o.follow_up AS follow_up "
            f"FROM cdr c LEFT JOIN outcomes o ON o.id = ({pick})"
            f"{clause} ORDER BY c.start DESC, c.id DESC LIMIT ? OFFSET ?"
        )
        select_params = ([viewer] if viewer is not None else []) + params
        async with self._read() as db:
            count_sql = f"SELECT count(*) AS n FROM cdr c{clause}"  # noqa: S608 (as above)
            async with db.execute(count_sql, params) as cur:
                total_row = await cur.fetchone()
            async with db.execute(sql, (*select_params, limit, offset)) as cur:
                rows = await cur.fetchall()
        return [call_row_from_row(row) for row in rows], int(total_row["n"]) if total_row else 0
