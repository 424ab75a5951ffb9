"""Evaluating time conditions: is a moment inside a condition's open hours?

This is the reference for what the generated dialplan does with GotoIfTime (main/pbx_timing.c
in Asterisk 20.20.1), so that tests and `centralita` tools agree with Asterisk:

- The moment is taken in the condition's time zone (zoneinfo; `ast_localtime` with the
  GotoIfTime timezone field), so daylight-saving changes move the hours with the wall clock.
- A holiday (a whole local date) is outside, whatever the ranges say.
- Time is compared by the minute (ast_check_timing2 tests `tm_min` only): a range 09:00-18:00
  holds 09:00:00 to 17:59:59. `24:00` is the end of the day.
- A range whose end is not after its start wraps past midnight *on the same weekday*, as
  GotoIfTime does (days and minutes are separate masks): `days = "fri"`, 22:00-06:00 holds
  Friday 00:00-05:59 and Friday 22:00-23:59. Write two ranges for a night that crosses into
  the next day.
- No range at all means never inside.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from dialplan.model import Destination, Site, TimeCondition, TimeRange

MINUTES_PER_DAY = 24 * 60


def _minute(t: time) -> int:
    return t.hour * 60 + t.minute


def _last_minute(end: time) -> int:
    """The last minute a range holds. The model reads `24:00` as 23:59:59.999999, already
    inside the last minute; any other end HH:MM is exclusive (the renderer writes it as the
    minute before, because get_timerange also sets the bit of its end minute)."""
    if end.second or end.microsecond:
        return _minute(end)
    return (_minute(end) - 1) % MINUTES_PER_DAY


def range_holds(r: TimeRange, weekday: int, minute: int) -> bool:
    """True if the local `weekday` (0 = Monday) and `minute` of the day fall in `r`."""
    if weekday not in r.days:
        return False
    start = _minute(r.start)
    # Cyclic, like get_timerange's loop `for (x = start; x != end; x = (x + 1) % 1440)`.
    span = (_last_minute(r.end) - start) % MINUTES_PER_DAY
    return (minute - start) % MINUTES_PER_DAY <= span


def local_time(tc: TimeCondition, moment: datetime) -> datetime:
    """`moment` on the condition's wall clock. A naive moment is refused: its zone is unknown."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a time condition needs a timezone-aware moment")
    return moment.astimezone(ZoneInfo(tc.timezone))


def is_inside(tc: TimeCondition, moment: datetime) -> bool:
    """True if `moment` is inside the condition's open hours (and not on a holiday)."""
    local = local_time(tc, moment)
    if local.date() in tc.holidays:
        return False
    weekday = local.weekday()
    minute = local.hour * 60 + local.minute
    return any(range_holds(r, weekday, minute) for r in tc.ranges)


def destination_at(tc: TimeCondition, moment: datetime) -> Destination:
    """Where the condition sends a call at `moment`: `inside` or `outside`."""
    return tc.inside if is_inside(tc, moment) else tc.outside


def follow(site: Site, destination: Destination, moment: datetime, limit: int = 16) -> Destination:
    """Follow `time:NAME` destinations at `moment` until one is not a time condition.

    A chain longer than `limit` (or a loop) raises ValueError; an unknown condition name
    raises KeyError.
    """
    seen: list[str] = []
    while destination.kind == "time":
        if destination.target in seen or len(seen) >= limit:
            raise ValueError("time conditions loop: " + " -> ".join([*seen, destination.target]))
        seen.append(destination.target)
        tc = site.time_condition(destination.target)
        if tc is None:
            raise KeyError(f"no time condition named {destination.target!r}")
        destination = destination_at(tc, moment)
    return destination
