"""The store's record types (callbacks, ratings, contacts, outcomes, outbox events), the
checks every text value passes before it is written, and the row-to-record mappings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from centralita.store.base import Row
from centralita.store.errors import StoreInputError

CALLBACK_STATUSES = ("pending", "done", "cancelled")
# How a call-back attempt went: `calling` until the Originate's answer is in; then from its
# OriginateResponse Reason (ami.originate.REASONS): 4 answered, 3 no answer, 5 busy, and
# anything else (a refusal, congestion, a timeout) failed, with the reason in words.
ATTEMPT_RESULTS = ("calling", "answered", "no_answer", "busy", "failed")
CONTACT_FIELDS = ("name", "company", "notes", "external_id", "url")

# Longest text accepted in one field: caller IDs and notes come from strangers, and a
# runaway value must not fill the disk one row at a time.
MAX_TEXT = 4000
MAX_NOTES = 20000


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
    # Callbacks as work (issue 12): the agent it is assigned to ("" for nobody) and since
    # when, and who closed it (done or cancelled), when, with their note.
    assigned_to: str = ""
    assigned_at: str | None = None
    closed_by: str = ""
    closed_at: str | None = None
    note: str = ""


@dataclass(frozen=True)
class CallbackAttempt:
    """One call back: `agent` dialled `number` for callback `callback_id` at `started_at`;
    `result` is one of ATTEMPT_RESULTS, `reason` Asterisk's words for it, `call_id` the
    Uniqueid of the agent's channel from the OriginateResponse ("" if none came)."""

    id: int
    callback_id: int
    agent: str
    number: str
    started_at: str
    ended_at: str | None
    call_id: str
    result: str
    reason: str


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
class OutboxEvent:
    id: int
    url: str
    payload: dict[str, Any] = field(hash=False)
    created_at: str
    next_attempt_at: datetime
    attempts: int
    last_error: str


def now_iso() -> str:
    """Now, as the `created_at`/`updated_at` text: UTC ISO-8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def utc_text(moment: datetime) -> str:
    """Fixed-width UTC text, so outbox times compare correctly as strings."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # outbox times: naive means UTC
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def check_text(name: str, value: object, *, limit: int = MAX_TEXT, empty: bool = True) -> str:
    """`value` if it is a string the store accepts for field `name`; StoreInputError otherwise."""
    if not isinstance(value, str):
        raise StoreInputError(f"{name} must be a string, not {type(value).__name__}")
    if "\0" in value:
        raise StoreInputError(f"{name} must not contain NUL characters")
    if len(value) > limit:
        raise StoreInputError(f"{name} is longer than {limit} characters")
    if not empty and not value.strip():
        raise StoreInputError(f"{name} must not be empty")
    return value


def check_status(value: str) -> str:
    """`value` if it is a callback status; StoreInputError otherwise."""
    if value not in CALLBACK_STATUSES:
        raise StoreInputError(
            f"unknown callback status {value!r}; expected one of {', '.join(CALLBACK_STATUSES)}"
        )
    return value


# ----------------------------------------------------------------- rows to records
# One column list and one mapping per record type; columns are read by name.

CALLBACK_COLUMNS = (
    "id, created_at, updated_at, callerid, language, queue, number, alternative, uniqueid, "
    "status, assigned_to, assigned_at, closed_by, closed_at, note"
)


def callback_from_row(row: Row) -> CallbackRequest:
    """A `callbacks` row (CALLBACK_COLUMNS) as a CallbackRequest."""
    return CallbackRequest(
        id=row["id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        callerid=row["callerid"],
        language=row["language"],
        queue=row["queue"],
        number=row["number"],
        alternative=row["alternative"],
        uniqueid=row["uniqueid"],
        status=row["status"],
        assigned_to=row["assigned_to"],
        assigned_at=row["assigned_at"],
        closed_by=row["closed_by"],
        closed_at=row["closed_at"],
        note=row["note"],
    )


ATTEMPT_COLUMNS = "id, callback_id, agent, number, started_at, ended_at, call_id, result, reason"


def attempt_from_row(row: Row) -> CallbackAttempt:
    """A `callback_attempts` row (ATTEMPT_COLUMNS) as a CallbackAttempt."""
    return CallbackAttempt(
        id=row["id"],
        callback_id=row["callback_id"],
        agent=row["agent"],
        number=row["number"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        call_id=row["call_id"],
        result=row["result"],
        reason=row["reason"],
    )


RATING_COLUMNS = "id, created_at, callerid, agent, queue, rating, call_id"


def rating_from_row(row: Row) -> Rating:
    """A `ratings` row (RATING_COLUMNS) as a Rating."""
    return Rating(
        id=row["id"],
        created_at=row["created_at"],
        callerid=row["callerid"],
        agent=row["agent"],
        queue=row["queue"],
        rating=row["rating"],
        call_id=row["call_id"],
    )


CONTACT_COLUMNS = "id, name, company, notes, external_id, url, created_at, updated_at"


def contact_from_row(row: Row, numbers: tuple[str, ...]) -> Contact:
    """A `contacts` row (CONTACT_COLUMNS) and its numbers as a Contact."""
    return Contact(
        id=row["id"],
        name=row["name"],
        company=row["company"],
        numbers=numbers,
        notes=row["notes"],
        external_id=row["external_id"],
        url=row["url"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


OUTCOME_COLUMNS = (
    "id, call_id, agent, outcome, notes, follow_up, contact_id, created_at, updated_at"
)


def outcome_from_row(row: Row) -> Outcome:
    """An `outcomes` row (OUTCOME_COLUMNS) as an Outcome."""
    follow_up = row["follow_up"]
    return Outcome(
        id=row["id"],
        call_id=row["call_id"],
        agent=row["agent"],
        outcome=row["outcome"],
        notes=row["notes"],
        follow_up=date.fromisoformat(follow_up) if follow_up else None,
        contact_id=row["contact_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


OUTBOX_COLUMNS = "id, url, payload, created_at, next_attempt_at, attempts, last_error"


def outbox_event_from_row(row: Row) -> OutboxEvent:
    """An `outbox` row (OUTBOX_COLUMNS) as an OutboxEvent."""
    return OutboxEvent(
        id=row["id"],
        url=row["url"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        next_attempt_at=datetime.fromisoformat(row["next_attempt_at"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
    )
