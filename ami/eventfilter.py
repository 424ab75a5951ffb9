"""manager.conf's `eventfilter` as Asterisk applies it, sans-IO: for the fake AMI and the
benchmarks, so that what they send a user is what Asterisk would send it.

Read in main/manager.c of Asterisk 20.20.1 (`manager_add_filter`, `match_eventdata`,
`filter_cmp_fn`, `should_send_event`):

* A legacy filter, `eventfilter = REGEX` (`!REGEX` excludes), is a POSIX extended regex
  searched in the whole event text.
* An advanced filter, `eventfilter(action(include|exclude),name(E),header(H),method(M)) =
  PATTERN`: `name` keeps events named exactly E; `header` restricts the match to the value of
  each line that starts with `H:` (blanks after the colon skipped, empty values ignored);
  `method` is regex, exact, starts_with, ends_with, contains, or none (the default: every
  event the name and header select matches; then PATTERN must be empty).
* No filter: every event is sent. Include filters only: an event is sent when one matches.
  Exclude filters only: when none matches. Both: when an include and no exclude matches.

Filters apply to events only: responses and the items of list actions (QueueStatus,
CoreShowChannels, DeviceStateList) are written straight to the session and are never filtered.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ami.protocol import AmiError, AmiMessage, encode_packet

METHODS = frozenset({"regex", "exact", "starts_with", "ends_with", "contains", "none"})


class EventFilterError(AmiError, ValueError):
    """An `eventfilter` line Asterisk would refuse (FILTER_FORMAT_ERROR / COMPILE_FAIL)."""


@dataclass(frozen=True, slots=True)
class FilterEntry:
    """One `eventfilter` line, parsed."""

    exclude: bool
    name: str | None
    header: str | None  # with its colon, as manager.c keeps it
    method: str
    pattern: str
    regex: re.Pattern[str] | None

    def matches(self, msg: AmiMessage, text: Callable[[], str]) -> bool:
        """Does the event (`text()`: its bytes as manager.c holds them) match?"""
        if self.name is not None and msg.name != self.name:
            return False
        if self.header is None:
            return self.method == "none" or self._match(text())
        for line in text().split("\r\n"):
            if line.startswith(self.header):
                value = line[len(self.header) :].lstrip(" \t")
                if value and self._match(value):
                    return True
        return False

    def _match(self, data: str) -> bool:
        method, pattern = self.method, self.pattern
        if method == "none":
            return True
        if method == "regex":
            return self.regex is not None and self.regex.search(data) is not None
        if method == "starts_with":
            return data.startswith(pattern)
        if method == "ends_with":
            return data.endswith(pattern)
        if method == "contains":
            return pattern in data
        return data == pattern  # exact


def parse_filter(criteria: str, pattern: str) -> FilterEntry:
    """One manager.conf line: `criteria` (`eventfilter` or `eventfilter(...)`) = `pattern`."""
    criteria = criteria.strip()
    if not criteria.startswith("eventfilter"):
        raise EventFilterError(f"{criteria!r} is not an eventfilter")
    exclude = pattern.startswith("!")
    if exclude:
        pattern = pattern[1:]
    options = criteria[len("eventfilter") :].strip()
    if not options:  # legacy: a regex over the whole event
        if not pattern:
            raise EventFilterError("a legacy eventfilter needs a pattern")
        return FilterEntry(exclude, None, None, "regex", pattern, _compile(pattern))
    if not (options.startswith("(") and options.endswith(")")):
        raise EventFilterError(f"{criteria!r}: filter options not formatted correctly")
    name = header = None
    method = "none"
    found = False
    for option in re.split(r"[ ,)]+", options[1:]):
        if not option:
            continue
        key, _, value = option.partition("(")
        value = value.strip()
        found = True
        if key == "action" and value in ("include", "exclude"):
            exclude = value == "exclude"
        elif key == "name" and value:
            name = value
        elif key == "header" and value:
            header = value if value.endswith(":") else value + ":"
        elif key == "method" and value in METHODS:
            method = value
        else:
            raise EventFilterError(f"{criteria!r}: option {option!r} is unknown")
    if not found:
        raise EventFilterError(f"{criteria!r}: no action, name, header or method")
    if bool(pattern) == (method == "none"):
        raise EventFilterError(f"{criteria!r} = {pattern!r}: method and pattern disagree")
    regex = _compile(pattern) if method == "regex" else None
    return FilterEntry(exclude, name, header, method, pattern, regex)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise EventFilterError(f"regex {pattern!r}: {exc}") from None


class EventFilter:
    """A user's `eventfilter` lines (`should_send_event` semantics, module docstring)."""

    def __init__(self, entries: Iterable[FilterEntry] = ()) -> None:
        entries = list(entries)
        self.includes = [e for e in entries if not e.exclude]
        self.excludes = [e for e in entries if e.exclude]

    @classmethod
    def from_lines(cls, lines: Iterable[tuple[str, str]]) -> EventFilter:
        return cls(parse_filter(criteria, pattern) for criteria, pattern in lines)

    def __bool__(self) -> bool:
        return bool(self.includes or self.excludes)

    def passes(self, msg: AmiMessage) -> bool:
        """Would Asterisk send this event to the user?"""
        if not self:
            return True

        @functools.cache
        def text() -> str:  # only for the filters that read more than the name
            return encode_packet(msg.headers).decode("utf-8")

        if self.includes and not any(e.matches(msg, text) for e in self.includes):
            return False
        return not any(e.matches(msg, text) for e in self.excludes)


def manager_conf_filter(text: str, user: str) -> EventFilter:
    """The `eventfilter` lines of `[user]` in a manager.conf text (comments and other
    sections skipped; `key = value` lines as Asterisk's config parser splits them)."""
    lines: list[tuple[str, str]] = []
    section = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and "]" in line:
            section = line[1 : line.index("]")]
        elif section == user and "=" in line:
            key, _, value = line.partition("=")
            if key.strip().startswith("eventfilter"):
                lines.append((key.strip(), value.strip().lstrip(">").strip()))
    return EventFilter.from_lines(lines)
