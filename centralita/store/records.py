"""The store's record types (callbacks, ratings, contacts, outcomes, outbox events), the
checks every text value passes before it is written, and the row-to-record mappings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

CALLBACK_STATUSES = ("pending", "done", "cancelled")
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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _utc_text(moment: datetime) -> str:
    """Fixed-width UTC text, so outbox times compare correctly as strings."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # outbox times: naive means UTC
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


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
