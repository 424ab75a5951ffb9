"""The voicemail spool reader and the matcher of complaint messages to ratings, on the fixture
spool laid out as Asterisk's (tests/quality_support.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from quality_support import (
    CALL_ID,
    CALLER,
    LEGACY_CALLER,
    LEGACY_ORIGTIME,
    SPOOL_FIXTURE,
    lay_out_spool,
)

from centralita.store.records import Rating
from centralita.voicemail import (
    MATCH_WINDOW_S,
    Message,
    box_dir,
    caller_number,
    match_messages,
    parse_message,
    read_box,
)


def rating(rating_id: int, callerid: str, call_id: str, at: int = LEGACY_ORIGTIME - 20) -> Rating:
    created = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    return Rating(rating_id, created, callerid, "1002", "support-en", 2, call_id)


def message(number: str, origtime: int, category: str = "", name: str = "msg0000") -> Message:
    # Never opened: the matcher reads only the parsed fields.
    txt = Path("spool/voicemail/VoiceMail/600/INBOX") / f"{name}.txt"
    return Message(
        folder="INBOX",
        number=int(name[3:]),
        txt=txt,
        audio=txt.with_suffix(".wav"),
        callerid=f'"Centralita" <{number}>',
        caller_number=number,
        origtime=origtime,
        category=category,
        callerchan="",
        duration=3,
        msg_id="",
    )


def test_a_message_file_is_read_as_app_voicemail_writes_it() -> None:
    text = (SPOOL_FIXTURE / "voicemail/VoiceMail/600/INBOX/msg0000.txt").read_text()
    fields = parse_message(text)
    assert fields["callerid"] == f'"Centralita" <{CALLER}>'
    assert fields["category"] == CALL_ID
    assert fields["origtime"] == "1795943702"
    assert fields["duration"] == "3"
    # Comment lines and other sections are not fields; the first "=" splits a line.
    assert parse_message(';c\n[other]\na=1\n[message]\ncallerid="a=b" <1>\n') == {
        "callerid": '"a=b" <1>'
    }


@pytest.mark.parametrize(
    "callerid, number",
    [
        ('"Centralita" <600333444>', "600333444"),
        ("600333444", "600333444"),
        ("<+34600333444>", "+34600333444"),
        ("Unknown", ""),
        ('"Name only" <>', ""),
    ],
)
def test_the_caller_number_comes_out_of_a_merged_caller_id(callerid: str, number: str) -> None:
    assert caller_number(callerid) == number


def test_the_box_lists_its_folders_and_skips_what_is_not_a_message(tmp_path: Path) -> None:
    box = lay_out_spool(tmp_path)
    (box / "INBOX" / "msg0002.wav").write_bytes(b"audio without its .txt")
    (box / "INBOX" / "notes.txt").write_text("[message]\ncallerid=1\n")
    (box / "INBOX" / "msg0003.txt").write_text("not a message file\n")
    # Deleted on the phone (backupdeleted keeps a copy in Deleted/): not listed.
    (box / "Deleted").mkdir()
    (box / "Deleted" / "msg0000.txt").write_bytes((box / "INBOX" / "msg0000.txt").read_bytes())
    messages = read_box(tmp_path, "VoiceMail", "600")
    assert [m.name for m in messages] == ["Old/msg0000", "INBOX/msg0000", "INBOX/msg0001"]
    assert [m.caller_number for m in messages] == ["600777888", CALLER, LEGACY_CALLER]
    assert all(m.audio is not None and m.audio.is_file() for m in messages)
    assert [m.category for m in messages] == ["1795881650.3", CALL_ID, ""]
    assert [m.duration for m in messages] == [2, 3, 4]
    # A message without its .wav is listed without audio.
    (box / "Old" / "msg0000.wav").unlink()
    assert read_box(tmp_path, "VoiceMail", "600")[0].audio is None


def test_a_box_not_made_yet_has_no_messages(tmp_path: Path) -> None:
    assert read_box(tmp_path, "VoiceMail", "600") == []


@pytest.mark.parametrize("box", ["..", "../600", "6/0", "", "600\n"])
def test_a_box_name_is_never_a_path(tmp_path: Path, box: str) -> None:
    with pytest.raises(ValueError, match="plain name"):
        box_dir(tmp_path, "VoiceMail", box)


def test_the_category_names_the_rated_call() -> None:
    ratings = [rating(1, CALLER, CALL_ID, at=0), rating(2, "600999000", "1795943000.1", at=0)]
    left = message(CALLER, 1795943702, category=CALL_ID)
    # Time does not matter when the message names the call.
    assert match_messages(ratings, [left]) == {1: left}


def test_a_category_with_another_callers_number_is_not_theirs() -> None:
    left = message("600000001", 1795943702, category=CALL_ID)
    assert match_messages([rating(1, CALLER, CALL_ID)], [left]) == {}


def test_without_a_category_the_caller_and_the_time_match_when_unambiguous() -> None:
    left = message(LEGACY_CALLER, LEGACY_ORIGTIME)
    assert match_messages([rating(7, LEGACY_CALLER, "1.1")], [left]) == {7: left}
    # Too late, too early, or another caller: no match.
    late = rating(7, LEGACY_CALLER, "1.1", at=LEGACY_ORIGTIME - MATCH_WINDOW_S - 1)
    early = rating(7, LEGACY_CALLER, "1.1", at=LEGACY_ORIGTIME + 60)
    other = rating(7, "600000002", "1.1")
    for candidate in (late, early, other):
        assert match_messages([candidate], [left]) == {}


def test_two_surveys_of_one_caller_minutes_apart_show_no_unlabelled_message() -> None:
    left = message(LEGACY_CALLER, LEGACY_ORIGTIME)
    first = rating(1, LEGACY_CALLER, "1.1", at=LEGACY_ORIGTIME - 100)
    second = rating(2, LEGACY_CALLER, "1.2", at=LEGACY_ORIGTIME - 10)
    assert match_messages([first, second], [left]) == {}
    # Two unlabelled messages near one rating: neither is taken.
    again = message(LEGACY_CALLER, LEGACY_ORIGTIME + 30, name="msg0001")
    assert match_messages([second], [left, again]) == {}


def test_a_labelled_message_is_never_taken_by_the_fallback() -> None:
    labelled = message(LEGACY_CALLER, LEGACY_ORIGTIME, category="1795000000.9")
    assert match_messages([rating(3, LEGACY_CALLER, "1.1")], [labelled]) == {}


def test_the_fixture_spool_matches_its_ratings(tmp_path: Path) -> None:
    lay_out_spool(tmp_path)
    ratings = [
        rating(1, CALLER, CALL_ID, at=1795943690),
        rating(2, LEGACY_CALLER, "1795948800.4", at=LEGACY_ORIGTIME - 15),
        rating(3, "600000003", "1795000000.1"),
    ]
    found = match_messages(ratings, read_box(tmp_path, "VoiceMail", "600"))
    assert {k: v.name for k, v in found.items()} == {1: "INBOX/msg0000", 2: "INBOX/msg0001"}
