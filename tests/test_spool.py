"""Call files: the encoder, the tmp-then-rename write, the due mtime, and the reader."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centralita import spool

DUE = datetime(2031, 5, 4, 12, 30, 15, 250000, tzinfo=UTC)
DUE_NS = 1935664215_250000000  # DUE as nanoseconds since the epoch


def _args(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "due": DUE,
        "channel": "PJSIP/0612345678@trunk",
        "context": "survey",
        "extension": "s",
        "callerid": spool.format_callerid("Centralita", "0777"),
        "max_retries": 2,
        "retry_time_s": 300,
        "wait_time_s": 45,
        "variables": {
            "CENTRALITA_CALL_ID": "1712345678.42",
            "CENTRALITA_AGENT": "1001",
            "CENTRALITA_QUEUE": "support-en",
        },
    }
    base.update(over)
    return base


def _listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def test_call_file_keys_and_values(tmp_path: Path) -> None:
    path = spool.write_call_file(tmp_path, **_args())
    assert path.parent == tmp_path / "outgoing"
    assert path.name.startswith("centralita-") and path.suffix == ".call"
    text = path.read_text(encoding="utf-8")
    assert text.splitlines() == [
        "Channel: PJSIP/0612345678@trunk",
        'CallerID: "Centralita" <0777>',
        "MaxRetries: 2",
        "RetryTime: 300",
        "WaitTime: 45",
        "Context: survey",
        "Extension: s",
        "Priority: 1",
        "Setvar: CENTRALITA_CALL_ID=1712345678.42",
        "Setvar: CENTRALITA_AGENT=1001",
        "Setvar: CENTRALITA_QUEUE=support-en",
    ]
    assert text.endswith("\n")
    parsed = spool.parse_call_file(text)
    assert parsed["valid"]
    assert (parsed["tech"], parsed["dest"]) == ("PJSIP", "0612345678@trunk")
    assert (parsed["cid_name"], parsed["cid_num"]) == ("Centralita", "0777")
    assert (parsed["context"], parsed["extension"], parsed["priority"]) == ("survey", "s", 1)
    assert (parsed["maxretries"], parsed["retrytime"], parsed["waittime"]) == (2, 300, 45)
    assert parsed["variables"] == _args()["variables"]
    assert not parsed["archive"] and parsed["alwaysdelete"]
    assert parsed["errors"] == [] and parsed["unknown"] == []


def test_due_mtime_and_nothing_left_in_tmp(tmp_path: Path) -> None:
    path = spool.write_call_file(tmp_path, **_args())
    st_ = path.stat()
    assert st_.st_mtime_ns == DUE_NS
    assert st_.st_atime_ns == DUE_NS
    assert int(st_.st_mtime) == int(DUE.timestamp())  # what Asterisk's stat() sees
    assert _listing(tmp_path / "tmp") == []
    assert _listing(tmp_path / "outgoing") == [path.name]


def test_due_in_another_timezone_is_the_same_instant(tmp_path: Path) -> None:
    madrid = DUE.astimezone(timezone(timedelta(hours=2)))
    path = spool.write_call_file(tmp_path, **_args(due=madrid))
    assert path.stat().st_mtime_ns == DUE_NS


def test_naive_due_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        spool.write_call_file(tmp_path, **_args(due=datetime(2031, 1, 1, 12, 0)))
    assert _listing(tmp_path / "outgoing") == []


def test_archive_priority_and_no_callerid(tmp_path: Path) -> None:
    path = spool.write_call_file(
        tmp_path, **_args(archive=True, priority=3, callerid=None, variables={})
    )
    text = path.read_text(encoding="utf-8")
    assert "CallerID" not in text and "Setvar" not in text
    assert text.splitlines()[-1] == "Archive: yes"
    parsed = spool.parse_call_file(text)
    assert parsed["archive"] and parsed["priority"] == 3 and parsed["valid"]


def test_files_appear_only_whole_and_already_dated(tmp_path: Path) -> None:
    """A watcher polling outgoing/ while 400 files are written from 16 threads."""
    count = 400
    due_of = {f"call-{i}": DUE + timedelta(seconds=i) for i in range(count)}
    expected_text = {
        key: spool.build_call_file(
            channel="PJSIP/0612345678@trunk",
            context="survey",
            extension="s",
            callerid='"Centralita" <0777>',
            max_retries=2,
            retry_time_s=300,
            wait_time_s=45,
            variables={"CENTRALITA_CALL_ID": key, "PAD": "x" * (i % 7) * 100},
        )
        for i, key in enumerate(due_of)
    }
    spool.spool_dirs(tmp_path)
    outgoing = tmp_path / "outgoing"
    seen: dict[str, str] = {}
    failures: list[str] = []
    stop = threading.Event()

    def look() -> None:
        with os.scandir(outgoing) as entries:
            names = [e.name for e in entries if e.name not in seen]
        for name in names:
            path = outgoing / name
            mtime_ns = path.stat().st_mtime_ns
            text = path.read_text(encoding="utf-8")
            parsed = spool.parse_call_file(text)
            key = parsed["variables"].get("CENTRALITA_CALL_ID", "")
            if key not in due_of:
                failures.append(f"{name}: incomplete, no call id: {text!r}")
                continue
            if text != expected_text[key] or not parsed["valid"]:
                failures.append(f"{name}: half-written: {text!r}")
            if mtime_ns != (due_of[key] - spool._EPOCH) // timedelta(microseconds=1) * 1000:
                failures.append(f"{name}: seen before its mtime was the due time")
            seen[name] = key

    def watch() -> None:
        while not stop.is_set():
            look()
        look()  # one pass after the last rename

    watcher = threading.Thread(target=watch)
    watcher.start()
    i_of = {key: i for i, key in enumerate(due_of)}

    def write(key: str) -> Path:
        i = i_of[key]
        return spool.write_call_file(
            tmp_path,
            **_args(
                due=due_of[key],
                callerid='"Centralita" <0777>',
                variables={"CENTRALITA_CALL_ID": key, "PAD": "x" * (i % 7) * 100},
            ),
        )

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            paths = list(pool.map(write, due_of))
    finally:
        stop.set()
        watcher.join()
    assert failures == []
    assert len(set(paths)) == count
    assert sorted(seen.values()) == sorted(due_of)
    assert _listing(tmp_path / "tmp") == []
    assert len(_listing(outgoing)) == count


IN_OPEN, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x20, 0x08, 0x80, 0x100
IN_ISDIR = 0x40000000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")
def test_outgoing_sees_only_moved_to_events_as_asterisk_watches_it(tmp_path: Path) -> None:
    """Asterisk's inotify mask (pbx_spool.c 726): a rename gives IN_MOVED_TO and nothing else."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    try:
        _, outgoing = spool.spool_dirs(tmp_path)
        mask = IN_CREATE | IN_OPEN | IN_CLOSE_WRITE | IN_MOVED_TO
        assert libc.inotify_add_watch(fd, bytes(outgoing), mask) >= 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            paths = list(
                pool.map(
                    lambda i: spool.write_call_file(
                        tmp_path, **_args(due=DUE + timedelta(seconds=i))
                    ),
                    range(50),
                )
            )
        events: list[tuple[int, str]] = []
        while True:
            try:
                buf = os.read(fd, 65536)
            except BlockingIOError:
                break
            pos = 0
            while pos < len(buf):
                _wd, ev_mask, _cookie, length = struct.unpack_from("iIII", buf, pos)
                name = buf[pos + 16 : pos + 16 + length].rstrip(b"\0").decode()
                events.append((ev_mask, name))
                pos += 16 + length
    finally:
        os.close(fd)
    file_events = [(m, name) for m, name in events if name]
    assert sorted(file_events) == sorted((IN_MOVED_TO, p.name) for p in paths)
    # The only other events are the fsync of outgoing/ opening the directory itself: an
    # IN_OPEN with no name, which queue_file_open("") matches to nothing (pbx_spool.c 626-636).
    assert {m for m, name in events if not name} <= {IN_OPEN | IN_ISDIR}


