"""The AMI wire protocol, sans-IO: bytes in, messages out; everything sent is encoded in one place.

This module does no I/O and imports no asyncio (the h11 style). `AmiParser` turns what the
manager port sent into `AmiMessage`s; `encode_action()` / `encode_packet()` are the only way
bytes for the wire are built, so no header value can smuggle a second header or packet.

The facts about Asterisk relied on are in docs/asterisk-protocol.md#ami (read in
`main/manager.c` of Asterisk 20.20.1) and checked against the recordings in
`asterisk-traces/ami-*.txt`.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Caps on what one peer can make us buffer. Asterisk's own input line is 1024 bytes
# (main/manager.c:298); its output lines are bounded only by the values it prints (a long
# `VarSet` value, a `Command` output line), so we allow 8 KiB per line and 64 KiB per packet.
MAX_LINE = 8 * 1024
MAX_PACKET = 64 * 1024

# Asterisk writes this single line, without a blank line after it, on connect
# (main/manager.c:7445; AMI_VERSION include/asterisk/manager.h:57).
BANNER_PREFIX = "Asterisk Call Manager/"

# Old (pre-13) `Command` responses: `Response: Follows` then raw output ending in this marker.
# Asterisk 20 no longer sends it (docs/asterisk-protocol.md#ami-command) but a lenient reader copes.
END_COMMAND = "--END COMMAND--"

_KINDS = {"response": "response", "event": "event", "action": "action"}


class AmiError(Exception):
    """The base of every error the ami package raises: `except AmiError` catches them all.

    Here, in the package's sans-IO leaf, so the parser's and the encoder's errors share it
    with the client's (AmiNotConnected, AmiAuthError, AmiTimeout) and OriginateRefused.
    """


class AmiProtocolError(AmiError):
    """The peer broke the framing: an oversized line or packet, or EOF in mid-packet."""


class AmiEncodeError(AmiError, ValueError):
    """A value cannot be sent in an AMI packet (CR, LF or NUL; a bad header name)."""


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI packet: its kind and its headers, in order, duplicates kept.

    `kind` is "response", "event", "action" (what a client sends), "banner" (the first line
    of a session; its one header is `Banner`) or "unknown" (a packet whose first header is
    none of Response/Event/Action). Header names keep their case; lookups ignore it.
    """

    kind: str
    headers: tuple[tuple[str, str], ...]
    _index: dict[str, str] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def _lookup(self) -> dict[str, str]:
        # Built on first use: most events are skipped by name alone. First occurrence wins, as
        # in Asterisk's own astman_get_header (main/manager.c:1628-1655). The lookups below
        # call this only while it is empty: a dozen lookups an event, thousands of events a
        # second.
        index = self._index
        if not index and self.headers:
            for name, value in reversed(self.headers):
                index[name.lower()] = value
        return index

    @classmethod
    def build(cls, headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> AmiMessage:
        """A message from headers; the kind comes from the first header's name."""
        items = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)
        kind = _KINDS.get(items[0][0].lower(), "unknown") if items else "unknown"
        return cls(kind, items)

    @property
    def name(self) -> str:
        """The value of the first header: the event, response or action name."""
        return self.headers[0][1] if self.headers else ""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (case-insensitive), else `default`."""
        return (self._index or self._lookup()).get(name.lower(), default)

    def value(self, name: str) -> str:
        """The first value of header `name`, or "" when absent."""
        return (self._index or self._lookup()).get(name.lower(), "")

    def folded(self) -> Mapping[str, str]:
        """Every header by its lower-case name (the first value of each), for a reader that
        looks up many names it already holds in lower case (ami/calls.py)."""
        return self._index or self._lookup()

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name`, in order (e.g. `Output`, `ChanVariable`)."""
        key = name.lower()
        return [v for n, v in self.headers if n.lower() == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in (self._index or self._lookup())

    @property
    def action_id(self) -> str | None:
        return (self._index or self._lookup()).get("actionid")

    @property
    def is_success(self) -> bool:
        """True for `Response: Success` (and `Goodbye`, `Follows`), False for `Error`."""
        return self.kind == "response" and self.name.lower() in ("success", "goodbye", "follows")


class AmiParser:
    """Frames an AMI byte stream into messages.

    `receive_data(data)` returns the messages completed by `data`; call `receive_eof()` when
    the peer closed. Lines may end in CRLF or bare LF (Asterisk reads both,
    main/manager.c:7188-7193; the traces are LF-only). A packet ends at an empty line; runs of
    empty lines are ignored. Each packet is decoded as UTF-8 with invalid sequences replaced,
    so a hostile caller name can never raise. After an `AmiProtocolError` the stream is out of
    sync: close the connection.
    """

    def __init__(self, *, expect_banner: bool = True) -> None:
        self._buf = bytearray()
        self._checked = 0  # the unfinished bytes before this offset passed the line cap
        self._expect_banner = expect_banner
        self.banner: str | None = None

    def receive_data(self, data: bytes) -> list[AmiMessage]:
        """Feed bytes; return every message they complete."""
        buf = self._buf
        buf += data
        out: list[AmiMessage] = []
        pos = 0
        if self._expect_banner:
            nl = buf.find(b"\n")
            if nl < 0:
                self._check_tail()
                return out
            self._expect_banner = False
            line = bytes(buf[:nl]).rstrip(b"\r").decode("utf-8", errors="replace")
            if line.startswith(BANNER_PREFIX):
                self.banner = line
                out.append(AmiMessage("banner", (("Banner", line),)))
                pos = nl + 1
        # Fast path: Asterisk frames every packet with CRLF and ends it with an empty line
        # (main/manager.c astman_append, send_string); the complete packets in the buffer
        # are then parsed in one go (`_packets`). Anything else (LF only, old-style
        # `Response: Follows` with blank lines in its output, a packet or line over its cap)
        # takes the general loop below.
        last = buf.rfind(b"\r\n\r\n")
        if last >= pos and _packets(bytes(buf[pos : last + 4]), out):
            pos = last + 4
        size = len(buf)
        while pos < size:
            # Blank lines between packets are not packets.
            if buf[pos] == 0x0A:
                pos += 1
                continue
            if buf[pos] == 0x0D and buf.startswith(b"\r\n", pos):
                pos += 2
                continue
            if buf[pos : pos + len(_FOLLOWS)].lower() == _FOLLOWS:
                end = self._follows_end(pos)
                if end is None:
                    break
                body_end, next_pos = end
            else:
                match = _PACKET_END.search(buf, pos)
                if match is None:
                    break
                body_end, next_pos = match.start(), match.end()
            if next_pos - pos > MAX_PACKET:
                raise AmiProtocolError(f"packet larger than {MAX_PACKET} bytes")
            packet = bytes(buf[pos:body_end])
            if len(packet) > MAX_LINE and max(map(len, packet.split(b"\n"))) > MAX_LINE + 1:
                raise AmiProtocolError(f"line longer than {MAX_LINE} bytes")
            out.append(_packet(packet))
            pos = next_pos
        del buf[:pos]
        self._checked = max(0, self._checked - pos)
        self._check_tail()
        return out

    def _check_tail(self) -> None:
        """Apply the caps to what waits for the rest of its packet (checked once per byte)."""
        buf = self._buf
        if len(buf) > MAX_PACKET:
            raise AmiProtocolError(f"packet larger than {MAX_PACKET} bytes")
        start = self._checked
        while (nl := buf.find(b"\n", start)) >= 0:
            if nl - start > MAX_LINE + 1:  # + 1: the CR of a CRLF
                raise AmiProtocolError(f"line longer than {MAX_LINE} bytes")
            start = nl + 1
        if len(buf) - start > MAX_LINE:
            raise AmiProtocolError(f"line longer than {MAX_LINE} bytes")
        self._checked = start

    def _follows_end(self, pos: int) -> tuple[int, int] | None:
        # Old-style Command output may hold blank lines: the packet ends at the first empty
        # line after the `--END COMMAND--` marker.
        marker = self._buf.find(END_COMMAND.encode(), pos)
        if marker < 0:
            return None
        match = _PACKET_END.search(self._buf, marker)
        return None if match is None else (match.start(), match.end())

    def receive_eof(self) -> list[AmiMessage]:
        """The peer closed: raise if that cut a packet (or a line) in half."""
        if self._buf.strip():
            raise AmiProtocolError("connection closed in the middle of a packet")
        return []


_PACKET_END = re.compile(rb"\r?\n\r?\n")
_FOLLOWS = b"response: follows"


# Most header lines come again and again, in event after event (`Privilege: call,all`,
# `ChannelState: 6`) and in every event of one call (its `Uniqueid`, `Channel`, caller):
# each line read is kept with its header and lower-case name (a bounded cache, emptied when
# full), so a line seen before costs one dict lookup instead of a split, a check and three
# new objects. Long lines (a `Command` output, a long variable) are not kept. The bound is
# set by a call's life: each call brings its own lines (Uniqueids, channels, caller), some
# 26 of them, used again across the call's events; at the wallboard bench's 200 calls/s
# (bench/ami_event_cost.py --calls 2000 --timestamps) 8,192 lines were emptied every 1.6 s,
# under a call's 3 s, and cost 2.4 misses per event, where 32,768 cost 0.92 (0.76 are first
# sights): some 8 MB at most.
_LINE_CACHE_SIZE = 32768
_LINE_CACHE_MAX_LEN = 160
# (the header as read, (its lower-case name, its value)): the second is its item in the index.
_Entry = tuple[tuple[str, str], tuple[str, str]]


class _LineCache(dict[str, _Entry]):
    """The cache; a line it does not hold is read (`_entry`) by the C lookup's own call of
    `__missing__`, so a packet's lines are all found in one `map` with no scan for misses."""

    def __missing__(self, line: str) -> _Entry:
        return _entry(line)


_lines = _LineCache()
_line = _lines.__getitem__


def _entry(line: str) -> _Entry:
    # Fast path: Asterisk writes exactly "Name: value" (main/manager.c astman_append).
    pair = line.split(": ", 1)
    header = (pair[0], pair[1]) if len(pair) == 2 and ":" not in pair[0] else _odd_line(line)
    entry = (header, (header[0].lower(), header[1]))
    if len(line) <= _LINE_CACHE_MAX_LEN:
        if len(_lines) >= _LINE_CACHE_SIZE:
            _lines.clear()
        _lines[line] = entry
    return entry


_header = operator.itemgetter(0)
_folded = operator.itemgetter(1)


def _packet(body: bytes) -> AmiMessage:
    """One packet's bytes (without its terminating empty line) as a message."""
    text = body.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    known = list(map(_line, lines))
    first_key, first_value = known[0][1]
    if first_key == "response" and first_value.lower() == "follows":
        return AmiMessage.build(_follows(lines))
    # The index of AmiMessage._lookup, built from the entries in one C loop: read backwards,
    # so the first occurrence of a name wins.
    index = dict(map(_folded, reversed(known)))
    return AmiMessage(_KINDS.get(first_key, "unknown"), tuple(map(_header, known)), index)


# A line of this many characters or fewer is at most MAX_LINE bytes (UTF-8: 4 at most each).
_SHORT_LINE = MAX_LINE // 4


def _packets(region: bytes, out: list[AmiMessage]) -> bool:
    """The packets of a run of whole packets, appended to `out` from one decode and one split
    of the run: their lines are looked up in one C loop for them all, and each packet is
    cut from the list at its empty line. False (nothing appended) unless the run is pure
    CRLF (every LF after a CR, so that an empty line is the only packet end, exactly as in
    the general loop), holds no old-style Command output and keeps the caps."""
    if b"ollows" in region or b"OLLOWS" in region:
        return False
    if len(region) > MAX_PACKET and max(map(len, region.split(b"\r\n\r\n"))) > MAX_PACKET:
        return False
    # Decoding the run at once replaces invalid sequences as decoding each packet would:
    # CR and LF are ASCII, never part of a sequence.
    text = region.decode("utf-8", errors="replace")
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1:  # a bare LF
        return False
    if len(region) > _SHORT_LINE and max(map(len, lines)) > _SHORT_LINE:
        return False
    known = list(map(_line, lines))
    index = lines.index
    start = 0
    # The run ends with its last packet's CRLF and the empty line's: its lines end with "", "".
    end = len(lines) - 1
    while start < end:
        stop = index("", start)
        if stop > start:  # runs of empty lines between packets are not packets
            packet = known[start:stop]
            out.append(
                AmiMessage(
                    _KINDS.get(packet[0][1][0], "unknown"),
                    tuple(map(_header, packet)),
                    dict(map(_folded, reversed(packet))),
                )
            )
        start = stop + 1
    return True


def _odd_line(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon:
        return ("Output", line)  # not a header line: keep it rather than lose text
    # Dropping only the one space after the colon keeps values that really start with blanks
    # (RTPAUDIOQOSLOSS in the traces).
    return (name, value[1:] if value.startswith(" ") else value)


def _follows(lines: list[str]) -> list[tuple[str, str]]:
    """Old-style Command output: `Privilege:`/`ActionID:` headers, raw text, the marker."""
    headers = [_odd_line(lines[0])]
    raw = True
    for line in lines[1:]:
        if not raw:
            headers.append(_odd_line(line))
        elif line.endswith(END_COMMAND):
            if line != END_COMMAND:
                headers.append(("Output", line[: -len(END_COMMAND)]))
            raw = False
        elif len(headers) < 3 and line.partition(":")[0].lower() in ("privilege", "actionid"):
            headers.append(_odd_line(line))
        else:
            headers.append(("Output", line))
    return headers


HeadersArg = Mapping[str, str] | Sequence[tuple[str, str]]


_BREAKS = re.compile("[\r\n\0]")
_NOT_A_NAME = re.compile(r"[\s:]")


def _check(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"AMI {what} must be a str, not {type(text).__name__}")
    if _BREAKS.search(text) is not None:  # one scan; the error names the first found
        for bad, label in (("\r", "CR"), ("\n", "LF"), ("\0", "NUL")):
            if bad in text:
                raise AmiEncodeError(f"AMI {what} {text[:40]!r} contains {label}")
    return text


def _check_name(name: object) -> str:
    text = _check(name, "header name")
    if not text or _NOT_A_NAME.search(text) is not None:
        raise AmiEncodeError(f"AMI header name {text!r} must be non-empty, without ':' or blanks")
    return text


def encode_packet(headers: HeadersArg) -> bytes:
    """Encode one packet: `Name: value` lines with CRLF, then the empty line.

    Refuses (AmiEncodeError, a ValueError) CR, LF or NUL anywhere, and names that are empty
    or contain ':' or blanks: no value can end its header early or start another one.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    parts: list[str] = []
    for name, value in items:
        parts.append(f"{_check_name(name)}: {_check(value, 'header value')}\r\n")
    if not parts:
        raise AmiEncodeError("an AMI packet needs at least one header")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def encode_action(action: str, headers: HeadersArg = ()) -> bytes:
    """Encode `Action: <action>` and its headers: the one encoder for what we send to AMI."""
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if any(isinstance(n, str) and n.lower() == "action" for n, _ in items):
        raise AmiEncodeError("give the action name as `action`, not as a header")
    if not _check(action, "action name"):
        raise AmiEncodeError("the AMI action name must not be empty")
    return encode_packet([("Action", action), *items])


def md5_key(challenge: str, secret: str) -> str:
    """The `Key` of an `AuthType: MD5` Login: md5hex(challenge + secret).

    main/manager.c:2372-2395 (docs/asterisk-protocol.md#ami-login): the secret itself never crosses
    the wire, only this digest of the session's one-time `Challenge` and the secret.
    """
    data = (_check(challenge, "challenge") + secret).encode("utf-8")
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def parse_trace(text: str | bytes) -> list[AmiMessage]:
    """Parse a recorded AMI stream (asterisk-traces format: LF lines, blank-line separated)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    parser = AmiParser()
    messages = parser.receive_data(data)
    if not data.endswith(b"\n\n"):
        messages += parser.receive_data(b"\n\n")
    parser.receive_eof()
    return messages
