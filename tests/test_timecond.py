"""Time conditions: ranges, weekdays, holidays, time zones and DST, as GotoIfTime reads them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import make_settings
from hypothesis import given
from hypothesis import strategies as st

from dialplan.model import Destination, TimeCondition, TimeRange
from dialplan.timecond import destination_at, follow, is_inside, range_holds

MADRID = ZoneInfo("Europe/Madrid")
INSIDE = Destination("ivr", "main")
OUTSIDE = Destination("voicemail", "600")
END_OF_DAY = time(23, 59, 59, 999999)  # how the model reads "24:00"


def condition(
    *ranges: TimeRange, holidays: tuple[date, ...] = (), tz: str = "Europe/Madrid"
) -> TimeCondition:
    return TimeCondition("office", 1, tz, ranges, holidays, INSIDE, OUTSIDE)


OFFICE = condition(TimeRange((0, 1, 2, 3, 4), time(9, 0), time(18, 0)))


def madrid(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=MADRID)


def test_office_hours_by_the_minute() -> None:
    # Wednesday 2026-06-17.
    assert not is_inside(OFFICE, madrid(2026, 6, 17, 8, 59, 59))
    assert is_inside(OFFICE, madrid(2026, 6, 17, 9, 0))
    assert is_inside(OFFICE, madrid(2026, 6, 17, 17, 59, 59))
    # 18:00 is closed: the renderer writes 09:00-17:59 because GotoIfTime includes its end.
    assert not is_inside(OFFICE, madrid(2026, 6, 17, 18, 0))
    assert destination_at(OFFICE, madrid(2026, 6, 17, 12, 0)) == INSIDE
    assert destination_at(OFFICE, madrid(2026, 6, 17, 20, 0)) == OUTSIDE


def test_weekend_is_outside() -> None:
    assert not is_inside(OFFICE, madrid(2026, 6, 20, 12, 0))  # Saturday
    assert not is_inside(OFFICE, madrid(2026, 6, 21, 12, 0))  # Sunday
    assert is_inside(OFFICE, madrid(2026, 6, 22, 12, 0))  # Monday


def test_the_moment_is_read_in_the_condition_time_zone() -> None:
    # 07:30 UTC is 09:30 in Madrid (CEST) but 03:30 in New York.
    moment = datetime(2026, 6, 17, 7, 30, tzinfo=UTC)
    assert is_inside(OFFICE, moment)
    assert not is_inside(
        condition(*OFFICE.ranges, tz="America/New_York"),
        moment,
    )


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_inside(OFFICE, datetime(2026, 6, 17, 12, 0))


def test_holidays_are_outside_all_day() -> None:
    tc = condition(*OFFICE.ranges, holidays=(date(2026, 12, 25),))
    assert not is_inside(tc, madrid(2026, 12, 25, 12, 0))  # a Friday
    assert is_inside(tc, madrid(2026, 12, 24, 12, 0))
    # The holiday is a local date: 23:30 UTC on the 24th is already the 25th in Madrid.
    always = condition(
        TimeRange(tuple(range(7)), time(0, 0), END_OF_DAY), holidays=(date(2026, 12, 25),)
    )
    assert is_inside(always, datetime(2026, 12, 24, 22, 59, tzinfo=UTC))
    assert not is_inside(always, datetime(2026, 12, 24, 23, 0, tzinfo=UTC))
    assert is_inside(always, datetime(2026, 12, 25, 23, 0, tzinfo=UTC))  # the 26th in Madrid


def test_spring_forward_keeps_wall_clock_hours() -> None:
    # Europe/Madrid goes from 02:00 CET to 03:00 CEST on Sunday 2026-03-29.
    tc = condition(TimeRange(tuple(range(7)), time(9, 0), time(18, 0)))
    # Friday before: CET, UTC+1.
    assert not is_inside(tc, datetime(2026, 3, 27, 7, 59, tzinfo=UTC))
    assert is_inside(tc, datetime(2026, 3, 27, 8, 0, tzinfo=UTC))
    # Monday after: CEST, UTC+2, so opening moves an hour earlier in UTC.
    assert not is_inside(tc, datetime(2026, 3, 30, 6, 59, tzinfo=UTC))
    assert is_inside(tc, datetime(2026, 3, 30, 7, 0, tzinfo=UTC))
    assert not is_inside(tc, datetime(2026, 3, 30, 16, 0, tzinfo=UTC))  # 18:00 CEST
    # The skipped hour: a 02:00-03:00 range on that Sunday never matches; 00:59:59 UTC is
    # 01:59:59 CET and 01:00 UTC is already 03:00 CEST.
    night = condition(TimeRange((6,), time(2, 0), time(3, 0)))
    assert not is_inside(night, datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC))
    assert not is_inside(night, datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
    assert not any(
        is_inside(night, datetime(2026, 3, 28, 23, 0, tzinfo=UTC) + timedelta(minutes=m))
        for m in range(0, 240)
    )


def test_fall_back_repeats_the_hour() -> None:
    # On Sunday 2026-10-25 Madrid goes from 03:00 CEST back to 02:00 CET: 02:xx happens twice.
    night = condition(TimeRange((6,), time(2, 0), time(3, 0)))
    assert is_inside(night, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
    assert is_inside(night, datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET
    assert not is_inside(night, datetime(2026, 10, 25, 2, 0, tzinfo=UTC))  # 03:00 CET
    inside = [
        m
        for m in range(0, 300)
        if is_inside(night, datetime(2026, 10, 24, 23, 0, tzinfo=UTC) + timedelta(minutes=m))
    ]
    assert len(inside) == 120  # two wall-clock hours of 02:00-02:59


def test_range_past_midnight_wraps_on_the_same_weekday() -> None:
    # GotoIfTime(22:00-05:59,fri,...): Friday's early morning and Friday's late evening.
    tc = condition(TimeRange((4,), time(22, 0), time(6, 0)))
    assert is_inside(tc, madrid(2026, 6, 19, 23, 30))  # Friday night
    assert is_inside(tc, madrid(2026, 6, 19, 5, 59))  # Friday early morning
    assert not is_inside(tc, madrid(2026, 6, 19, 6, 0))
    assert not is_inside(tc, madrid(2026, 6, 20, 1, 0))  # Saturday early morning
    assert not is_inside(tc, madrid(2026, 6, 19, 21, 59))


def test_end_of_day_and_whole_day() -> None:
    late = condition(TimeRange((0,), time(20, 0), END_OF_DAY))
    assert is_inside(late, madrid(2026, 6, 15, 23, 59, 59))
    assert not is_inside(late, madrid(2026, 6, 16, 0, 0))
    assert not is_inside(late, madrid(2026, 6, 15, 19, 59))
    # An empty list of ranges is never inside.
    assert not is_inside(condition(), madrid(2026, 6, 15, 12, 0))


def test_several_ranges() -> None:
    split = condition(
        TimeRange((0, 1, 2, 3, 4), time(9, 0), time(14, 0)),
        TimeRange((0, 1, 2, 3, 4), time(16, 0), time(19, 0)),
        TimeRange((5,), time(10, 0), time(13, 0)),
    )
    assert is_inside(split, madrid(2026, 6, 15, 13, 59))
    assert not is_inside(split, madrid(2026, 6, 15, 15, 0))
    assert is_inside(split, madrid(2026, 6, 15, 18, 30))
    assert is_inside(split, madrid(2026, 6, 20, 11, 0))
    assert not is_inside(split, madrid(2026, 6, 20, 15, 0))


@given(
    days=st.sets(st.integers(0, 6), min_size=1),
    start=st.integers(0, 1439),
    length=st.integers(1, 1439),
    weekday=st.integers(0, 6),
    minute=st.integers(0, 1439),
)
def test_range_matches_gotoiftime_minute_mask(
    days: set[int], start: int, length: int, weekday: int, minute: int
) -> None:
    """The evaluator agrees with a direct port of get_timerange's bit loop (pbx_timing.c)."""
    end = (start + length) % 1440
    r = TimeRange(tuple(sorted(days)), time(start // 60, start % 60), time(end // 60, end % 60))
    # The renderer writes end minus one minute; get_timerange then sets start..that, cyclic.
    last = (end - 1) % 1440
    mask = set()
    x = start
    while x != last:
        mask.add(x)
        x = (x + 1) % 1440
    mask.add(x)
    assert range_holds(r, weekday, minute) == (weekday in days and minute in mask)


def test_the_demo_condition_is_open_around_the_clock(tmp_path: Path) -> None:
    site = make_settings(tmp_path).site
    tc = site.time_condition("office-hours")
    assert tc is not None
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for step in range(0, 366 * 24 * 4):  # every quarter hour of a year, DST changes included
        moment = start + timedelta(minutes=15 * step)
        assert is_inside(tc, moment), moment
    assert follow(site, site.entry, start) == Destination("ivr", "main")


def test_the_commented_office_hours_send_after_hours_to_voicemail(tmp_path: Path) -> None:
    def office_hours(text: str) -> str:
        return text.replace(
            'days = "mon-sun"\nstart = "00:00"\nend = "24:00"',
            'days = "mon-fri"\nstart = "09:00"\nend = "18:00"',
        )

    site = make_settings(tmp_path, office_hours).site
    entry = site.entry
    assert follow(site, entry, madrid(2026, 6, 17, 10, 0)) == Destination("ivr", "main")
    assert follow(site, entry, madrid(2026, 6, 17, 19, 0)) == Destination("voicemail", "600")
    assert follow(site, entry, madrid(2026, 6, 20, 10, 0)) == Destination("voicemail", "600")


def test_follow_refuses_loops(tmp_path: Path) -> None:
    looping = """
[[time_conditions]]
name = "a"
id = 2
inside = "time:b"
outside = "time:b"

[[time_conditions]]
name = "b"
id = 3
inside = "time:a"
outside = "time:a"
"""
    site = make_settings(tmp_path, lambda text: text + looping).site
    with pytest.raises(ValueError, match="loop"):
        follow(site, Destination("time", "a"), madrid(2026, 6, 17, 10, 0))