@pytest.mark.parametrize(
    "over",
    [
        {"callerid": '"x\nApplication: System" <0777>'},
        {"callerid": '"x\rApplication: System" <0777>'},
        {"callerid": '"x\0" <0777>'},
        {"channel": "PJSIP/1001\nApplication: System"},
        {"context": "survey\nApplication: System"},
        {"extension": "s\r\nData: rm -rf /"},
        {"variables": {"CENTRALITA_QUEUE": "support-en\nApplication: System"}},
        {"variables": {"CENTRALITA_QUEUE": "support-en\r"}},
        {"variables": {"CENTRALITA_QUEUE": "a\0b"}},
        {"variables": {"X\nApplication: System\nY": "1"}},
        {"variables": {"A=B": "1"}},
        {"variables": {"": "1"}},
        {"variables": {"X": "tab\there"}},
        {"variables": {"X": "next\x85line"}},
        {"variables": {"X": "line\u2028separator"}},
    ],
)
def test_injection_is_refused_and_nothing_is_written(tmp_path: Path, over: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        spool.write_call_file(tmp_path, **_args(**over))
    assert _listing(tmp_path / "outgoing") == []
    assert _listing(tmp_path / "tmp") == []


def test_format_callerid_refuses_newline_in_name_and_junk_number() -> None:
    with pytest.raises(ValueError):
        spool.format_callerid("x\nApplication: System", "0777")
    with pytest.raises(ValueError):
        spool.format_callerid("x", "0777>\nApplication: System")
    with pytest.raises(ValueError):
        spool.format_callerid("x", "07 77")


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"channel": "1001"}, "Tech/Destination"),
        ({"channel": "/1001"}, "Tech/Destination"),
        ({"channel": "PJSIP/"}, "Tech/Destination"),
        ({"channel": "PJSIP/10 01"}, "without spaces"),
        ({"context": ""}, "non-empty"),
        ({"extension": "s #1"}, "without spaces"),
        ({"max_retries": -1}, "between 0"),
        ({"retry_time_s": 0}, "between 1"),
        ({"wait_time_s": 2**31}, "between 1"),
        ({"priority": 0}, "between 1"),
        ({"max_retries": True}, "integer"),
        ({"callerid": ' "leading space" <1>'}, "trims blanks"),
        ({"callerid": '"x" <1> '}, "trims blanks"),
        ({"variables": {"X": "trailing "}}, "trims blanks"),
        ({"variables": {"X": "a #comment"}}, "starts a comment"),
        ({"callerid": "#1 <1>"}, "starts a comment"),
        ({"variables": {"X": "y" * 1100}}, "longer than 1022"),
    ],
)
def test_values_asterisk_would_misread_are_refused(
    tmp_path: Path, over: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        spool.write_call_file(tmp_path, **_args(**over))
    assert _listing(tmp_path / "outgoing") == []


def test_semicolon_is_escaped_and_hash_without_blank_is_kept() -> None:
    text = spool.build_call_file(
        channel="PJSIP/1001",
        context="survey",
        extension="s",
        callerid=spool.format_callerid('Ana "A;B" \\ Ltd', "+34600"),
        variables={"NOTE": "a;b\\;c#d", "LEAD": " spaced"},
    )
    assert "Setvar: NOTE=a\\;b\\\\;c#d" in text.splitlines()
    parsed = spool.parse_call_file(text)
    assert parsed["variables"] == {"NOTE": "a;b\\;c#d", "LEAD": " spaced"}
    assert (parsed["cid_name"], parsed["cid_num"]) == ('Ana "A;B" \\ Ltd', "+34600")


def test_longest_line_asterisk_reads_is_accepted() -> None:
    value = "v" * (spool.MAX_LINE_BYTES - len("Setvar: X="))
    text = spool.build_call_file(
        channel="PJSIP/1", context="c", extension="s", variables={"X": value}
    )
    assert spool.parse_call_file(text)["variables"] == {"X": value}
    with pytest.raises(ValueError):
        spool.build_call_file(
            channel="PJSIP/1", context="c", extension="s", variables={"X": value + "v"}
        )


# The characters with a meaning to parse_line or ast_callerid_parse, plus Arabic and a few
# control characters, so that hypothesis mixes them more often than plain st.text() would.
_TRICKY = st.text(
    alphabet=st.sampled_from([*' \t#;\\"<>=:/()-.+*\r\n\0\x1bab1ع', "ل", "é"]),
    max_size=40,
)


@given(value=st.one_of(_TRICKY, st.text(max_size=40)))
def test_every_setvar_value_is_refused_or_read_back_exactly(value: str) -> None:
    try:
        text = spool.build_call_file(
            channel="PJSIP/1", context="c", extension="s", variables={"V": value}
        )
    except ValueError:
        return
    parsed = spool.parse_call_file(text)
    assert parsed["variables"] == {"V": value}
    assert parsed["valid"] and parsed["errors"] == [] and parsed["unknown"] == []
    assert len(text.split("\n")) == 9  # 8 lines and the final newline
    assert len(text.splitlines()) == 8  # no other line break either (NEL, U+2028)


@given(name=st.one_of(_TRICKY, st.text(max_size=40)))
def test_every_callerid_name_is_refused_or_read_back_exactly(name: str) -> None:
    try:
        text = spool.build_call_file(
            channel="PJSIP/1",
            context="c",
            extension="s",
            callerid=spool.format_callerid(name, "0777"),
        )
    except ValueError:
        return
    parsed = spool.parse_call_file(text)
    assert (parsed["cid_name"], parsed["cid_num"]) == (name, "0777")
    assert parsed["valid"] and parsed["unknown"] == []


def test_parse_follows_asterisk_rules() -> None:
    long_line = "Setvar: LONG=" + "z" * 1100
    text = (
        "# a comment line\n"
        "channel: SIP/1001\n"
        "CALLERID: Support <(555) 123-4567>\n"
        "Application: Playback ; trailing comment\n"
        "Data: tt-monkeys # a comment after a blank\n"
        "MaxRetries: 3x\n"
        "RetryTime: 0\n"
        "WaitTime: abc\n"
        "Priority: -2\n"
        f"{long_line}\n"
        "Setvar: AFTER=long\n"
        "Set: A=1\n"
        "Setvar: A=2\n"
        "Setvar: NOEQUALS\n"
        "Frobnicate: yes\n"
        "no colon here\n"
        "Archive: On\n"
        "AlwaysDelete: no\n"
        "\n"
        "StartRetry: 4242 1 (1712345678)\n"
        "EndRetry: 4242 1 (1712345690)\n"
    )
    parsed = spool.parse_call_file(text)
    assert parsed["valid"]
    assert parsed["channel"] == "SIP/1001"
    assert (parsed["cid_name"], parsed["cid_num"]) == ("Support", "5551234567")
    assert (parsed["application"], parsed["data"]) == ("Playback", "tt-monkeys")
    assert parsed["maxretries"] == 3  # sscanf reads the leading digits
    assert (parsed["retrytime"], parsed["waittime"], parsed["priority"]) == (300, 45, 1)
    assert parsed["setvar"] == [("AFTER", "long"), ("A", "1"), ("A", "2")]
    assert parsed["variables"] == {"AFTER": "long", "A": "2"}
    assert parsed["unknown"] == ["Frobnicate"]
    assert parsed["archive"] and not parsed["alwaysdelete"]
    assert parsed["retries"] == 1 and parsed["callingpid"] == 0
    assert len(parsed["errors"]) == 6  # 3 bad numbers, the long line, NOEQUALS, no colon


def test_parse_without_channel_or_target_is_invalid() -> None:
    assert not spool.parse_call_file("Context: survey\nExtension: s\n")["valid"]
    assert not spool.parse_call_file("Channel: PJSIP/1001\n")["valid"]
    assert not spool.parse_call_file("Channel: 1001\nExtension: s\n")["valid"]
    assert spool.parse_call_file(b"Channel: Local/s@x\nExtension: s")["valid"]


def test_parse_nul_and_overlong_last_line() -> None:
    # strlen() stops at a NUL, so apply_outgoing treats the line as over-long and also drops
    # the next one while "consuming the rest" of it.
    parsed = spool.parse_call_file(b"Channel: PJSIP/1\nContext: c\0x\nExtension: s\nPriority: 2\n")
    assert parsed["context"] == "" and parsed["extension"] == ""
    assert parsed["priority"] == 2
    # A last line without a newline is read if it fits in the buffer.
    assert spool.parse_call_file("Extension: " + "9" * 1011)["extension"] == "9" * 1011
    assert spool.parse_call_file("Extension: " + "9" * 1012)["extension"] == ""


async def test_schedule_call_writes_from_a_thread(tmp_path: Path) -> None:
    paths = await asyncio.gather(
        *(
            spool.schedule_call(tmp_path, **_args(variables={"CENTRALITA_CALL_ID": str(i)}))
            for i in range(20)
        )
    )
    assert len(set(paths)) == 20
    ids = {spool.parse_call_file(p.read_text())["variables"]["CENTRALITA_CALL_ID"] for p in paths}
    assert ids == {str(i) for i in range(20)}
    assert all(p.stat().st_mtime_ns == DUE_NS for p in paths)
    assert _listing(tmp_path / "tmp") == []


def test_tmp_on_another_filesystem_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clean machine need not have a second filesystem, so `tmp/` is made to report another
    # device: the spool compares the two folders' st_dev before writing anything.
    other_device = tmp_path / "tmp"
    real_stat = Path.stat

    def stat(self: Path, *, follow_symlinks: bool = True) -> os.stat_result:
        result = real_stat(self, follow_symlinks=follow_symlinks)
        if self == other_device:
            fields = list(result)
            fields[2] += 1  # st_dev
            return os.stat_result(fields)
        return result

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(OSError) as info:
        spool.write_call_file(tmp_path, **_args())
    assert info.value.errno == errno.EXDEV
    assert _listing(tmp_path / "tmp") == [] and _listing(tmp_path / "outgoing") == []


def test_sweep_tmp_removes_only_our_leftovers(tmp_path: Path) -> None:
    tmp_dir, _ = spool.spool_dirs(tmp_path)
    (tmp_dir / "centralita-1-abc.call").write_text("Channel: PJSIP/1\n")
    (tmp_dir / "voicemail-msg0001.txt").write_text("not ours\n")
    assert spool.sweep_tmp(tmp_path, max_age_s=3600) == 0  # too recent
    assert spool.sweep_tmp(tmp_path, max_age_s=-1) == 1
    assert _listing(tmp_dir) == ["voicemail-msg0001.txt"]
    assert spool.sweep_tmp(tmp_path / "nowhere") == 0
