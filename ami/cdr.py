"""Call records, sans-IO: the one `CallRecord` type, its identity, and whose call it was.

A record of Asterisk's CDR (docs/asterisk-protocol.md#cdr) arrives two ways: live, as a
cdr_manager `Cdr` event on AMI (`parse_cdr`, fields per cdr/cdr_manager.c:312-335), and
later, as a row of cdr_csv's Master.csv (read by the store's importer). Both become a
`CallRecord`, with one duplicate key (`CallRecord.key`: the listener drops a repeated event
by it, the store makes it the row's identity) and one rule for the agent who took the call
(`CallRecord.agent`, built on `channel_extension`, which the tracker uses for live channels
too).

Times (`start`, `answer`, `end`) are the wall-clock times Asterisk writes: cdr_csv and
cdr_manager both format `%Y-%m-%d %T` in local time (cdr_csv.c:52, cdr_manager.c:182), so
they are naive datetimes; `cdr_text` turns an aware one into local time first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ami.protocol import AmiError, AmiMessage
from dialplan.names import OUTBOUND_CONTEXT

# ast_cdr_disp2str, main/cdr.c:3576-3595.
CDR_DISPOSITIONS = ("NO ANSWER", "FAILED", "BUSY", "ANSWERED", "CONGESTION", "CANCEL")

CDR_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# CDR_TIME_FORMAT with every field at its full width, in ASCII digits.
_CDR_TIME_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


class CdrError(AmiError, ValueError):
    """A `Cdr` event (or Master.csv row) that is not a call record: a time or a count that
    does not parse, a start or end missing."""


@dataclass(frozen=True)
class CallRecord:
    """One Asterisk CDR record (a cdr_manager `Cdr` event or a cdr_csv row), named as
    Asterisk's CDR names its fields (main/cdr.c, `ast_cdr`).

    `uniqueid` alone is NOT unique: one channel produces a record each time it dials
    (asterisk-traces/ami-queue-timeout.txt has two for 1795301710.17); `key` is.
    `src_key` is the store's matching key of `src` (None until the store computes it with
    its region settings). `extra` holds the fields a `Cdr` event carries beyond the
    standard ones (cdr_manager.conf `[mappings]`).
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
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def agent(self) -> str:
        """The extension that took the call: from DestinationChannel, else `dst`.

        A queue call's CDR has the queue's extension in `dst` and the agent only in the
        channel name (`Destination: 300`, `DestinationChannel: SIP/1001-00000000` in
        asterisk-traces/ami-queue-sip-call.txt).

        A click-to-dial call is the other way round: Asterisk calls the agent's device first
        and that channel runs the outbound context to dial the customer, so the CDR's
        `Channel` is the agent's and `DestinationChannel` the trunk's (`DestinationContext:
        centralita-outbound`, `Channel: SIP/1002-00000000`, `DestinationChannel:
        Local/+34600000001@centralita-test-customer-00000000;1` on Asterisk 20 and 22).
        """
        if self.dcontext == OUTBOUND_CONTEXT:
            return agent_of(self.dst, self.channel)
        return agent_of(self.dst, self.dstchannel)

    @property
    def key(self) -> bytes:
        """The record's identity: a repeated `Cdr` event or a re-imported row has the same.

        Not the uniqueid alone: one channel produces several records when it dials more
        than once, all with the same UniqueID (ami-queue-timeout.txt: the Queue attempt NO
        ANSWER to SIP/1001, then the Hangup). Start, channel, destination channel and
        application tell them apart; the end, duration and disposition are left out, so a
        later copy of the same record updates it rather than adding a second.
        """
        parts = (self.uniqueid, cdr_text(self.start), self.channel, self.dstchannel, self.lastapp)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()[:16]


# Asterisk names channels `<tech>/<resource>-<8 hex digits>`, the suffix making the name
# unique (chan_pjsip.c chan_pjsip_new: "PJSIP/%s-%08x"; chan_sip.c sip_new: "SIP/%s-%08x";
# Local channels `Local/<exten>@<context>-<8 hex>;<1|2>`, core_local.c).
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]{8}$")


