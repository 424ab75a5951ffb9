"""The FastAGI wire protocol, sans-IO: bytes in, events out; commands encoded in one place.

This module does no I/O and imports no asyncio (the h11 style). `AgiConnection` is the
server's half of one FastAGI session: feed it what Asterisk sent with `receive_data()`, and it
returns the events it could complete. `encode_command()` is the only way a command line is
built, so no value can smuggle a second command onto the wire.

Facts relied on are cited from Asterisk 20.20.1 (`res/res_agi.c`) through
`asterisk-protocol.md` and checked against the recorded traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

# Caps on what one peer can make us buffer. Asterisk's own command buffer is AGI_BUF_LEN 8192
# (res_agi.c:1551); a header block is ~25 lines of at most a few hundred bytes.
MAX_LINE = 8 * 1024
MAX_HEADERS = 16 * 1024

# A `520-` usage block is free text of unknown length (res_agi.c:4273-4277): bounded too.
MAX_USAGE_LINES = 200


class AgiProtocolError(Exception):
    """The peer broke the protocol (oversized input, EOF mid-message, malformed line)."""


class AgiEncodeError(ValueError):
    """A value cannot be sent as an AGI argument (it holds a line break or NUL)."""


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """The header block Asterisk sends first (asterisk-protocol.md §1.2)."""

    network: bool
    network_script: str  # raw, including any ?query (res_agi.c:2276-2279); "" when absent
    script: str  # the script name without the query
    query: tuple[tuple[str, str], ...]
    request: str
    channel: str
    language: str
    type: str
    uniqueid: str
    version: str
    callerid: str
    calleridname: str
    callingpres: int
    callingani2: int
    callington: int
    callingtns: int
    dnid: str
    rdnis: str
    context: str
    extension: str
    priority: str
    enhanced: str
    accountcode: str
    threadid: str
    args: tuple[str, ...]  # agi_arg_1.. in order (1-based on the wire, no agi_arg_0)
    headers: tuple[tuple[str, str], ...]  # every line as received, in order

    def query_value(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter of the script (`language?lang=en`)."""
        for key, value in self.query:
            if key == name:
                return value
        return default

    def arg(self, index: int, default: str = "") -> str:
        """agi_arg_N, 1-based like the wire (missing arguments give `default`)."""
        if 1 <= index <= len(self.args):
            return self.args[index - 1]
        return default


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer to one command.

    `code` is 200, 510, 511 or 520. For 200, `result` is the text after `result=` (a digit
    string for GET DATA, which may be empty: §1.8), `data` the parenthesised part (without the
    parentheses) and `endpos` the `endpos=` value when present.
    """

    code: int
    result: str = ""
    data: str | None = None
    endpos: int | None = None
    text: str = ""  # the raw first line, for logs
    usage: tuple[str, ...] = ()  # the body of a multi-line 520 block

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int:
        """`result` as an integer; -1 when it is not one (e.g. a GET DATA digit string)."""
        try:
            return int(self.result)
        except ValueError:
            return -1


@dataclass(frozen=True, slots=True)
class Hangup:
    """The unsolicited `HANGUP` line (res_agi.c:4369, 4488); it may precede any reply."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Asterisk closed the socket at a message boundary."""


Event = AgiRequest | Reply | Hangup | ConnectionClosed

_INT_FIELDS = ("callingpres", "callingani2", "callington", "callingtns")
_STR_FIELDS = (
    "request",
    "channel",
    "language",
    "type",
    "uniqueid",
    "version",
    "callerid",
    "calleridname",
    "dnid",
    "rdnis",
    "context",
    "extension",
    "priority",
    "enhanced",
    "accountcode",
    "threadid",
)


# Header values that come from the caller or the network, in Asterisk's order (§1.2), each with
# the header that must follow it.
_NEXT_HEADER = {
    "agi_callerid": "agi_calleridname: ",
    "agi_calleridname": "agi_callingpres: ",
    "agi_dnid": "agi_rdnis: ",
    "agi_rdnis": "agi_context: ",
}
_STRANGER_FIELDS = frozenset(_NEXT_HEADER)


