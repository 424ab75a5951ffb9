"""Who writes `callbacks.csv` and `complaints.csv` in data_dir, when `[server] csv_files`
wants them at all (docs/cluster.md#the-csv-files).

The database is the record; the files are its human-readable log (centralita/csvlog.py: one
encoder, formula cells neutralised, one `os.write` per batch on O_APPEND).

* SQLite: one instance owns the database, and it appends each row as it stores the record,
  as it always has (`callback_changed`, `rating_added`); when it starts, files that lag
  the database are rebuilt from it (`csvlog.reconcile`).
* PostgreSQL: several instances share the database, and each has its own data_dir. One of
  them, the holder of the `csv-writer` lease (an advisory lock on a connection of its own:
  `PgStore.try_lease`), writes the files: every `POLL_S` what the database gained, and
  its own flows' and console's rows as they are stored. The others write nothing, and ask
  for the lease every `ELECT_EVERY_S`, on a connection each keeps for asking
  (`PgStore.lease_candidate`): when the writer stops or dies, its connection closes, the
  server frees the lock, and the next instance to ask takes over, first rebuilding its own
  files where they lag the database. So N instances never write N copies, and two never
  append to one file (a data_dir on a shared folder) at once.

Each poll reads the requests changed, and the ratings made, since the newest time the last
poll read less `RECENT_S`; every `SWEEP_EVERY_S` it reads the whole window instead, the last
`OVERLAP_S` + `SWEEP_EVERY_S` (`_window_s`): a transaction on another instance may commit a
row whose time is older than rows already read (a late commit, a clock behind), and a row
up to `OVERLAP_S` older is still inside the window at the next sweep. (Reading the whole
window at every poll re-read each row OVERLAP_S / POLL_S = 30 times, a cost per call on the
writer: bench/agi_instances.py, docs/cluster.md#cpu-per-call-with-1-2-and-3-instances.) As
the SQLite instance does, it writes a request's row when it is made and when it is closed
(`_event`), not when it is assigned or called (which change it too), and each rating once; a
row older than the window, or from an instance whose clock is off by more (keep them on
NTP), is written when a writer next starts (the rebuild), not lost from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from centralita.csvlog import (
    CsvLog,
    callback_row,
    callbacks_log,
    complaint_row,
    complaints_log,
    reconcile,
)
from centralita.settings import Settings
from centralita.store import CallbackRequest, Rating, StoreBackend
from centralita.store.postgres import Lease, PgStore
from centralita.times import shown

log = logging.getLogger("centralita.csvlog")

LEASE = "csv-writer"
POLL_S = 1.0
ELECT_EVERY_S = 5.0
OVERLAP_S = 30.0
RECENT_S = 3.0
SWEEP_EVERY_S = 10.0


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _window_s() -> float:
    """How far back a sweep reads, and the writer remembers what it wrote."""
    return OVERLAP_S + SWEEP_EVERY_S


def _recent(newest: str, since: str) -> str:
    """Where the next poll reads from: RECENT_S before the newest time read (a row committed
    a moment late, with an older time, is still read), never back past `since`."""
    try:
        start = _iso(datetime.fromisoformat(newest) - timedelta(seconds=RECENT_S))
    except ValueError:  # not a time: read the whole window next time
        return since
    return max(start, since)


def _event(request: CallbackRequest) -> tuple[int, str, str]:
    """What a request's row records: made (pending, at its creation) or closed (its status,
    when it was closed). A request is closed once (centralita/web/callbacks.py)."""
    if request.status == "pending":
        return (request.id, request.status, request.created_at)
    return (request.id, request.status, request.closed_at or request.updated_at)


class CsvFiles:
    """The CSV files of one instance: written directly (SQLite), by the elected writer
    (PostgreSQL), or not at all (`[server] csv_files = false`)."""

    def __init__(self, store: StoreBackend, settings: Settings) -> None:
        self.store = store
        self.enabled = settings.server.csv_files
        self.callbacks: CsvLog = callbacks_log(settings.data_dir)
        self.complaints: CsvLog = complaints_log(settings.data_dir)
        self.data_dir = settings.data_dir
        self.elected = isinstance(store, PgStore)
        self._lease: Lease | None = None
        self._candidate: Lease | None = None  # the connection it asks for the lease on
        self._task: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()
        # What the writer has written of the window (`_window_s`): each request's `_event`, and
        # (id, created_at) of ratings.
        self._callbacks_seen: set[tuple[int, str, str]] = set()
        self._ratings_seen: set[tuple[int, str]] = set()
        # The newest change time each table's last poll read (the next reads from it, less
        # RECENT_S), and when the whole window was last read.
        self._callbacks_since = ""
        self._ratings_since = ""
        self._swept_at = 0.0

    @property
    def writing(self) -> bool:
        """True when this instance writes the files now."""
        return self.enabled and (not self.elected or self._lease is not None)

    async def start(self) -> None:
        """SQLite: catch lagging files up. PostgreSQL: run for the lease, and write while
        holding it."""
        if not self.enabled:
            return
        if not self.elected:
            # Written after the store: a crash between the two leaves them behind, and
            # nothing else would ever catch them up.
            await reconcile(self.store, self.data_dir)
            return
        try:
            await self._campaign()
        except Exception as exc:  # the files are a log: they never keep an instance down
            log.warning("CSV files: %s (asking for the writer's lease again later)", exc)
        self._task = asyncio.create_task(self._run(), name="centralita-csv-writer")

    async def stop(self) -> None:
        """Stop writing and give the lease up (another instance takes over)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for lease in (self._lease, self._candidate):
            if lease is not None:
                await lease.release()
        self._lease = self._candidate = None

    # ----------------------------------------------------------------- what callers tell

    async def callback_changed(self, request: CallbackRequest) -> None:
        """A callback request was stored or changed status: its row, now."""
        if not self.enabled:
            return
        if not self.elected:
            await self.callbacks.append(callback_row(request))
        elif self._lease is not None:
            # The writer's own change: its one row now, marked as seen so the poll skips it
            # (a whole sync here re-read the last OVERLAP_S of changes on every call:
            # bench/agi_instances.py measured 2.9 -> 10.5 ms of CPU per callback call).
            event = _event(request)
            async with self._sync_lock:
                if event not in self._callbacks_seen:
                    self._callbacks_seen.add(event)
                    await self.callbacks.append(callback_row(request, shown(event[2])))

    async def rating_added(self, rating: Rating) -> None:
        """A survey rating was stored: its row, now."""
        if not self.enabled:
            return
        if not self.elected:
            await self.complaints.append(complaint_row(rating))
        elif self._lease is not None:
            seen = (rating.id, rating.created_at)
            async with self._sync_lock:
                if seen not in self._ratings_seen:
                    self._ratings_seen.add(seen)
                    await self.complaints.append(complaint_row(rating))

    # ----------------------------------------------------------------- the elected writer

    async def _campaign(self) -> None:
        """Ask for the lease once, on this instance's candidate connection (kept between
        asks: a new connection each time cost a server process each time); on winning,
        catch this data_dir's files up first."""
        assert isinstance(self.store, PgStore)
        if self._candidate is None:
            self._candidate = await self.store.lease_candidate()
        try:
            got = await self._candidate.try_take(LEASE)
        except BaseException:  # the connection is gone (or a stop): a new one next time
            await self._candidate.release()
            self._candidate = None
            raise
        if not got:
            return
        lease, self._candidate = self._candidate, None
        try:
            # Marked before the rebuild reads the tables: a row committed in between is
            # written twice at worst, never missed.
            await self._mark_recent()
            await reconcile(self.store, self.data_dir)
        except BaseException:
            await lease.release()
            raise
        self._lease = lease
        log.info(
            "this instance writes the CSV files in %s (it holds the writer lease)", self.data_dir
        )

    async def _mark_recent(self) -> None:
        horizon = _iso(datetime.now(UTC) - timedelta(seconds=_window_s()))
        self._callbacks_since = self._ratings_since = ""  # the first poll reads it all
        self._callbacks_seen = {
            _event(c) for c in await self.store.callbacks_changed_since(horizon)
        }
        self._ratings_seen = {(r.id, r.created_at) for r in await self.store.ratings_since(horizon)}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S if self._lease is not None else ELECT_EVERY_S)
            try:
                if self._lease is None:
                    await self._campaign()
                elif not await self._lease.held():
                    log.warning("lost the CSV writer lease (the database connection ended)")
                    self._lease = None
                    continue
                if self._lease is not None:
                    await self.sync()
            except Exception as exc:
                log.warning("CSV files: %s", exc)

    async def sync(self) -> None:
        """Append the rows of what changed in the database since the last sync."""
        async with self._sync_lock:
            now = datetime.now(UTC)
            horizon = _iso(now - timedelta(seconds=_window_s()))
            sweep = time.monotonic() - self._swept_at >= SWEEP_EVERY_S
            if sweep:
                self._swept_at = time.monotonic()
            callbacks = await self.store.callbacks_changed_since(
                horizon if sweep else max(horizon, self._callbacks_since)
            )
            ratings = await self.store.ratings_since(
                horizon if sweep else max(horizon, self._ratings_since)
            )
            if callbacks:
                self._callbacks_since = _recent(callbacks[-1].updated_at, self._callbacks_since)
            if ratings:
                self._ratings_since = _recent(ratings[-1].created_at, self._ratings_since)
            new_callbacks: list[tuple[Any, ...]] = []
            for c in callbacks:
                event = _event(c)
                # Older than the window: written already (an assignment or a call changed
                # the request since, not its status).
                if event[2] >= horizon and event not in self._callbacks_seen:
                    new_callbacks.append(callback_row(c, shown(event[2])))
                    self._callbacks_seen.add(event)
            new_ratings = []
            for r in ratings:
                if (r.id, r.created_at) not in self._ratings_seen:
                    new_ratings.append(complaint_row(r))
                    self._ratings_seen.add((r.id, r.created_at))
            await self.callbacks.append_rows(new_callbacks)
            await self.complaints.append_rows(new_ratings)
            self._callbacks_seen = {m for m in self._callbacks_seen if m[2] >= horizon}
            self._ratings_seen = {m for m in self._ratings_seen if m[1] >= horizon}
