"""The store's public interface, as a Protocol: what the app, the flows, the console and the
CLI may ask of a store, whatever keeps the data.

`centralita.store.Store` (SQLite) and `centralita.store.postgres.PgStore` (PostgreSQL)
implement it, from the same table mixins; the code typed against `StoreBackend` runs on
either unchanged. The promises every implementation keeps:

* A write is committed before its method returns, so a caller may acknowledge it.
* Bad input raises `StoreInputError` (a `ValueError`) and stores nothing; an unknown id gives
  None or False, never an exception.
* Number keys (contacts, call records) are `phone.normalize` keys under the `[manager]`
  rules the store was opened with (`key`).
* `contacts_for_number_now` and `last_agent_for` answer a ringing call: they may not wait
  behind a slow write (the SQLite store reads them on a second, read-only connection; the
  PostgreSQL store answers `..._now` with None, and `last_agent_for` on a connection of its
  own with a server-side deadline).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from ami.cdr import CallRecord
from centralita.store.audit import AuditEntry
from centralita.store.cdr import CallRow, ImportResult
from centralita.store.desk import HistoryRow, PendingCallbackRow
from centralita.store.queue_events import QueueEvent, QueueTotals
from centralita.store.records import (
    CallbackAttempt,
    CallbackRequest,
    Contact,
    OutboxEvent,
    Outcome,
    Rating,
)
from centralita.store.report_queries import ReportData
from centralita.store.shared import LoginAttempt, LoginLimit


class StoreBackend(Protocol):
    """Everything Centralita keeps: callbacks, ratings, call records, contacts, outcomes,
    console passwords and sessions, and the webhook outbox."""

    dialect: str  # "sqlite" or "postgresql"
    region: str
    match_digits: int
    min_digits: int

    async def close(self) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def schema_version(self) -> int: ...
    def key(self, number: str) -> str | None: ...

    # callbacks and ratings
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
    ) -> CallbackRequest: ...
    async def list_callbacks(
        self, status: str | None = None, *, assigned_to: str | None = None
    ) -> list[CallbackRequest]: ...
    async def count_callbacks(
        self, status: str | None = None, *, assigned_to: str | None = None
    ) -> int: ...
    async def set_callback_alternative(
        self, callback_id: int, alternative: str
    ) -> CallbackRequest | None: ...
    async def get_callback(self, callback_id: int) -> CallbackRequest | None: ...
    async def set_callback_status(self, callback_id: int, status: str) -> bool: ...
    async def assign_callback(self, callback_id: int, agent: str) -> CallbackRequest | None: ...
    async def close_callback(
        self, callback_id: int, *, status: str, by: str, note: str = ""
    ) -> CallbackRequest | None: ...
    async def add_callback_attempt(
        self, callback_id: int, *, agent: str, number: str
    ) -> CallbackAttempt | None: ...
    async def finish_callback_attempt(
        self, attempt_id: int, *, result: str, reason: str = "", call_id: str = ""
    ) -> bool: ...
    async def list_callback_attempts(
        self, callback_ids: Collection[int]
    ) -> list[CallbackAttempt]: ...
    async def add_rating(
        self, *, callerid: str, agent: str, queue: str, rating: int, call_id: str
    ) -> Rating: ...
    async def list_ratings(self, *, below: int | None = None) -> list[Rating]: ...
    async def get_rating(self, rating_id: int) -> Rating | None: ...

    # call records
    async def upsert_cdr(self, rec: CallRecord) -> bool: ...
    async def get_cdrs(self, uniqueid: str) -> list[CallRecord]: ...
    async def count_cdrs(self) -> int: ...
    async def last_agent_for(
        self,
        src_key: str,
        *,
        since: datetime,
        dispositions: Sequence[str],
        agents: Collection[str],
    ) -> str | None: ...
    async def import_master_csv(
        self,
        path: Path | str,
        *,
        region: str | None = None,
        match_digits: int | None = None,
        min_digits: int | None = None,
    ) -> ImportResult: ...
    async def took_part(self, call_id: str, agent: str) -> bool: ...
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
    ) -> tuple[list[CallRow], int]: ...

    # contacts and outcomes
    async def create_contact(
        self,
        *,
        name: str,
        company: str = "",
        numbers: Iterable[str] = (),
        notes: str = "",
        external_id: str = "",
        url: str = "",
    ) -> Contact: ...
    async def update_contact(self, contact_id: int, **fields: Any) -> Contact | None: ...
    async def add_contact_number(self, contact_id: int, number: str) -> Contact | None: ...
    async def get_contact(self, contact_id: int) -> Contact | None: ...
    async def contacts_for_number(self, number: str) -> list[Contact]: ...
    def contacts_for_number_now(self, number: str) -> list[Contact] | None: ...
    async def search_contacts(self, name_query: str, limit: int = 20) -> list[Contact]: ...
    async def save_outcome(
        self,
        *,
        call_id: str,
        agent: str,
        outcome: str,
        notes: str = "",
        follow_up: date | None = None,
        contact_id: int | None = None,
    ) -> Outcome: ...
    async def get_outcomes(self, call_id: str) -> list[Outcome]: ...

    # console passwords and sessions
    async def set_agent_password(self, extension: str, password: str) -> None: ...
    async def verify_agent_password(self, extension: str, password: str) -> bool: ...
    async def remove_agent_password(self, extension: str) -> bool: ...
    async def end_agent_sessions(self, extension: str) -> int: ...
    async def session_version(self, extension: str) -> int: ...
    async def session_valid(self, extension: str, sid: str, version: int) -> bool: ...
    async def ended_sessions(self, sessions: Iterable[tuple[str, str, int]]) -> set[str]: ...
    async def revoke_session(self, sid: str, expires_at: float) -> None: ...

    # what instances on one database share (store/shared.py)
    async def shared_secret(self, name: str, candidate: bytes) -> bytes: ...
    async def record_login_attempt(
        self, limits: Sequence[LoginLimit], now: float
    ) -> LoginAttempt: ...
    async def forget_login_attempts(self, ids: Sequence[int], key: str | None = None) -> None: ...
    async def prune_login_failures(self, before: float) -> int: ...
    async def callbacks_changed_since(self, since: str) -> list[CallbackRequest]: ...
    async def ratings_since(self, since: str) -> list[Rating]: ...

    # webhook outbox
    async def enqueue_event(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        now: datetime | None = None,
        key: str | None = None,
    ) -> int: ...
    async def due_events(self, now: datetime, limit: int = 100) -> list[OutboxEvent]: ...
    async def claim_due(
        self, now: datetime, *, lease_s: float, limit: int = 100
    ) -> list[OutboxEvent]: ...
    async def mark_sent(self, event_id: int) -> bool: ...
    async def mark_failed(self, event_id: int, next_attempt_at: datetime, error: str) -> bool: ...
    async def outbox_backlog(self) -> int: ...

    # the audit log of /admin
    async def add_audit(
        self, *, actor: str, action: str, subject: str, changes: str
    ) -> AuditEntry: ...
    async def list_audit(self, *, limit: int = 100, offset: int = 0) -> list[AuditEntry]: ...

    # the agent desktop (store/desk.py)
    async def agent_preferences(self, extension: str) -> str | None: ...
    async def set_agent_preferences(self, extension: str, preferences: str) -> None: ...
    def caller_history_now(
        self, key: str, number: str, limit: int
    ) -> tuple[list[HistoryRow], list[PendingCallbackRow]] | None: ...
    async def caller_history(
        self, key: str, number: str, limit: int
    ) -> tuple[list[HistoryRow], list[PendingCallbackRow]]: ...

    # the queue events kept from AMI (store/queue_events.py)
    async def write_queue_events(self, events: Sequence[QueueEvent]) -> int: ...
    async def queue_totals_since(self, since: str) -> list[QueueTotals]: ...
    async def queue_calls_of(self, uniqueid: str) -> list[dict[str, object]]: ...
    async def pause_intervals_of(self, agent: str) -> list[tuple[str, str, str | None]]: ...
    async def backfill_reports(self) -> None: ...
    async def rebuild_report_tables(self) -> int: ...
    async def report_data(
        self, *, first_day: str, end_day: str, start_utc: str, end_utc: str, by_hour: bool
    ) -> ReportData: ...