def build_request(headers: list[tuple[str, str]]) -> AgiRequest:
    """Turn the `agi_*` header lines into a typed request."""
    fields: dict[str, str] = {}
    args: dict[int, str] = {}
    for key, value in headers:
        if not key.startswith("agi_"):
            raise AgiProtocolError(f"header {key!r} is not an agi_* variable")
        name = key[4:]
        if name.startswith("arg_"):
            try:
                index = int(name[4:])
            except ValueError:
                raise AgiProtocolError(f"bad argument header {key!r}") from None
            args[index] = value
        else:
            fields[name] = value
    if sorted(args) != list(range(1, len(args) + 1)):
        raise AgiProtocolError(f"agi_arg_N headers are not numbered 1..N: {sorted(args)}")
    network_script = fields.get("network_script", "")
    script, _, query_text = network_script.partition("?")
    query = tuple(
        (key, value)
        for key, values in parse_qs(query_text, keep_blank_values=True).items()
        for value in values
    )
    ints: dict[str, int] = {}
    for name in _INT_FIELDS:
        try:
            ints[name] = int(fields.get(name, "0") or "0")
        except ValueError:
            raise AgiProtocolError(f"agi_{name} is not an integer: {fields[name]!r}") from None
    return AgiRequest(
        network=fields.get("network") == "yes",
        network_script=network_script,
        script=script.strip("/"),
        query=query,
        args=tuple(args[i] for i in range(1, len(args) + 1)),
        headers=tuple(headers),
        callingpres=ints["callingpres"],
        callingani2=ints["callingani2"],
        callington=ints["callington"],
        callingtns=ints["callingtns"],
        **{name: fields.get(name, "") for name in _STR_FIELDS},
    )


def parse_reply_line(line: str) -> Reply:
    """Parse one complete reply line (`200 result=...`, `510 ...`, `511 ...`, `520 ...`)."""
    code_text, _, rest = line.partition(" ")
    if code_text == "200":
        if not rest.startswith("result="):
            raise AgiProtocolError(f"200 reply without result=: {line!r}")
        rest = rest[7:]
        result, _, rest = rest.partition(" ")
        endpos: int | None = None
        # `endpos=` always comes last (res_agi.c:2774-2775, RECORD FILE 3144-3247).
        head, sep, tail = rest.rpartition(" endpos=")
        if not sep and rest.startswith("endpos="):
            head, sep, tail = "", "x", rest[7:]
        if sep and tail.isdigit():
            endpos = int(tail)
            rest = head
        data: str | None = None
        if rest.startswith("(") and rest.endswith(")"):
            # The value may itself hold parentheses or spaces: take the outermost pair.
            data = rest[1:-1]
        elif rest:
            raise AgiProtocolError(f"unexpected text after result: {line!r}")
        return Reply(200, result, data, endpos, line)
    if code_text in ("510", "511", "520"):
        return Reply(int(code_text), text=line)
    raise AgiProtocolError(f"not an AGI reply: {line!r}")


