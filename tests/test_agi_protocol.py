"""agi/protocol.py: the parser's bounds and errors, and the one encoder against parse_args."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agi import protocol
from agi.protocol import (
    ASTERISK_HEADERS,
    MAX_HEADERS,
    MAX_LINE,
    AgiConnection,
    AgiEncodeError,
    AgiProtocolError,
    AgiRequest,
    ConnectionClosed,
    Event,
    Hangup,
    Reply,
    _request,
    encode_command,
    parse_reply_line,
    quote_arg,
)

HEADERS = (
    "agi_network: yes\nagi_network_script: language?lang=en&x=1&x=2\n"
    "agi_request: agi://127.0.0.1/language?lang=en&x=1&x=2\nagi_channel: PJSIP/1001-0001\n"
    "agi_language: en\nagi_type: PJSIP\nagi_uniqueid: 1795301017.1\nagi_version: 20.20.1\n"
    "agi_callerid: 5551234567\nagi_calleridname: Alice\nagi_callingpres: 0\n"
    "agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\n"
    "agi_rdnis: unknown\nagi_context: incoming\nagi_extension: s\nagi_priority: 2\n"
    "agi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 1\nagi_arg_1: vip-check\n"
    "agi_arg_2: \nagi_arg_3: a b\n\n"
)


def parse_args_from_spec(line: str) -> list[str]:
    """An independent reading of res_agi.c parse_args (docs/asterisk-protocol.md#agi-arguments),
    char by char."""
    out: list[str] = []
    buf = ""
    started = quoting = escaping = False
    for c in line:
        if escaping:
            buf, started, escaping = buf + c, True, False
            continue
        if c == "\\":
            escaping = started = True
        elif c == '"':
            quoting, started = not quoting, True
        elif (c == " " or c == "\t") and not quoting:
            if started:
                out.append(buf)
            buf, started = "", False
        else:
            buf, started = buf + c, True
    if started:
        out.append(buf)
    return out


def test_request_is_typed_and_split() -> None:
    (request,) = AgiConnection().receive_data(HEADERS.encode())
    assert isinstance(request, AgiRequest)
    assert request.script == "language"
    assert request.query == (("lang", "en"), ("x", "1"), ("x", "2"))
    assert request.query_value("lang") == "en"
    assert request.args == ("vip-check", "", "a b")
    assert request.arg(1) == "vip-check" and request.arg(9, "none") == "none"
    assert request.callingpres == 0 and request.accountcode == ""


def test_headers_arriving_byte_by_byte() -> None:
    conn = AgiConnection()
    events = []
    for byte in HEADERS.encode():
        events += conn.receive_data(bytes([byte]))
    assert len(events) == 1 and isinstance(events[0], AgiRequest)


def test_caller_name_with_newline_stays_in_the_name() -> None:
    hostile = HEADERS.replace(
        "agi_calleridname: Alice", 'agi_calleridname: x" \nEXEC System evil\nagi_context: evil'
    )
    (request,) = AgiConnection().receive_data(hostile.encode())
    assert isinstance(request, AgiRequest)
    assert request.calleridname == 'x" \nEXEC System evil\nagi_context: evil'
    assert request.context == "incoming"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # Spilled lines that each look like a header: a new one, one that comes later, one
        # that came before, an argument, the same field again.
        ("calleridname", "x\nagi_foo: bar"),
        ("calleridname", "x\nagi_context: evil"),
        ("callerid", "5551234567\nagi_network: no"),
        ("dnid", "unknown\nagi_arg_9: x"),
        ("rdnis", "unknown\nagi_rdnis: again"),
    ],
)
def test_a_spilled_value_that_looks_like_headers_stays_in_its_field(field: str, value: str) -> None:
    original = f"agi_{field}: " + {"callerid": "5551234567", "calleridname": "Alice"}.get(
        field, "unknown"
    )
    hostile = HEADERS.replace(f"{original}\n", f"agi_{field}: {value}\n", 1)
    assert hostile != HEADERS
    (request,) = AgiConnection().receive_data(hostile.encode())
    assert isinstance(request, AgiRequest)
    assert request.fields[field] == value
    assert request.network and request.context == "incoming"
    assert request.args == ("vip-check", "", "a b")


def test_hangup_line_before_reply() -> None:
    conn = AgiConnection()
    conn.receive_data(HEADERS.encode())
    events = conn.receive_data(b"HANGUP\n200 result=1 (Up)\n")
    assert events == [Hangup(), Reply(200, "1", "Up", None, "200 result=1 (Up)")]


@pytest.mark.parametrize(
    ("line", "result", "data", "endpos"),
    [
        ("200 result=0", "0", None, None),
        ("200 result= (timeout)", "", "timeout", None),
        ("200 result=12 (timeout)", "12", "timeout", None),
        ("200 result=", "", None, None),
        ("200 result=-1 endpos=0", "-1", None, 0),
        ("200 result=57 endpos=2400", "57", None, 2400),
        ('200 result=1 (a b"c\\d)', "1", 'a b"c\\d', None),
        ("200 result=1 (x (y) z)", "1", "x (y) z", None),
        ("200 result=0 (timeout) endpos=1234", "0", "timeout", 1234),
        ("200 result=*12", "*12", None, None),
    ],
)
def test_reply_forms(line: str, result: str, data: str | None, endpos: int | None) -> None:
    reply = parse_reply_line(line)
    assert (reply.code, reply.result, reply.data, reply.endpos) == (200, result, data, endpos)


def test_usage_block_and_short_usage() -> None:
    conn = AgiConnection()
    conn.receive_data(b"\n")
    assert conn.receive_data(b"520-Invalid command syntax.  Proper usage follows:\nline\n") == []
    (reply,) = conn.receive_data(b"520 End of proper usage.\n")
    assert isinstance(reply, Reply) and reply.code == 520 and reply.usage == ("line",)
    (short,) = conn.receive_data(b"520 Invalid command syntax.  Proper usage not available.\n")
    assert isinstance(short, Reply) and short.code == 520


def test_caps_and_eof_mid_message() -> None:
    with pytest.raises(AgiProtocolError, match="line longer"):
        AgiConnection().receive_data(b"agi_x: " + b"a" * MAX_LINE)
    conn = AgiConnection()
    with pytest.raises(AgiProtocolError, match="header block larger"):
        for i in range(MAX_HEADERS // 20 + 10):
            conn.receive_data(f"agi_arg_{i + 1}: {'v' * 10}\n".encode())
    conn = AgiConnection()
    conn.receive_data(b"agi_network: yes\n")
    with pytest.raises(AgiProtocolError, match="middle of a header block"):
        conn.receive_data(b"")
    conn = AgiConnection()
    conn.receive_data(b"\n200 res")
    with pytest.raises(AgiProtocolError, match="middle of a reply"):
        conn.receive_data(b"")
    conn = AgiConnection()
    conn.receive_data(b"\n200 result=0\n")
    assert conn.receive_data(b"") == [ConnectionClosed()]


def test_garbage_reply_is_a_protocol_error() -> None:
    conn = AgiConnection()
    conn.receive_data(b"\n")
    with pytest.raises(AgiProtocolError):
        conn.receive_data(b"hello there\n")


def test_encoder_quotes_only_when_needed() -> None:
    assert encode_command("STREAM FILE", "beep", "") == b'STREAM FILE beep ""\n'
    assert encode_command("GET DATA", "beep", 6000, 4) == b"GET DATA beep 6000 4\n"
    assert encode_command("SET VARIABLE", "X", 'a b"c\\d') == b'SET VARIABLE X "a b\\"c\\\\d"\n'


def test_a_kept_line_is_given_only_for_arguments_of_the_same_types() -> None:
    # Encoded lines are kept (by the arguments when all are strings, else with their types):
    # "1", 1, True and 1.0 are equal or alike as keys, yet each encodes its own way, the
    # second time too.
    for _ in range(2):
        assert encode_command("SAY NUMBER", "1", "") == b'SAY NUMBER 1 ""\n'
        assert encode_command("SAY NUMBER", 1, "") == b'SAY NUMBER 1 ""\n'
        assert encode_command("SAY NUMBER", True, "") == b'SAY NUMBER True ""\n'
        with pytest.raises(TypeError):
            encode_command("SAY NUMBER", 1.0, "")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b", 'x" \n EXEC System evil'])
def test_encoder_refuses_line_breaks_and_nul(bad: str) -> None:
    with pytest.raises(AgiEncodeError):
        quote_arg(bad)
    with pytest.raises(AgiEncodeError):
        encode_command("SET VARIABLE", "NAME", bad)


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_every_value_is_refused_or_round_trips(values: list[str]) -> None:
    try:
        line = encode_command("VERBOSE", *values)
    except AgiEncodeError:
        assert any(c in v for v in values for c in "\n\r\0")
        return
    text = line.decode("utf-8")
    # Exactly one line: nothing can start a second command.
    assert text.count("\n") == 1 and text.endswith("\n")
    assert parse_args_from_spec(text[:-1]) == ["VERBOSE", *values]


TRACE_STREAM = (
    HEADERS + "200 result=0\nHANGUP\n200 result=1 (Up)\n520-Invalid command syntax.  Proper usage"
    " follows:\nusage line\n520 End of proper usage.\n200 result= (timeout)\n511 Command Not"
    " Permitted on a dead channel or intercept routine\n200 result=57 endpos=2400\n"
).encode()


def events_of(chunks: list[bytes]) -> list[object]:
    conn = AgiConnection()
    events: list[object] = []
    for chunk in chunks:
        events += conn.receive_data(chunk)
    return events + conn.receive_data(b"")


@given(st.lists(st.integers(min_value=1, max_value=len(TRACE_STREAM)), max_size=40))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [
        TRACE_STREAM[a:b] for a, b in zip([0, *points], [*points, len(TRACE_STREAM)], strict=True)
    ]
    assert events_of([c for c in chunks if c]) == events_of([TRACE_STREAM])


@given(st.binary(max_size=2048), st.booleans())
def test_garbage_only_ever_raises_a_protocol_error(data: bytes, after_headers: bool) -> None:
    conn = AgiConnection()
    if after_headers:
        conn.receive_data(HEADERS.encode())
    events: list[object] = []
    try:
        events += conn.receive_data(data)
        events += conn.receive_data(b"")
    except AgiProtocolError as exc:
        assert str(exc)  # a clear message, never a crash of another kind
        return
    assert all(isinstance(e, AgiRequest | Reply | Hangup | ConnectionClosed) for e in events)
    assert events[-1] == ConnectionClosed()


_NAMES = [
    "network", "network_script", "channel", "uniqueid", "callerid", "calleridname",
    "callingpres", "dnid", "rdnis", "context", "threadid", "arg_1", "arg_2", "arg_3",
]  # fmt: skip
_VALUES = st.text(alphabet="ab1 :\n_agi", max_size=12)


def _careful(block: bytes) -> list[Event] | str:
    """The events of the careful line-by-line loop (no shortcut for Asterisk's order), or the
    error."""
    with mock.patch("agi.protocol._asterisk_request", return_value=None):
        return _events_or_error(block)


def _events_or_error(block: bytes) -> list[Event] | str:
    try:
        return AgiConnection().receive_data(block)
    except AgiProtocolError as exc:
        return f"error: {exc}"


@given(st.lists(st.tuples(st.sampled_from(_NAMES), _VALUES), min_size=1, max_size=16))
@example([("context", "x\nabcd: y")])  # a spilled line with no agi_ prefix
@example([("calleridname", "x\nagi_foo: y"), ("callingpres", "0")])
def test_any_block_reads_the_same_with_or_without_the_shortcut(
    lines: list[tuple[str, str]],
) -> None:
    """For any mix of names and values (new lines spilled from a value, names twice,
    arguments out of order), the reading is the careful loop's."""
    block = "".join(f"agi_{name}: {value}\n" for name, value in lines).encode() + b"\n"
    assert _events_or_error(block) == _careful(block)


_ASTERISK_VALUES = st.text(alphabet="ab1 :\n\r_agi", max_size=10)


@given(
    st.lists(_ASTERISK_VALUES, min_size=22, max_size=22),
    st.lists(_ASTERISK_VALUES, max_size=4),
    st.sampled_from(["", "drop", "swap", "arg-twice", "arg-0", "extra"]),
)
@example([""] * 22, ["first arg", "second"], "")
@example(["x"] * 9 + ["Eve\nagi_callingpres: 0"] + ["y"] * 12, [], "")
def test_a_block_in_asterisk_order_reads_as_the_careful_loop_reads_it(
    values: list[str], args: list[str], change: str
) -> None:
    """The shortcut for Asterisk's own order gives what the careful loop gives, for any
    values (line breaks spilled from a caller's name, `: ` inside values, empty ones), any
    arguments, and blocks that leave the order (a header dropped or two swapped, arguments
    misnumbered, a header Asterisk does not send)."""
    lines = [f"agi_{name}: {value}" for name, value in zip(ASTERISK_HEADERS, values, strict=True)]
    lines += [f"agi_arg_{n}: {value}" for n, value in enumerate(args, 1)]
    if change == "drop":
        del lines[5]
    elif change == "swap":
        lines[3], lines[4] = lines[4], lines[3]
    elif change == "arg-twice":
        lines.append("agi_arg_1: again")
    elif change == "arg-0":
        lines.append("agi_arg_0: zero")
    elif change == "extra":
        lines.insert(10, "agi_foo: bar")
    block = ("\n".join(lines) + "\n\n").encode()
    careful = _careful(block)
    assert _events_or_error(block) == careful
    whole = AgiConnection().receive_headers(block)  # the server's first read
    assert whole is None or [whole] == careful


_RAW_VALUES = st.binary(max_size=12).map(lambda raw: raw.replace(b"\n", b""))


@given(
    st.lists(_RAW_VALUES, min_size=22, max_size=22),
    st.lists(_RAW_VALUES, max_size=3),
    st.sampled_from([b"", b"agi_arg_1: x\n", b"agi_foo: y\n", b"\n"]),
)
@example([b"Jos\xc3\xa9"] + [b"\xff\xfe"] * 20 + [b"\xd8\xb9"], [b"a\r"], b"")
def test_the_first_read_splits_any_bytes_as_the_careful_loop_does(
    values: list[bytes], args: list[bytes], tail: bytes
) -> None:
    """Any bytes in the values (invalid UTF-8, non-ASCII names, `\r`), and extra lines after
    the block's own: the one-step read gives the careful loop's request, or leaves it."""
    lines = [
        b"agi_" + n.encode() + b": " + v for n, v in zip(ASTERISK_HEADERS, values, strict=True)
    ]
    lines += [b"agi_arg_%d: %s" % (n, value) for n, value in enumerate(args, 1)]
    block = b"\n".join(lines) + b"\n" + tail + b"\n"
    careful = _careful(block)
    whole = AgiConnection().receive_headers(block)
    assert whole is None or [whole] == careful
    if not tail:
        assert [whole] == careful  # a block as Asterisk writes it is always taken whole


def test_each_call_reads_its_own_header_values_after_another_calls() -> None:
    """The C splitter reuses a header's last value when the bytes are the same (most repeat
    from call to call): a value of the same length, or non-ASCII bytes, is read afresh."""
    block = (
        "agi_network: yes\nagi_network_script: {script}\nagi_request: agi://h/{script}\n"
        "agi_channel: {channel}\nagi_language: en\nagi_type: PJSIP\nagi_uniqueid: 1.1\n"
        "agi_version: 20\nagi_callerid: {callerid}\nagi_calleridname: x\n"
        "agi_callingpres: 0\nagi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\n"
        "agi_dnid: unknown\nagi_rdnis: unknown\nagi_context: c\nagi_extension: s\n"
        "agi_priority: 1\nagi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 1\n\n"
    )
    calls = [
        ("ivr", "PJSIP/1001-01", "5551234567"),
        ("ivr", "PJSIP/1001-02", "5551234567"),
        ("cb", "PJSIP/1001-02", "Jos\u00e9 12345"),
        ("cb", "PJSIP/1001-02", "Jos\u00e9 12346"),
        ("ivr", "PJSIP/1001-01", "5551234567"),
    ]
    for script, channel, callerid in calls * 2:
        data = block.format(script=script, channel=channel, callerid=callerid).encode()
        request = AgiConnection().receive_headers(data)
        assert request is not None
        assert (request.script, request.channel, request.callerid) == (script, channel, callerid)
        assert [request] == _careful(data)


def test_the_first_read_is_the_header_block_in_one_step() -> None:
    conn = AgiConnection()
    request = conn.receive_headers(HEADERS.encode())
    assert isinstance(request, AgiRequest) and request.args == ("vip-check", "", "a b")
    assert [request] == AgiConnection().receive_data(HEADERS.encode())
    assert conn.receive_reply(b"200 result=0\n") == Reply(200, "0", text="200 result=0")
    assert conn.receive_headers(HEADERS.encode()) is None  # the headers are done
    # Anything else is left whole to receive_data: a block cut in two reads, one with a
    # reply behind it, one that is too long to take in one step.
    split = AgiConnection()
    assert split.receive_headers(HEADERS.encode()[:100]) is None
    assert split.receive_data(HEADERS.encode()[:100]) == []
    assert split.receive_headers(HEADERS.encode()[100:]) is None
    assert AgiConnection().receive_headers(HEADERS.encode() + b"200 result=0\n") is None
    padded = HEADERS.replace("agi_arg_3: a b", "agi_arg_3: " + "x" * MAX_LINE)
    assert AgiConnection().receive_headers(padded.encode()) is None


def test_a_block_in_asterisk_order_keeps_every_line_for_headers() -> None:
    (request,) = AgiConnection().receive_data(HEADERS.encode())
    assert isinstance(request, AgiRequest)
    with mock.patch("agi.protocol._asterisk_request", return_value=None):
        (careful,) = AgiConnection().receive_data(HEADERS.encode())
    assert isinstance(careful, AgiRequest)
    assert request.lines is None and careful.lines is not None  # the shortcut was taken
    assert request.headers == careful.headers
    assert request.headers[0] == ("agi_network", "yes") and request.args == careful.args


def test_the_c_request_maker_takes_only_the_request_class() -> None:
    """agi/_headerblock.c sets the request's slots itself: it refuses a class without them,
    and leaves a script with a query to `_request`."""
    module = protocol._headerblock
    if module is None:
        pytest.skip("agi._headerblock is not loaded (not built, or CENTRALITA_NO_SPEEDUPS=1)")
    with pytest.raises(TypeError, match="no slot fields"):
        module.request_of(Reply, {}, ())
    with pytest.raises(TypeError, match="request_of"):
        module.request_of(AgiRequest, [], ())
    assert module.request_of(AgiRequest, {"network_script": "ivr?lang=es"}, ()) is None
    made = module.request_of(AgiRequest, {"network_script": "//ivr/"}, ("a",))
    assert made == _request({"network_script": "//ivr/"}, ("a",), None)
    assert module.request_of(AgiRequest, {}, ()) == _request({}, (), None)


def test_a_change_to_a_requests_fields_does_not_reach_the_next_call() -> None:
    """The C splitter keeps the last block's fields to copy from: what a flow does to its own
    request's fields stays in that request."""
    first = AgiConnection().receive_headers(HEADERS.encode())
    assert first is not None
    first.fields["channel"] = "changed by a flow"
    del first.fields["language"]
    second = AgiConnection().receive_headers(HEADERS.encode())
    assert second is not None and second == _careful(HEADERS.encode())[0]
    assert second.fields is not first.fields


def test_the_c_splitter_refuses_header_names_it_cannot_keep() -> None:
    module = protocol._headerblock
    if module is None:
        pytest.skip("agi._headerblock is not loaded (not built, or CENTRALITA_NO_SPEEDUPS=1)")
    with pytest.raises(ValueError, match="distinct"):
        module.split_block(b"agi_a: 1\nagi_a: 2\n\n", ("a", "a"))
    with pytest.raises(TypeError, match="strings"):
        module.split_block(b"agi_a: 1\n\n", ("a", 1))
    # Then the real names again: nothing of the refused calls is left.
    request = AgiConnection().receive_headers(HEADERS.encode())
    assert request is not None and [request] == _careful(HEADERS.encode())
