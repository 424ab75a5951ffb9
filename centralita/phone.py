"""Phone-number keys for matching callers to call records and contacts.

Caller IDs arrive in many spellings (`+34 915 550 123`, `0034915550123`, `915550123`,
`"Bob" <+34915550123>`, `sip:915550123@host`). `normalize` turns them into one key so a
returning caller is found with an indexed equality lookup instead of `LIKE '%digits'`.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

# Caller IDs that mean "withheld". Asterisk reports a withheld number as an empty CallerIDNum
# or one of these words, depending on the trunk (chan_pjsip uses "anonymous" from
# `From: "Anonymous" <sip:anonymous@anonymous.invalid>`, RFC 3323).
PRIVATE_MARKERS = frozenset(
    {
        "",
        "anonymous",
        "private",
        "unknown",
        "<unknown>",
        "restricted",
        "unavailable",
        "withheld",
        "anonymous@anonymous.invalid",
    }
)

# A caller ID longer than this is not a phone number; only its digits are looked at.
_MAX_PARSE_LEN = 64
_ANGLE = re.compile(r"<([^<>]*)>")


def _number_part(callerid: str) -> str:
    """The number inside a full caller ID: `"Name" <num>` -> num, `sip:num@host` -> num."""
    text = callerid.strip()
    match = _ANGLE.search(text)
    if match:
        text = match.group(1).strip()
    lowered = text.lower()
    for scheme in ("sip:", "sips:", "tel:"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    if "@" in text and text.lower() not in PRIVATE_MARKERS:
        text = text.split("@", 1)[0]
    return text.strip()


def is_private(callerid: str | None) -> bool:
    """True when the caller ID is withheld: empty, a marker word, or without any digit."""
    if callerid is None:
        return True
    text = _number_part(callerid)
    if text.lower() in PRIVATE_MARKERS or callerid.strip().lower() in PRIVATE_MARKERS:
        return True
    return not any(c.isdigit() for c in text)


# One call's number is looked up several times as it rings and ends (its contacts, its
# history, its two call records); phonenumbers' parse is the costly part (pure Python, some
# hundred microseconds), and its answer depends on the arguments alone.
@functools.lru_cache(maxsize=4096)
def normalize(
    number: str | None,
    region: str = "ES",
    match_digits: int = 10,
    min_digits: int = 6,
) -> str | None:
    """Canonical matching key for a caller number, or None when there is nothing to match.

    A number that `phonenumbers` parses as possible (in `region` when it has no `+`/IDD
    prefix) gives its E.164 digits without `+`; anything else gives its last `match_digits`
    digits. Withheld caller IDs and numbers with fewer than `min_digits` digits give None.
    """
    if number is None or is_private(number):
        return None
    text = _number_part(number)
    # Only ASCII digits count: int("٣") works but a trunk never sends Arabic-Indic digits.
    digits = "".join(c for c in text if "0" <= c <= "9")
    if len(digits) < min_digits:
        return None
    if len(text) <= _MAX_PARSE_LEN:
        candidate = ("+" + digits) if text.lstrip().startswith("+") else digits
        try:
            parsed = phonenumbers.parse(candidate, region.upper() or None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.is_possible_number(parsed):
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            return e164.lstrip("+")
    return digits[-match_digits:]


# What a person may type or paste around a number in the dial box: spaces (also the
# no-break and thin spaces of copied text), dashes, dots, slashes and brackets.
_DIAL_SEPARATORS = frozenset(" \u00a0\u2009\u202f-\u2010\u2011\u2012\u2013.()/")
_DIAL_KEYS = frozenset("0123456789*#")
MIN_DIAL_DIGITS = 3  # the shortest thing worth dialling: an emergency or service number
MAX_DIAL_TEXT = 64


class DialNumberError(ValueError):
    """Not a number to dial; the message says why (shown to the agent)."""


def dial_number(text: object, region: str) -> tuple[str, str]:
    """(number to dial, how to show it) for a number typed or pasted in the dial box.

    Separators go (spaces, dashes, dots, slashes, brackets) and so does a `(0)` national
    prefix. A number written with its country code, after `+` or the international prefix of
    `region` (`+212 522-000 111`, `0034 915 550 123` in ES), is dialled as E.164
    (`+212522000111`, `+34915550123`), when phonenumbers knows it as a possible number. A
    number written without one is dialled as its digits, as the trunk would take it from a
    phone here (`(0)91 555 01 23` -> `915550123`; an extension `1002` stays `1002`). Anything
    but digits, separators, `+` (first), `*` and `#`, or fewer than MIN_DIAL_DIGITS digits,
    raises DialNumberError.
    """
    if not isinstance(text, str):
        raise DialNumberError("the number to dial must be text")
    if len(text) > MAX_DIAL_TEXT:
        raise DialNumberError(f"the number to dial is longer than {MAX_DIAL_TEXT} characters")
    stripped = text.strip(" \t\u00a0")
    if not stripped:
        raise DialNumberError("the number to dial is empty")
    # "(0)" is the national prefix written after a country code (+44 (0)20 ...) or before
    # a number shown for callers at home and abroad: never dialled from abroad.
    cleaned = stripped.replace("(0)", "")
    plus = cleaned.startswith("+")
    keys = []
    for ch in cleaned[1:] if plus else cleaned:
        if ch in _DIAL_KEYS:
            keys.append(ch)
        elif ch not in _DIAL_SEPARATORS:
            raise DialNumberError(
                "the number to dial may only contain digits, spaces, dashes, dots, brackets, "
                f"+ (first), * and #, not {ch!r}"
            )
    digits = "".join(keys)
    if sum(c.isdigit() for c in digits) < MIN_DIAL_DIGITS:
        raise DialNumberError("the number to dial is too short")
    if "*" in digits or "#" in digits:
        if plus:
            raise DialNumberError("a number with + has no * or #")
        return digits, digits  # a feature code, dialled as typed
    try:
        parsed = phonenumbers.parse(
            ("+" if plus else "") + digits, region.upper(), keep_raw_input=True
        )
    except phonenumbers.NumberParseException:
        parsed = None
    source = parsed.country_code_source if parsed is not None else None
    international = source in (
        phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
        phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD,
    )
    possible = parsed is not None and phonenumbers.is_possible_number(parsed)
    if international:
        if not possible:
            raise DialNumberError("this is not a phone number (check the country code)")
        assert parsed is not None
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        shown = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return e164, shown
    if plus:
        raise DialNumberError("this is not a phone number (check the country code)")
    if possible:
        assert parsed is not None
        return digits, phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return digits, digits
