"""The FastAGI wire protocol, sans-IO: bytes in, events out; commands encoded in one place.

This module does no I/O and imports no asyncio (the h11 style), and nothing of the package but
the optional C reader of the first read (agi/_headerblock.c, through agi/speedups.py).
`AgiConnection` is the server's half of one FastAGI session: feed it what Asterisk sent with
`receive_data()`, and it returns the events it could complete. `encode_command()` is the only
way a command line is built, so no value can smuggle a second command onto the wire.

The facts about Asterisk relied on are in docs/asterisk-protocol.md#fastagi (read in
`res/res_agi.c` of Asterisk 20.20.1) and checked against the recorded traces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from agi import speedups

# Caps on what one peer can make us buffer. Asterisk's own command buffer is AGI_BUF_LEN 8192
# (res_agi.c:1551); a header block is ~25 lines of at most a few hundred bytes.
MAX_LINE = 8 * 1024
MAX_HEADERS = 16 * 1024

# A `520-` usage block is free text of unknown length (res_agi.c:4273-4277): bounded too.
MAX_USAGE_LINES = 200


class AgiError(Exception):
    """The base of every error the agi package raises: `except AgiError` catches them all.

    This module is the leaf of the package (sans-IO, imports nothing of it), so the base
    lives here; the session's errors (CallerHangup, AgiCommandError, ReplyTimeout) and the
    router's DuplicateFlowError derive from it.
    """


class AgiProtocolError(AgiError):
    """The peer broke the protocol (oversized input, EOF mid-message, malformed line)."""


class AgiEncodeError(AgiError, ValueError):
    """A value cannot be sent as an AGI argument (it holds a line break or NUL)."""


# ---------------------------------------------------------------------------------------------
# Events


class _Header:
    """A header of the block as an attribute: `request.uniqueid` is `agi_uniqueid`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, request: AgiRequest, owner: type | None = None) -> str:
        return request.fields.get(self.name, "")


class _IntHeader(_Header):
    """An integer header (0 when absent or malformed)."""

    def __get__(self, request: AgiRequest, owner: type | None = None) -> int:  # type: ignore[override]
        try:
            return int(request.fields.get(self.name) or 0)
        except ValueError:
            return 0


