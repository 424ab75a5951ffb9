"""What a flow may reach besides its call: the site model and a few application services.

Flows never import the web app or the store (docs/design.md#which-way-imports-go): the
application hands each call an object that satisfies `FlowContext`, and tests can hand a
real one built over a temporary SQLite file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dialplan.model import CustomerIdNode, Site


@dataclass(frozen=True)
class CallbackEntry:
    """A confirmed callback request."""

    callerid: str
    language: str
    queue: str
    number: str
    alternative: str
    uniqueid: str


@dataclass(frozen=True)
class RatingEntry:
    """One survey answer."""

    callerid: str
    agent: str
    queue: str
    rating: int
    call_id: str


@dataclass(frozen=True)
class SurveyRequest:
    """Ask `callerid` for a rating after `call_id` ended (agent and queue for the record)."""

    callerid: str
    call_id: str
    agent: str
    queue: str
    language: str
    # The channel that ran the flow (agi_uniqueid): tells which Asterisk carried the call.
    uniqueid: str = ""


@dataclass(frozen=True)
class CrmReply:
    """What the CRM said about a customer ID: `destination` is "true", "false" or "X,Y";
    `error` is set (and the answer unusable) on a timeout, bad status or bad body."""

    destination: str | None
    error: str | None = None


class FlowContext(Protocol):
    """Services a flow can use. Every method is bounded and never raises for a remote fault."""

    @property
    def site(self) -> Site: ...

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def hold_callback(self, entry: CallbackEntry) -> int:
        """Store the request as soon as its main number is confirmed, before the rest is
        asked (not yet in callbacks.csv); returns its id for `save_callback`."""
        ...

    async def save_callback(self, entry: CallbackEntry, held: int | None = None) -> None:
        """Store the request (or, when `held`, give the one held its alternative), then
        append it to callbacks.csv (stored before acknowledged)."""
        ...

    async def save_rating(self, entry: RatingEntry) -> None:
        """Store the rating, then append it to complaints.csv."""
        ...

    async def schedule_survey(self, request: SurveyRequest) -> bool:
        """Write the survey call file; False when the caller must not be surveyed."""
        ...

    async def last_agent(self, callerid: str) -> str | None:
        """The agent who last dealt with this caller within the window, if any."""
        ...

    async def ask_crm(self, node: CustomerIdNode, customer_id: str) -> CrmReply:
        """POST the customer ID to the node's CRM: bounded, never retried while the caller waits."""
        ...
