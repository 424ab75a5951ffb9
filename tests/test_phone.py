"""phone.normalize: one key per caller, whatever the spelling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centralita.phone import is_private, normalize


@pytest.mark.parametrize(
    "spelling",
    [
        "+34 915 550 123",
        "0034915550123",
        "915550123",
        "+34915550123",  # as in asterisk-traces/ami-queue-sip-call.txt
        "91 555 01 23",
        "(91) 555-01-23",
        '"Bob Customer" <+34915550123>',
        "sip:915550123@trunk.example",
        "00 34 91 555 01 23",
    ],
)
def test_spanish_spellings_share_one_key(spelling: str) -> None:
    assert normalize(spelling, "ES") == "34915550123"


def test_region_decides_national_numbers() -> None:
    assert normalize("0612345678", "FR") == "33612345678"
    assert normalize("+33 6 12 34 56 78", "FR") == "33612345678"
    assert normalize("0033612345678", "FR") == "33612345678"
    # The same national digits in another region are another subscriber.
    assert normalize("612345678", "ES") == "34612345678"
    assert normalize("+212 612 345 678", "ES") == "212612345678"


def test_impossible_numbers_fall_back_to_last_digits() -> None:
    # 10 digits are not a possible Spanish number: the last match_digits digits are the key.
    assert normalize("5551234567", "ES") == "5551234567"
    assert normalize("005551234567", "ES", match_digits=10) == "5551234567"
    assert normalize("5550001", "ES") == "5550001"
    assert normalize("12345678901234567", "ES", match_digits=8) == "01234567"
    assert normalize("1" * 80, "ES", match_digits=10) == "1" * 10


def test_fallback_is_exactly_the_tail() -> None:
    assert normalize("999999999999999999991234567890", "ES", match_digits=10) == "1234567890"
    assert normalize("999999999999999999991234567890", "ES", match_digits=6) == "567890"


@pytest.mark.parametrize(
    "callerid",
    [
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "PRIVATE",
        "unknown",
        "<unknown>",
        "restricted",
        "anonymous@anonymous.invalid",
        '"Anonymous" <sip:anonymous@anonymous.invalid>',
        "abc",
    ],
)
def test_withheld_caller_ids(callerid: str) -> None:
    assert is_private(callerid)
    assert normalize(callerid) is None


def test_short_numbers_have_no_key() -> None:
    assert not is_private("1001")
    assert normalize("1001") is None  # an extension, not a customer
    assert normalize("12345", min_digits=6) is None
    assert normalize("12345", min_digits=5) == "12345"
    assert normalize(None) is None
    assert is_private(None)


def test_is_private_false_for_numbers() -> None:
    assert not is_private("+34915550123")
    assert not is_private('"Bob" <5551234567>')


@given(st.text(max_size=200))
def test_never_raises_and_key_is_digits(text: str) -> None:
    key = normalize(text)
    assert key is None or (key.isdigit() and key.isascii() and 6 <= len(key) <= 15)


@given(st.from_regex(r"[6-9][0-9]{8}", fullmatch=True))
def test_spanish_formats_agree(national: str) -> None:
    key = normalize(national, "ES")
    assert key is not None
    assert normalize("+34" + national, "ES") == key
    assert normalize("0034" + national, "ES") == key
    assert normalize(f"{national[:3]} {national[3:6]} {national[6:]}", "ES") == key