def channel_extension(channel: str) -> str:
    """The extension a channel name is for (`SIP/1001-00000000` -> `1001`,
    `PJSIP/1001-0000002a` -> `1001`, `Local/1001@agents-00000001;1` -> `1001`); "" for a
    name without a technology."""
    _, slash, resource = channel.partition("/")
    if not slash:
        return ""
    resource = _CHANNEL_SUFFIX.sub("", resource.split(";", 1)[0])
    return resource.split("@", 1)[0]


def agent_of(dst: str, dstchannel: str) -> str:
    """The extension behind a record's destination channel, else its `dst`; "" when the
    record has no destination channel.

    A record without a destination channel is a call that never reached anyone: its `dst`
    is only where the dialplan stopped (`s` after the callback flow, `600` after voicemail),
    not an agent (cdr.c sets the destination channel only when a channel is dialed or
    bridged).
    """
    if "/" not in dstchannel:
        return ""
    return channel_extension(dstchannel) or dst


def cdr_text(moment: datetime) -> str:
    """Asterisk CDR wall-clock text `%Y-%m-%d %H:%M:%S` (cdr_csv.c:52, cdr_manager.c:182)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone().replace(tzinfo=None)
    return moment.strftime(CDR_TIME_FORMAT)


def parse_cdr_time(text: str) -> datetime | None:
    """Parse an Asterisk CDR time; the empty string (never answered) gives None."""
    text = text.strip()
    if not text:
        return None
    try:
        if _CDR_TIME_SHAPE.fullmatch(text):  # as Asterisk writes it: what strptime reads
            return datetime.fromisoformat(text)  # too, in a fraction of its time
        return datetime.strptime(text, CDR_TIME_FORMAT)  # the lenient rest (`2026-1-5 ...`)
    except ValueError:
        raise CdrError(f"{text!r} is not a CDR time (YYYY-MM-DD HH:MM:SS)") from None


# `Cdr` event header -> CallRecord field (cdr/cdr_manager.c:312-335). The event spells
# UniqueID so; Linkedid is sent only when cdr_manager.conf `[mappings]` adds it.
_EVENT_FIELDS = {
    "accountcode": "accountcode",
    "source": "src",
    "destination": "dst",
    "destinationcontext": "dcontext",
    "callerid": "clid",
    "channel": "channel",
    "destinationchannel": "dstchannel",
    "lastapplication": "lastapp",
    "lastdata": "lastdata",
    "disposition": "disposition",
    "amaflags": "amaflags",
    "uniqueid": "uniqueid",
    "userfield": "userfield",
    "linkedid": "linkedid",
}
_EVENT_OTHER = frozenset(
    {
        "event",
        "privilege",
        "timestamp",
        "systemname",
        "starttime",
        "answertime",
        "endtime",
        "duration",
        "billableseconds",
    }
)


def call_record_from_event(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> CallRecord:
    """A cdr_manager `Cdr` event (its headers, in any letter case) as a CallRecord.

    Raises CdrError when StartTime or EndTime is missing or malformed, or Duration or
    BillableSeconds is not a number.
    """
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name.lower(), value)

    def get(name: str) -> str:
        return values.get(name, "")

    start = parse_cdr_time(get("starttime"))
    end = parse_cdr_time(get("endtime"))
    if start is None or end is None:
        raise CdrError("a Cdr event needs StartTime and EndTime")
    try:
        duration = int(get("duration") or 0)
        billsec = int(get("billableseconds") or 0)
    except ValueError:
        raise CdrError("Duration/BillableSeconds are not integers") from None
    fields = {attr: get(header) for header, attr in _EVENT_FIELDS.items()}
    extra = tuple(
        (name, value)
        for name, value in pairs
        if name.lower() not in _EVENT_FIELDS and name.lower() not in _EVENT_OTHER
    )
    return CallRecord(
        start=start,
        answer=parse_cdr_time(get("answertime")),
        end=end,
        duration=duration,
        billsec=billsec,
        extra=extra,
        **fields,
    )


def parse_cdr(msg: AmiMessage) -> CallRecord | None:
    """The call record in a `Cdr` event; None for any other message. Raises CdrError for a
    `Cdr` event that is not one (see `call_record_from_event`)."""
    if msg.kind != "event" or msg.name != "Cdr":
        return None
    return call_record_from_event(msg.headers)