class AgiConnection:
    """Server side of one FastAGI session, sans-IO.

    States: reading the header block, then reading replies. `receive_data(b"")` means EOF.
    """

    __slots__ = ("_buffer", "_header_bytes", "_headers", "_in_headers", "_usage", "closed")

    def __init__(self) -> None:
        self._buffer = b""
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._in_headers = True
        self._usage: list[str] | None = None  # inside a `520-` block
        self.closed = False

    @property
    def in_headers(self) -> bool:
        return self._in_headers

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the socket (b"" = EOF) and return the completed events."""
        if self.closed:
            if data:
                raise AgiProtocolError("data after the connection closed")
            return []
        if not data:
            return self._eof()
        buffer = self._buffer + data if self._buffer else data
        events: list[Event] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line_bytes = buffer[start:end]
            if end - start > MAX_LINE:
                raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
            start = end + 1
            event = self._line(line_bytes)
            if event is not None:
                events.append(event)
        rest = buffer[start:]
        if len(rest) > MAX_LINE:
            raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
        if self._in_headers and self._header_bytes + len(rest) > MAX_HEADERS:
            raise AgiProtocolError(f"header block larger than {MAX_HEADERS} bytes")
        self._buffer = rest
        return events

    def _eof(self) -> list[Event]:
        self.closed = True
        if self._buffer or (self._in_headers and self._headers) or self._usage is not None:
            where = "header block" if self._in_headers else "reply"
            raise AgiProtocolError(f"connection closed in the middle of a {where}")
        return [ConnectionClosed()]

    def _line(self, raw: bytes) -> Event | None:
        # Only `\n` ends a line (res_agi.c:4447-4451); Asterisk never sends `\r`, and a stray
        # one is kept as data rather than silently dropped.
        line = raw.decode("utf-8", "surrogateescape")
        if self._in_headers:
            self._header_bytes += len(raw) + 1
            if self._header_bytes > MAX_HEADERS:
                raise AgiProtocolError(f"header block larger than {MAX_HEADERS} bytes")
            if not line:
                self._in_headers = False
                return build_request(self._headers)
            key, sep, value = line.partition(": ")
            if self._headers and self._headers[-1][0] in _STRANGER_FIELDS:
                # Asterisk writes these values raw (`agi_calleridname: %s\n`, res_agi.c:2499),
                # so a caller name holding a newline spills onto extra lines. The order of the
                # block is fixed (§1.2): until the next expected header, a line is part of
                # the stranger's value, never a header of its own.
                previous = self._headers[-1][0]
                if not line.startswith(_NEXT_HEADER[previous]):
                    self._headers[-1] = (previous, self._headers[-1][1] + "\n" + line)
                    return None
            if not sep:
                # `agi_accountcode: ` with an empty value still has ": " (res_agi.c:2517);
                # be lenient with a bare `key:` too.
                if line.endswith(":"):
                    key, value = line[:-1], ""
                else:
                    raise AgiProtocolError(f"malformed header line {line!r}")
            self._headers.append((key, value))
            return None
        if self._usage is not None:
            # Inside `520-...`: lines are not prefixed; `520 ` (with a space) ends the block.
            if line.startswith("520 "):
                usage = tuple(self._usage)
                self._usage = None
                return Reply(520, text=line, usage=usage)
            if len(self._usage) >= MAX_USAGE_LINES:
                raise AgiProtocolError("520 usage block too long")
            self._usage.append(line)
            return None
        if line == "HANGUP":
            return Hangup()
        if line.startswith("520-"):
            self._usage = []
            return None
        if line.startswith("200 result="):
            # Fast path for the most common replies: `200 result=N` with nothing after.
            rest = line[11:]
            if " " not in rest:
                return Reply(200, rest, None, None, line)
        return parse_reply_line(line)


# ---------------------------------------------------------------------------------------------
# Encoding: the one place where values become command text.

_FORBIDDEN = ("\n", "\r", "\0")
_NEEDS_QUOTES = frozenset(' \t"\\')


def quote_arg(value: str) -> str:
    """Encode one argument so that parse_args (res_agi.c:4158-4218) gives back `value`.

    A line break would end the command and start another (§1.3), NUL cannot be sent; both are
    refused. Other values are sent bare when that is unambiguous, else in double quotes with
    `\\` and `"` escaped (parse_args drops the quotes and the escaping backslash).
    """
    for bad in _FORBIDDEN:
        if bad in value:
            raise AgiEncodeError(f"AGI argument contains {bad!r}: {value!r}")
    if value and not any(c in _NEEDS_QUOTES for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_command(command: str, *args: str | int) -> bytes:
    """Build one command line: the fixed command words, then each argument encoded.

    `command` is one of our own literals (e.g. ``"STREAM FILE"``), never caller data.
    """
    parts = [command]
    for arg in args:
        parts.append(str(arg) if isinstance(arg, int) else quote_arg(arg))
    return (" ".join(parts) + "\n").encode("utf-8")
