"""The call tracker's vocabulary: the changes it reports and the state it keeps per channel,
call and pop (`ami/tracker.py` holds the event handling). Sans-IO, like the tracker."""

from __future__ import annotations

import functools
from collections.abc import Collection, ItemsView, ValuesView
from dataclasses import dataclass, field

from ami.cdr import channel_extension
from ami.protocol import AmiMessage

RINGING = "ringing"
ANSWERED = "answered"
ENDED = "ended"

# Asterisk prints an empty caller id as `<unknown>` (manager_channels.c:565-640,
# docs/asterisk-protocol.md#ami-events).
UNKNOWN = "<unknown>"

# ChannelState 6 is Up (ast_state2str, main/channel.c:637-670).
STATE_UP = 6

# Device states in which an agent's phone is taken (docs/asterisk-protocol.md#device-state,
# main/devicestate.c:164-174).
BUSY_DEVICE_STATES = frozenset({"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})

# DialEnd statuses that end the dialled leg (docs/asterisk-protocol.md#ami-call-events);
# CONTINUE/GOTO do not.
DIAL_FAILED = frozenset({"BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "ABORT"})


@dataclass(frozen=True, slots=True)
class CallChange:
    """A step of one agent's pop.

    call_id: the Linkedid; uniqueid: the Uniqueid of the customer's leg (for an outbound call,
    the agent's originated channel) - the one Asterisk's CDR is written for; direction: "in" or
    "out"; number / name: the customer's ("" when unknown or private); agent: the extension;
    queue: the queue the call came through, or None; customer_id: `CENTRALITA_CUSTOMER_ID` when
    the customer-ID flow set it; channel: the agent's channel (e.g. `PJSIP/1001-0000002a`).
    """

    kind: str
    call_id: str
    uniqueid: str
    direction: str
    number: str
    name: str
    agent: str
    queue: str | None
    customer_id: str | None
    channel: str
    # The customer channel's language (`Language` of its channel block: CHANNEL(language),
    # which the language flow sets), "" when unknown or for outbound calls. Information for
    # the pop, not part of the change's identity (the order and replay tests compare those).
    language: str = field(default="", compare=False)


_C_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def c_unescape(text: str) -> str:
    """Undo Asterisk's C escaping of caller names and VarSet values (main/utils.c ast_escape_c;
    docs/asterisk-protocol.md#ami-events)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _C_ESCAPES:
            out.append(_C_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def clean_text(text: str) -> str:
    return "" if text == UNKNOWN else c_unescape(text)


class Lru:
    """A bounded set remembering the most recent keys (dead channels, finished legs)."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._items: dict[str, None] = {}

    def add(self, key: str) -> None:
        self._items[key] = None
        if len(self._items) > self._cap:
            del self._items[next(iter(self._items))]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def clear(self) -> None:
        self._items.clear()


_BLOCK_HEADERS = (
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "ChannelState",
    "Exten",
    "Language",
    "Context",
)


@functools.cache  # prefixes are the tracker's own few ("", "Dest", "Transferer", ...)
def _block_keys(prefix: str) -> tuple[str, ...]:
    """The lower-case names of `Chan.update_from`'s headers in a block with `prefix`."""
    return tuple((prefix + name).lower() for name in _BLOCK_HEADERS)


@dataclass(slots=True)
class Chan:
    uniqueid: str
    name: str
    agent: str | None
    linkedid: str = ""
    cid_num: str = ""
    cid_name: str = ""
    conn_num: str = ""
    conn_name: str = ""
    state: int = 0
    exten: str = ""
    context: str = ""
    queue: str | None = None
    bridge: str | None = None
    language: str = ""

    def update_from(self, msg: AmiMessage, prefix: str) -> None:
        """Take the caller ID, connected line, state, place and language a (prefixed) channel
        block carries; a header the block lacks leaves the known value alone."""
        # Looked up by their lower-case names at once: most events carry one or two blocks.
        cid_num, cid_name, conn_num, conn_name, state, exten, language, context = map(
            msg.folded().get, _block_keys(prefix)
        )
        if cid_num is not None:
            self.cid_num = clean_text(cid_num)
        if cid_name is not None:
            self.cid_name = clean_text(cid_name)
        if conn_num is not None:
            self.conn_num = clean_text(conn_num)
        if conn_name is not None:
            self.conn_name = clean_text(conn_name)
        if state is not None and state.isdigit():
            self.state = int(state)
        if exten is not None:
            self.exten = exten
        if language is not None:
            self.language = clean_text(language)
        if context is not None:
            self.context = context


@dataclass(slots=True)
class CallFacts:
    """What a call's first pop learnt about the customer, reused by later pops (transfers)."""

    uniqueid: str
    direction: str
    number: str
    name: str
    queue: str | None
    language: str = ""


@dataclass(slots=True)
class Pop:
    call_id: str
    agent: str
    uniqueid: str
    direction: str
    number: str
    name: str
    queue: str | None
    customer_id: str | None
    channel: str
    legs: set[str] = field(default_factory=set)
    answered: bool = False
    language: str = ""

    def change(self, kind: str) -> CallChange:
        return CallChange(
            kind=kind,
            call_id=self.call_id,
            uniqueid=self.uniqueid,
            direction=self.direction,
            number=self.number,
            name=self.name,
            agent=self.agent,
            queue=self.queue,
            customer_id=self.customer_id,
            channel=self.channel,
            language=self.language,
        )


class PopTable:
    """The open pops by (call id, agent), and how many each call has: whether a call still
    has one is asked as each of its channels goes, and a scan of every open pop then would
    grow with the calls under way (hundreds at 200 calls/s)."""

    def __init__(self) -> None:
        self._pops: dict[tuple[str, str], Pop] = {}
        self._per_call: dict[str, int] = {}

    def get(self, key: tuple[str, str]) -> Pop | None:
        return self._pops.get(key)

    def __getitem__(self, key: tuple[str, str]) -> Pop:
        return self._pops[key]

    def __setitem__(self, key: tuple[str, str], pop: Pop) -> None:
        if key not in self._pops:
            self._per_call[key[0]] = self._per_call.get(key[0], 0) + 1
        self._pops[key] = pop

    def pop(self, key: tuple[str, str]) -> Pop:
        pop = self._pops.pop(key)
        left = self._per_call[key[0]] - 1
        if left:
            self._per_call[key[0]] = left
        else:
            del self._per_call[key[0]]
        return pop

    def has_call(self, call_id: str) -> bool:
        """True while some agent has an open pop for `call_id`."""
        return call_id in self._per_call

    def values(self) -> ValuesView[Pop]:
        return self._pops.values()

    def items(self) -> ItemsView[tuple[str, str], Pop]:
        return self._pops.items()

    def clear(self) -> None:
        self._pops.clear()
        self._per_call.clear()


@dataclass(slots=True)
class Expect:
    agent: str
    number: str


class AgentDevices:
    """Which agent a channel, a device or a queue member interface belongs to."""

    def __init__(self, agents: Collection[str], driver_prefixes: Collection[str]) -> None:
        self.agents: frozenset[str] = frozenset()
        self._prefixes = frozenset(driver_prefixes)
        self.set_agents(agents)

    def set_agents(self, agents: Collection[str]) -> None:
        """The extensions that are agents, replaced; the driver prefixes are kept. A channel
        of an extension no longer listed stops counting as an agent's from the next lookup."""
        self.agents = frozenset(agents)

    def agent_of_channel(self, name: str) -> str | None:
        """The agent extension of a device channel (`PJSIP/1001-00000001` -> "1001")."""
        tech, slash, _ = name.partition("/")
        if not slash or tech not in self._prefixes:
            return None
        extension = channel_extension(name)  # the same rule as a call record's agent
        return extension if extension in self.agents else None

    def agent_of_device(self, device: str) -> str | None:
        tech, slash, rest = device.partition("/")
        if slash and tech in self._prefixes and rest in self.agents:
            return rest
        return None

    def agent_of_interface(self, interface: str) -> str | None:
        # Queue members are `PJSIP/1001`, `SIP/1001` or `Local/1001@ctx/n`
        # (docs/asterisk-protocol.md#queues).
        agent = self.agent_of_device(interface)
        if agent is None and interface.startswith("Local/"):
            exten = interface[6:].partition("@")[0]
            agent = exten if exten in self.agents else None
        return agent
