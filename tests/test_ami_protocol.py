"""The sans-IO AMI parser and encoder, against the recorded traces and hostile input."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ami import protocol
from ami.protocol import (
    MAX_LINE,
    MAX_PACKET,
    AmiMessage,
    AmiParser,
    AmiProtocolError,
    encode_action,
    encode_packet,
    parse_trace,
)

TRACES = Path(__file__).resolve().parent / "fixtures" / "asterisk-traces"
AMI_TRACES = sorted(TRACES.glob("ami-*.txt"))


def feed(parser: AmiParser, data: bytes, chunk: int) -> list[AmiMessage]:
    out: list[AmiMessage] = []
    for i in range(0, len(data), chunk):
        out += parser.receive_data(data[i : i + chunk])
    return out


def test_traces_are_there() -> None:
    assert [p.name for p in AMI_TRACES] == [
        "ami-agi-call.txt",
        "ami-click2dial.txt",
        "ami-queue-sip-call.txt",
        "ami-queue-timeout.txt",
    ]


@pytest.mark.parametrize("path", AMI_TRACES, ids=lambda p: p.name)
def test_trace_parses_into_its_packets(path: Path) -> None:
    data = path.read_bytes()
    messages = parse_trace(data)
    blocks = [b for b in data.decode().split("\n\n") if b.strip()]
    # The banner shares the first block with the login response (no blank line after it).
    assert len(messages) == len(blocks) + 1
    assert messages[0] == AmiMessage("banner", (("Banner", "Asterisk Call Manager/9.0.0"),))
    assert messages[1].kind == "response"
    assert messages[1].get("message") == "Authentication accepted"
    for msg, block in zip(messages[2:], blocks[1:], strict=True):
        lines = block.split("\n")
        assert len(msg.headers) == len(lines)
        assert msg.kind == ("event" if lines[0].startswith("Event:") else "response")
        for (name, value), line in zip(msg.headers, lines, strict=True):
            assert line == f"{name}: {value}"


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_crlf_and_lf_and_any_chunking_give_the_same_messages(chunk: int) -> None:
    data = (TRACES / "ami-queue-sip-call.txt").read_bytes()
    expected = parse_trace(data)
    crlf = data.replace(b"\n", b"\r\n")
    assert feed(AmiParser(), crlf, chunk) == expected
    assert feed(AmiParser(), data, chunk) == expected


def test_values_keep_blanks_except_the_one_after_the_colon() -> None:
    msgs = AmiParser(expect_banner=False).receive_data(
        b"Event: VarSet\r\nVariable: RTPAUDIOQOSLOSS\r\nValue:   minrxlost=1; \r\nEmpty: \r\n"
        b"NoSpace:x\r\n\r\n"
    )
    assert msgs[0].get("Value") == "  minrxlost=1; "
    assert msgs[0].get("Empty") == ""
    assert msgs[0].get("NoSpace") == "x"


def test_duplicate_headers_kept_in_order_and_lookup_is_case_insensitive() -> None:
    raw = (
        b"Response: Success\r\nActionID: 7\r\nMessage: Command output follows\r\n"
        b"Output: Asterisk 20.20.1 built by lab\r\nOutput: second line\r\nOutput: \r\n\r\n"
    )
    (msg,) = AmiParser(expect_banner=False).receive_data(raw)
    assert msg.kind == "response"
    assert msg.is_success
    assert msg.action_id == "7"
    assert msg.get_all("output") == ["Asterisk 20.20.1 built by lab", "second line", ""]
    assert msg.get("OUTPUT") == "Asterisk 20.20.1 built by lab"  # first wins, as in Asterisk
    assert msg.get("Missing") is None
    assert msg.value("Missing") == ""
    assert "actionid" in msg
    # The same first values by lower-case name, for readers of many headers at once.
    assert msg.folded() == {
        "response": "Success",
        "actionid": "7",
        "message": "Command output follows",
        "output": "Asterisk 20.20.1 built by lab",
    }


def test_old_style_command_response_with_end_marker() -> None:
    raw = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 9\r\n"
        b"Name/username  Host\r\n\r\n1001/1001  127.0.0.1\r\n--END COMMAND--\r\n\r\n"
        b"Event: Next\r\n\r\n"
    )
    first, second = AmiParser(expect_banner=False).receive_data(raw)
    assert first.action_id == "9"
    assert first.get_all("Output") == ["Name/username  Host", "", "1001/1001  127.0.0.1"]
    assert second.name == "Next"


def test_invalid_utf8_is_replaced_never_raised() -> None:
    raw = b"Event: Newchannel\r\nCallerIDName: Bob \xff\xfe\xc3 Customer\r\n\r\n"
    (msg,) = AmiParser(expect_banner=False).receive_data(raw)
    assert msg.get("CallerIDName") == "Bob \ufffd\ufffd\ufffd Customer"


def test_utf8_split_across_reads_survives() -> None:
    raw = "Event: X\r\nCallerIDName: Amira Ḥaddād عمر\r\n\r\n".encode()
    assert feed(AmiParser(expect_banner=False), raw, 1)[0].get("CallerIDName") == (
        "Amira Ḥaddād عمر"
    )


def test_line_too_long_is_refused() -> None:
    parser = AmiParser(expect_banner=False)
    with pytest.raises(AmiProtocolError, match="line longer"):
        parser.receive_data(b"Event: X\r\nValue: " + b"a" * MAX_LINE + b"\r\n")


def test_unterminated_line_cannot_grow_without_bound() -> None:
    parser = AmiParser(expect_banner=False)
    parser.receive_data(b"a" * MAX_LINE)
    with pytest.raises(AmiProtocolError, match="line longer"):
        parser.receive_data(b"a" * 10)


def test_packet_too_large_is_refused() -> None:
    parser = AmiParser(expect_banner=False)
    line = b"Output: " + b"x" * 1000 + b"\r\n"
    with pytest.raises(AmiProtocolError, match="packet larger"):
        parser.receive_data(b"Response: Success\r\n" + line * (MAX_PACKET // len(line) + 1))


def test_many_small_packets_are_not_a_big_packet() -> None:
    parser = AmiParser(expect_banner=False)
    packet = b"Event: Ping\r\nValue: " + b"v" * 1000 + b"\r\n\r\n"
    assert len(parser.receive_data(packet * 200)) == 200


def test_eof_in_mid_packet_raises_and_clean_eof_does_not() -> None:
    parser = AmiParser()
    parser.receive_data(b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\n")
    with pytest.raises(AmiProtocolError, match="middle of a packet"):
        parser.receive_eof()
    clean = AmiParser()
    assert len(clean.receive_data(b"Asterisk Call Manager/9.0.0\r\nEvent: X\r\n\r\n")) == 2
    assert clean.receive_eof() == []
    assert clean.banner == "Asterisk Call Manager/9.0.0"


def test_missing_banner_is_tolerated() -> None:
    (msg,) = AmiParser().receive_data(b"Response: Success\r\nPing: Pong\r\n\r\n")
    assert msg.kind == "response"


def test_encode_action_format() -> None:
    assert encode_action("Ping", {"ActionID": "p-1"}) == b"Action: Ping\r\nActionID: p-1\r\n\r\n"
    assert encode_action("Originate", [("Variable", "A=1"), ("Variable", "B=2")]) == (
        b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"
    )


@pytest.mark.parametrize(
    "headers",
    [
        [("Exten", "123\r\nAction: Originate")],
        [("Exten", "123\nChannel: x")],
        [("Exten", "123\rX")],
        [("Exten", "1\x00")],
        [("Ex\nten", "1")],
        [("Ex ten", "1")],
        [("Ex:ten", "1")],
        [("", "1")],
        [("Action", "Originate")],
    ],
)
def test_encode_refuses_injection(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        encode_action("Originate", headers)


def test_encode_refuses_bad_action_names_and_types() -> None:
    with pytest.raises(ValueError):
        encode_action("Ping\r\nAction: Originate")
    with pytest.raises(ValueError):
        encode_action("")
    with pytest.raises(TypeError):
        encode_action("Originate", [("Timeout", 30000)])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        encode_packet([])


_name = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-_"),
    min_size=1,
    max_size=20,
).filter(lambda n: n.lower() != "action")
# Unicode category Cs: lone surrogates, which no UTF-8 text can hold.
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=SURROGATES),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(action=_value.filter(bool), headers=st.lists(st.tuples(_name, _value), max_size=12))
def test_any_encodable_action_parses_back_identically(
    action: str, headers: list[tuple[str, str]]
) -> None:
    data = encode_action(action, headers)
    assert data.endswith(b"\r\n\r\n")
    assert data.count(b"\n") == len(headers) + 2  # one line per header, then the blank line
    parser = AmiParser(expect_banner=False)
    assert parser.receive_data(data) == [AmiMessage("action", (("Action", action), *headers))]
    assert parser.receive_eof() == []


@settings(max_examples=200, deadline=None)
@given(
    before=_value, after=_value, breaker=st.sampled_from(["\r", "\n", "\r\n", "\x00"]), name=_name
)
def test_a_value_with_cr_or_lf_is_always_refused(
    before: str, after: str, breaker: str, name: str
) -> None:
    with pytest.raises(ValueError):
        encode_action("Originate", [(name, before + breaker + after)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_bytes_only_ever_raise_protocol_errors(chunks: list[bytes]) -> None:
    parser = AmiParser()
    try:
        for chunk in chunks:
            for msg in parser.receive_data(chunk):
                assert msg.kind in ("banner", "response", "event", "action", "unknown")
                msg.get("Event")
        parser.receive_eof()
    except AmiProtocolError:
        pass


_header_name = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,12}", fullmatch=True)
_header_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=SURROGATES),
    max_size=20,
)


@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(_header_name, _header_value), min_size=1, max_size=6),
            st.integers(min_value=0, max_value=2),  # extra blank lines after the packet
        ),
        min_size=1,
        max_size=6,
    ),
    st.integers(min_value=1, max_value=64),
)
def test_crlf_fast_path_equals_the_general_parser(
    packets: list[tuple[list[tuple[str, str]], int]], chunk: int
) -> None:
    """Whole CRLF reads take the bulk path; LF-only reads and small chunks the general one."""
    text = "".join(
        "".join(f"{name}: {value}\n" for name, value in headers) + "\n" * (1 + blanks)
        for headers, blanks in packets
    )
    lf = ("Asterisk Call Manager/9.0.0\n" + text).encode()
    crlf = lf.replace(b"\n", b"\r\n")

    def parse(data: bytes, size: int) -> list[AmiMessage]:
        parser = AmiParser()
        out: list[AmiMessage] = []
        for i in range(0, len(data), size):
            out += parser.receive_data(data[i : i + size])
        return out

    whole = parse(crlf, len(crlf))
    assert whole == parse(lf, len(lf)) == parse(crlf, chunk)
    assert [m.headers for m in whole[1:]] == [tuple(h) for h, _ in packets if h]


def _reference_header(line: str) -> tuple[str, str]:
    """What one header line means, written plainly (main/manager.c astman_append writes
    `Name: value`; anything else as `_odd_line` reads it)."""
    name, sep, value = line.partition(": ")
    if sep and ":" not in name:
        return name, value
    name, colon, value = line.partition(":")
    if not colon:
        return "Output", line
    return name, value[1:] if value.startswith(" ") else value


_odd_line_text = st.text(
    alphabet=st.sampled_from(["a", "B", ":", " ", "x", "é"]), min_size=0, max_size=8
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(["Event", "EVENT", "event", "Uniqueid", "UniqueID"]),
                      st.sampled_from(["", "1.1", "x: y", ":", "  lead"])).map(": ".join),
            _odd_line_text.filter(bool),
        ),
        min_size=1,
        max_size=10,
    )
)  # fmt: skip
def test_every_line_reads_the_same_whether_seen_before_or_not(lines: list[str]) -> None:
    """Lines already read come from the parser's cache of lines: the same headers, the same
    case-insensitive first-wins lookups, the first time and the next."""
    data = ("\n".join(lines) + "\n\n").encode()
    expected = [_reference_header(line) for line in lines]
    for _ in range(2):
        (msg,) = AmiParser(expect_banner=False).receive_data(data)
        if msg.kind == "response" and msg.name.lower() == "follows":
            continue  # old-style Command output: its own rules (tested above)
        assert list(msg.headers) == expected
        for name, _value in expected:
            first = next(v for n, v in expected if n.lower() == name.lower())
            assert msg.get(name.swapcase()) == first
            assert msg.folded()[name.lower()] == first


def test_the_cache_of_lines_stays_bounded() -> None:
    parser = AmiParser(expect_banner=False)
    for i in range(3 * protocol._LINE_CACHE_SIZE // 100):
        data = "".join(f"Event: E\r\nX{j}: {i}-{j}\r\n\r\n" for j in range(100)).encode()
        assert len(parser.receive_data(data)) == 100
        assert len(protocol._lines) <= protocol._LINE_CACHE_SIZE
    long_value = "v" * (protocol._LINE_CACHE_MAX_LEN + 1)
    (msg,) = parser.receive_data(f"Event: E\r\nLong: {long_value}\r\n\r\n".encode())
    assert msg.value("long") == long_value
    assert f"Long: {long_value}" not in protocol._lines