# Header values that come from the caller or the network, in Asterisk's order
# (docs/asterisk-protocol.md#agi-headers), each with the header that must follow it.
_NEXT_HEADER = {
    "agi_callerid": "agi_calleridname: ",
    "agi_calleridname": "agi_callingpres: ",
    "agi_dnid": "agi_rdnis: ",
    "agi_rdnis": "agi_context: ",
}
_STRANGER_FIELDS = frozenset(_NEXT_HEADER)


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """The header block Asterisk sends first (docs/asterisk-protocol.md#agi-headers).

    Every `agi_<name>` header is available as `request.<name>` (`uniqueid`, `channel`,
    `callerid`, `calleridname`, `language`, `context`, ...); `args` are `agi_arg_1..N` in order
    (1-based on the wire, no agi_arg_0); `script` is the script name without its `?query`.
    """

    fields: dict[str, str]  # agi_<name> -> value, without the `agi_` prefix or arguments
    args: tuple[str, ...]
    script: str
    query: tuple[tuple[str, str], ...]
    # Every line as received, in order, as (name without `agi_`, value): `headers` gives them
    # whole. Kept as parsed and joined only when asked for, which nothing does on a call's
    # path; None for a block in Asterisk's order, whose lines are the fields, then the args.
    lines: Sequence[Sequence[str]] | None = field(compare=False, repr=False)

    network_script = _Header("network_script")  # raw, with any ?query (res_agi.c:2276-2279)
    request = _Header("request")
    channel = _Header("channel")
    language = _Header("language")
    type = _Header("type")
    uniqueid = _Header("uniqueid")
    version = _Header("version")
    callerid = _Header("callerid")
    calleridname = _Header("calleridname")
    callingpres = _IntHeader("callingpres")
    callingani2 = _IntHeader("callingani2")
    callington = _IntHeader("callington")
    callingtns = _IntHeader("callingtns")
    dnid = _Header("dnid")
    rdnis = _Header("rdnis")
    context = _Header("context")
    extension = _Header("extension")
    priority = _Header("priority")
    enhanced = _Header("enhanced")
    accountcode = _Header("accountcode")
    threadid = _Header("threadid")

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Every header line as received, in order: (`agi_<name>`, value)."""
        lines = self.lines
        if lines is None:  # a block in Asterisk's order (`_asterisk_request`)
            numbered = ((f"arg_{n}", value) for n, value in enumerate(self.args, 1))
            lines = (*self.fields.items(), *numbered)
        return tuple(("agi_" + name, value) for name, value in lines)

    @property
    def network(self) -> bool:
        return self.fields.get("network") == "yes"

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
    string for GET DATA, which may be empty: docs/asterisk-protocol.md#get-data), `data` the
    parenthesised part (without the parentheses) and `endpos` the `endpos=` value when present.
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


def build_request(headers: list[tuple[str, str]]) -> AgiRequest:
    """Turn the `agi_*` header lines into a typed request."""
    fields: dict[str, str] = {}
    args: dict[int, str] = {}
    for key, value in headers:
        if key[:4] != "agi_":
            raise AgiProtocolError(f"header {key!r} is not an agi_* variable")
        if key[4:8] == "arg_":
            try:
                args[int(key[8:])] = value
            except ValueError:
                raise AgiProtocolError(f"bad argument header {key!r}") from None
        else:
            fields[key[4:]] = value
    if args and sorted(args) != list(range(1, len(args) + 1)):
        raise AgiProtocolError(f"agi_arg_N headers are not numbered 1..N: {sorted(args)}")
    lines = tuple((key[4:], value) for key, value in headers)
    return _request(fields, tuple(args[i] for i in range(1, len(args) + 1)), lines)


def _request(
    fields: dict[str, str], args: tuple[str, ...], lines: Sequence[Sequence[str]] | None
) -> AgiRequest:
    script, _, query_text = fields.get("network_script", "").partition("?")
    query: tuple[tuple[str, str], ...] = ()
    if query_text:
        query = tuple(
            (key, value)
            for key, values in parse_qs(query_text, keep_blank_values=True).items()
            for value in values
        )
    return AgiRequest(fields, args, script.strip("/"), query, lines)


# The header block as Asterisk writes it for FastAGI: `agi_network` and `agi_network_script`
# (res_agi.c launch_netscript), then setup_env's lines, always these and in this order, then
# `agi_arg_1..N` (docs/asterisk-protocol.md#agi-headers; both versions' traces in
# tests/fixtures/agi-fidelity). No value holds a line break, so a caller-supplied value
# that spilled onto the next line breaks the order and is left to the careful loop.
ASTERISK_HEADERS = (
    "network", "network_script", "request", "channel", "language", "type", "uniqueid",
    "version", "callerid", "calleridname", "callingpres", "callingani2", "callington",
    "callingtns", "dnid", "rdnis", "context", "extension", "priority", "enhanced",
    "accountcode", "threadid",
)  # fmt: skip
_ASTERISK_BLOCK = re.compile(
    "\n".join(f"agi_{name}: (?P<{name}>[^\n]*)" for name in ASTERISK_HEADERS)
    + "(?P<arg_lines>(?:\nagi_arg_[^\n]*)*)"
)
_ARG_LINE = re.compile("\nagi_arg_([1-9][0-9]*): ([^\n]*)")


# `split_block(data, ASTERISK_HEADERS)`: the fields and arguments of a whole first read in
# Asterisk's order, else None; what `_asterisk_request` gives, without the regex engine.
_headerblock = speedups.load("_headerblock")
_SplitBlock = Callable[[bytes, tuple[str, ...]], tuple[dict[str, str], tuple[str, ...]] | None]
_split_block: _SplitBlock | None = None if _headerblock is None else _headerblock.split_block
# `request_of(AgiRequest, fields, args)`: what `_request` makes of them when the script has no
# `?query` (else None), with the request's slots set in C instead of its __init__.
_RequestOf = Callable[[type, dict[str, str], tuple[str, ...]], "AgiRequest | None"]
_request_of: _RequestOf | None = None if _headerblock is None else _headerblock.request_of


def _asterisk_request(text: str) -> AgiRequest | None:
    """The request of a block in Asterisk's own order (`ASTERISK_HEADERS`, then the
    arguments numbered 1..N), else None: the careful loop of `AgiConnection` reads it.

    What `build_request` gives for such a block, read by one regular expression: C does the
    per-line work, and the block is read once per call."""
    match = _ASTERISK_BLOCK.fullmatch(text)
    if match is None:
        return None
    fields = match.groupdict()
    arg_lines = fields.pop("arg_lines")
    args: tuple[str, ...] = ()
    if arg_lines:
        numbered = _ARG_LINE.findall(arg_lines)
        if sum(len(n) + len(v) + 11 for n, v in numbered) != len(arg_lines):
            return None  # an argument line that is not `agi_arg_N: value`
        if [int(n) for n, _ in numbered] != list(range(1, len(numbered) + 1)):
            return None  # not numbered 1..N: the careful path says so
        args = tuple(value for _, value in numbered)
    return _request(fields, args, None)


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

    __slots__ = ("_buffer", "_headers", "_in_headers", "_usage", "between_replies", "closed")

    def __init__(self) -> None:
        self._buffer = b""
        self._headers: list[tuple[str, str]] = []
        self._in_headers = True
        self._usage: list[str] | None = None  # inside a `520-` block
        self.closed = False
        # True while a read may be taken whole as one reply: the headers are done, nothing
        # is buffered, no `520-` block is open and the connection is not closed. Kept by
        # `receive_data`, so the reply path (agi/cores.py, in C or Python) reads one field.
        self.between_replies = False

    @property
    def in_headers(self) -> bool:
        return self._in_headers

    def receive_reply(self, data: bytes) -> Reply | None:
        """The common read, in one step: `data` is exactly one `200 result=N` line (N a key's
        ASCII code, 0, 1 or -1) arriving between messages; its Reply, else None (nothing is
        consumed: give `data` to `receive_data`).

        Asterisk writes each reply with one ast_agi_send (res_agi.c agi_handle_command), so
        nearly every read is this; it costs a table lookup, without the event list.
        """
        if not self.between_replies:
            return None
        return _SIMPLE_REPLIES.get(data)

    def receive_headers(self, data: bytes) -> AgiRequest | None:
        """The first read, in one step: `data` is exactly a whole header block in Asterisk's
        own order (`ASTERISK_HEADERS`), nothing before it; its request, else None (nothing is
        consumed: give `data` to `receive_data`).

        Asterisk writes the block as soon as it connects, and it fits one read (about 500
        bytes, docs/asterisk-protocol.md#agi-headers); what `receive_data` gives for it, with
        no event list and no search for the block's end."""
        if (
            not self._in_headers
            or self._buffer
            or len(data) > MAX_LINE  # so that no line of it can be too long
            or data[-2:] != b"\n\n"
        ):
            return None
        if _split_block is not None:  # agi/_headerblock.c: the same as the expression, in C
            split = _split_block(data, ASTERISK_HEADERS)
            request = None
            if split is not None:
                request = _request_of(AgiRequest, *split)  # type: ignore[misc]
                if request is None:  # a script with a ?query
                    request = _request(*split, None)
        else:
            # Only `\n` ends a line (res_agi.c:4447-4451); a stray `\r` stays data.
            request = _asterisk_request(data[:-2].decode("utf-8", "surrogateescape"))
        if request is not None:
            self._in_headers = False
            self.between_replies = True
        return request

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the socket (b"" = EOF) and return the completed events."""
        self.between_replies = False  # and so it stays if the peer broke the protocol
        events = self._receive(data)
        self.between_replies = (
            not self._buffer and not self._in_headers and self._usage is None and not self.closed
        )
        return events

    def _receive(self, data: bytes) -> list[Event]:
        if self.closed:
            if data:
                raise AgiProtocolError("data after the connection closed")
            return []
        if not data:
            return self._eof()
        if not self._buffer and not self._in_headers and self._usage is None:
            # The common read: exactly one whole reply line (Asterisk writes each reply with
            # one ast_agi_send, res_agi.c agi_handle_command), nothing buffered before it.
            end = data.find(b"\n")
            if end == len(data) - 1 and end <= MAX_LINE:
                reply = _SIMPLE_REPLIES.get(data)
                if reply is not None:
                    return [reply]
                event = self._line(data[:end])
                return [] if event is None else [event]
        buffer = self._buffer + data if self._buffer else data
        events: list[Event] = []
        start = 0
        if self._in_headers:
            start = self._header_block(buffer, events)
            if self._in_headers:
                return events
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if end - start > MAX_LINE:
                raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
            event = self._line(buffer[start:end])
            start = end + 1
            if event is not None:
                events.append(event)
        rest = buffer[start:] if start else buffer
        if len(rest) > MAX_LINE:
            raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
        self._buffer = rest
        return events

    def _header_block(self, buffer: bytes, events: list[Event]) -> int:
        """Parse the header block once it is complete; returns where the replies start."""
        if buffer.startswith(b"\n"):
            end = 0  # an empty block
        else:
            end = buffer.find(b"\n\n")
            if end < 0:
                if len(buffer) > MAX_HEADERS:
                    raise AgiProtocolError(f"header block larger than {MAX_HEADERS} bytes")
                if len(buffer) - buffer.rfind(b"\n") - 1 > MAX_LINE:
                    raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
                self._buffer = buffer
                return len(buffer)
            end += 1  # keep the last header's newline in the block
        if end + 1 > MAX_HEADERS:
            raise AgiProtocolError(f"header block larger than {MAX_HEADERS} bytes")
        if end > MAX_LINE and max(map(len, buffer[:end].split(b"\n"))) > MAX_LINE:
            raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
        if end:
            # Only `\n` ends a line (res_agi.c:4447-4451); a stray `\r` stays data.
            text = buffer[: end - 1].decode("utf-8", "surrogateescape")
            request = _asterisk_request(text)
            if request is not None:
                self._in_headers = False
                self._buffer = b""
                events.append(request)
                return end + 1
            lines = text.split("\n")
            headers = self._headers
            stranger = False
            for line in lines:
                if stranger and not line.startswith(_NEXT_HEADER[headers[-1][0]]):
                    # Asterisk writes these values raw (`agi_calleridname: %s\n`,
                    # res_agi.c:2499), so a caller name holding a newline spills onto extra
                    # lines. The block's order is fixed (docs/asterisk-protocol.md#agi-headers):
                    # until the next expected header, a line is part of the stranger's value, never
                    # a header.
                    headers[-1] = (headers[-1][0], headers[-1][1] + "\n" + line)
                    continue
                key, sep, value = line.partition(": ")
                if not sep:
                    # `agi_accountcode: ` keeps its ": " when empty (res_agi.c:2517); be
                    # lenient with a bare `key:` too.
                    if not line.endswith(":"):
                        raise AgiProtocolError(f"malformed header line {line!r}")
                    key, value = line[:-1], ""
                headers.append((key, value))
                stranger = key in _STRANGER_FIELDS
        self._in_headers = False
        self._buffer = b""
        events.append(build_request(self._headers))
        return end + 1

    def _eof(self) -> list[Event]:
        self.closed = True
        if self._buffer or (self._in_headers and self._headers) or self._usage is not None:
            where = "header block" if self._in_headers else "reply"
            raise AgiProtocolError(f"connection closed in the middle of a {where}")
        return [ConnectionClosed()]

    def _line(self, raw: bytes) -> Event | None:
        line = raw.decode("utf-8", "surrogateescape")
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
                return _SIMPLE_REPLIES.get(raw + b"\n") or Reply(200, rest, None, None, line)
        return parse_reply_line(line)


def _simple_reply(result: str) -> Reply:
    return Reply(200, result, None, None, f"200 result={result}")


# The replies most commands get, `200 result=N` alone (a key's ASCII code, 0, 1, -1), parsed
# once: Reply is immutable, so every session can share them. A fixed table, never grown by
# what a peer sends.
_SIMPLE_REPLIES: dict[bytes, Reply] = {
    f"200 result={n}\n".encode(): _simple_reply(str(n)) for n in range(-2, 256)
}


# ---------------------------------------------------------------------------------------------
# Encoding: the one place where values become command text.

_FORBIDDEN_RE = re.compile("[\n\r\0]")
_NEEDS_QUOTES_RE = re.compile('[ \t"\\\\]')


def quote_arg(value: str) -> str:
    """Encode one argument so that parse_args (res_agi.c:4158-4218) gives back `value`.

    A line break would end the command and start another
    (docs/asterisk-protocol.md#agi-command-lines), NUL cannot be sent; both are refused. Other
    values are sent bare when that is unambiguous, else in double quotes with `\\` and `"` escaped
    (parse_args drops the quotes and the escaping backslash).
    """
    bad = _FORBIDDEN_RE.search(value)
    if bad is not None:
        raise AgiEncodeError(f"AGI argument contains {bad.group()!r}: {value!r}")
    if value and _NEEDS_QUOTES_RE.search(value) is None:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Lines already encoded: flows send the same commands call after call (their prompts,
# variable names, timeouts). Bounded: emptied when full, and only short lines are kept, so a
# peer's values cannot make it grow.
_ENCODED: dict[tuple[object, ...], bytes] = {}
MAX_ENCODED = 1024
MAX_ENCODED_LINE = 256


def encode_command(command: str, *args: str | int) -> bytes:
    """Build one command line: the fixed command words, then each argument encoded.

    `command` is one of our own literals (e.g. ``"STREAM FILE"``), never caller data.
    """
    # A line whose arguments are all strings is kept under (command, args), found with one
    # small tuple: only strings equal strings, so what matches it encodes the same. Any other
    # under (command, *args, *their types): 1, True and 1.0 are equal keys, but encode
    # differently (or not at all).
    key: tuple[object, ...] = ()
    try:
        line = _ENCODED.get((command, args))
        if line is None:
            key = (command, *args, *map(type, args))
            line = _ENCODED.get(key)
    except TypeError:  # an unhashable argument: quote_arg refuses it below
        line = None
    if line is not None:
        return line
    parts = [command]
    for arg in args:
        parts.append(str(arg) if isinstance(arg, int) else quote_arg(arg))
    line = (" ".join(parts) + "\n").encode("utf-8")
    if key and len(line) <= MAX_ENCODED_LINE:
        if len(_ENCODED) >= MAX_ENCODED:
            _ENCODED.clear()
        if all(type(arg) is str for arg in args):
            key = (command, args)
        _ENCODED[key] = line
    return line
