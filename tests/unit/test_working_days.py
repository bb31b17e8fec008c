"""Working-day arithmetic against the real 2026 Vietnamese calendar.

Office hours are the defaults, 07:30–11:30 and 13:00–17:00: one working day is
8 hours of office time, half a day is 4 hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from services.runtime.working_days import (
    DEFAULT_OVERRIDES,
    VIETNAM_TZ,
    CalendarError,
    WorkingDayCalendar,
)


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in Vietnamese local time."""
    return datetime(year, month, day, hour, minute, tzinfo=VIETNAM_TZ)


@pytest.fixture(scope="module")
def calendar() -> WorkingDayCalendar:
    return WorkingDayCalendar()


def write_overrides(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overrides.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the calendar's data ----------------------------------------------------------


def test_tet_2026_break_runs_saturday_14_to_sunday_22_february(
    calendar: WorkingDayCalendar,
) -> None:
    # The Ministry of Home Affairs' notice: off Sat 14 – Sun 22 Feb 2026. The five
    # weekdays come from the library's lunar calendar, not from the override file.
    tet = [d for d, name in calendar.holidays_in(2026).items() if "Tết Nguyên Đán" in name]
    assert tet == [date(2026, 2, day) for day in range(16, 21)]
    assert not any(calendar.is_working_day(date(2026, 2, day)) for day in range(14, 23))
    assert calendar.is_working_day(date(2026, 2, 13))
    assert calendar.is_working_day(date(2026, 2, 23))


def test_default_override_file_swaps_2_january_for_saturday_10_january_2026(
    calendar: WorkingDayCalendar,
) -> None:
    assert DEFAULT_OVERRIDES.is_file()
    assert not calendar.is_working_day(date(2026, 1, 2))
    assert calendar.is_working_day(date(2026, 1, 10))
    assert "2026-01-02" in {d.isoformat() for d in calendar.holidays_in(2026)}
    # Received Wed 31 Dec 2025 09:00, 2 days = 16 h. Wed: 09:00–11:30 + 13:00–17:00
    # = 6.5 h; Thu 1 Jan (New Year) and Fri 2 Jan (swap) off, then the weekend;
    # Mon 5 Jan 8 h (14.5 h); Tue 6 Jan 07:30 + 1.5 h = 09:00.
    assert calendar.add_working_time(at(2025, 12, 31, 9), Decimal(2)) == at(2026, 1, 6, 9)
    # Without the override file, Friday 2 January counts: one working day earlier.
    library_only = WorkingDayCalendar(overrides=None)
    assert library_only.is_working_day(date(2026, 1, 2))
    assert not library_only.is_working_day(date(2026, 1, 10))
    assert library_only.add_working_time(at(2025, 12, 31, 9), Decimal(2)) == at(2026, 1, 5, 9)


def test_library_swap_saturday_22_august_2026_is_a_working_day(
    calendar: WorkingDayCalendar,
) -> None:
    # holidays.Vietnam carries this swap itself (Mon 31 Aug off, Sat 22 Aug worked).
    assert calendar.is_working_day(date(2026, 8, 22))
    assert not calendar.is_working_day(date(2026, 8, 31))
    assert not calendar.is_working_day(date(2026, 9, 1))
    assert not calendar.is_working_day(date(2026, 9, 2))
    assert not calendar.is_working_day(date(2026, 11, 24))  # Culture Day, from 2026


# -- deadlines across holidays ------------------------------------------------------


def test_dossier_received_before_tet_2026_lands_after_the_break(
    calendar: WorkingDayCalendar,
) -> None:
    # Thu 12 Feb 2026 09:00, 8 days = 64 h of office time.
    #   Thu 12 Feb  09:00–11:30, 13:00–17:00   6.5 h   (6.5)
    #   Fri 13 Feb  full day                   8 h     (14.5)
    #   Sat 14 – Sun 22 Feb: Tết break, nothing
    #   Mon 23 – Fri 27 Feb: 5 x 8 h           40 h    (54.5)
    #   Mon 2 Mar   full day                   8 h     (62.5)
    #   Tue 3 Mar   07:30 + 1.5 h  -> 09:00            (64)
    received = at(2026, 2, 12, 9)
    expected = at(2026, 3, 3, 9)
    assert calendar.add_working_time(received, Decimal(8)) == expected
    assert calendar.appointment_date(received, Decimal(8)) == expected
    assert calendar.add_working_days(date(2026, 2, 12), 8) == date(2026, 3, 3)


def test_across_30_april_and_1_may_2026(calendar: WorkingDayCalendar) -> None:
    # Wed 29 Apr 14:00, 2 days = 16 h. Wed 14:00–17:00 = 3 h; Thu 30 Apr, Fri 1 May
    # and the weekend off; Mon 4 May 8 h (11 h); Tue 5 May 07:30–11:30 4 h (15 h),
    # then 13:00 + 1 h = 14:00.
    assert calendar.add_working_time(at(2026, 4, 29, 14), Decimal(2)) == at(2026, 5, 5, 14)
    assert calendar.add_working_days(date(2026, 4, 29), 1) == date(2026, 5, 4)


def test_hung_kings_day_2026_from_the_library(calendar: WorkingDayCalendar) -> None:
    # 10/3 lunar, as the library computes it; the "(nghỉ bù)" entry is the day in lieu.
    names = calendar.holidays_in(2026)
    hung_kings = [d for d, n in names.items() if "Hùng Vương" in n and "nghỉ bù" not in n]
    assert hung_kings == [date(2026, 4, 26)]
    assert hung_kings[0].weekday() == 6  # a Sunday, so Monday is given in lieu
    assert not calendar.is_working_day(date(2026, 4, 27))
    # Fri 24 Apr 13:00 + 1 day: Fri 13:00–17:00 = 4 h; Mon 27 Apr off (in lieu);
    # Tue 28 Apr 07:30 + 4 h = 11:30.
    assert calendar.add_working_time(at(2026, 4, 24, 13), Decimal(1)) == at(2026, 4, 28, 11, 30)
    # Fri 24 Apr 09:00 + 3 days = 24 h: Fri 6.5 h, Tue 28 8 h (14.5), Wed 29 8 h (22.5),
    # Thu 30 Apr and Fri 1 May off, Mon 4 May 07:30 + 1.5 h = 09:00.
    assert calendar.add_working_time(at(2026, 4, 24, 9), Decimal(3)) == at(2026, 5, 4, 9)


# -- override files -----------------------------------------------------------------


def test_bridging_day_in_override_file_moves_result_by_one_working_day(
    tmp_path: Path,
) -> None:
    path = write_overrides(
        tmp_path,
        """
[[2026.extra_days_off]]
date = 2026-03-02
reason = "Ngày nghỉ thử nghiệm"
source = "assumption, test only"
""",
    )
    bridged = WorkingDayCalendar(overrides=path)
    assert not bridged.is_working_day(date(2026, 3, 2))
    assert bridged.holidays_in(2026)[date(2026, 3, 2)] == "Ngày nghỉ thử nghiệm"
    # The Tết example (Tue 3 Mar 09:00 normally) now skips Mon 2 Mar: Wed 4 Mar 09:00.
    assert bridged.add_working_time(at(2026, 2, 12, 9), Decimal(8)) == at(2026, 3, 4, 9)
    assert bridged.add_working_days(date(2026, 2, 12), 8) == date(2026, 3, 4)


def test_make_up_saturday_counts_as_a_working_day(tmp_path: Path) -> None:
    path = write_overrides(
        tmp_path,
        """
[[2026.make_up_working_days]]
date = 2026-03-07
reason = "Làm bù"
""",
    )
    with_saturday = WorkingDayCalendar(overrides=path)
    assert date(2026, 3, 7).weekday() == 5
    assert with_saturday.is_working_day(date(2026, 3, 7))
    assert not with_saturday.is_working_day(date(2026, 3, 8))
    assert with_saturday.add_working_days(date(2026, 3, 6), 1) == date(2026, 3, 7)
    # Fri 6 Mar 15:00 + 0.5 day: 2 h on Friday, 2 h on the Saturday -> Sat 09:30.
    assert with_saturday.add_working_time(at(2026, 3, 6, 15), Decimal("0.5")) == at(2026, 3, 7, 9, 30)
    assert date(2026, 3, 7) not in with_saturday.holidays_in(2026)


def test_override_new_holiday_and_make_up_day_on_a_library_holiday(
    tmp_path: Path,
) -> None:
    path = write_overrides(
        tmp_path,
        """
[[2027.new_holidays]]
date = 2027-03-08
name = "Ngày lễ mới"

[[2026.make_up_working_days]]
date = 2026-08-31
reason = "Giả định: huỷ hoán đổi"
""",
    )
    custom = WorkingDayCalendar(overrides=path)
    assert not custom.is_working_day(date(2027, 3, 8))
    assert custom.holidays_in(2027)[date(2027, 3, 8)] == "Ngày lễ mới"
    # A make-up working day wins over a library day off, and leaves the display.
    assert custom.is_working_day(date(2026, 8, 31))
    assert date(2026, 8, 31) not in custom.holidays_in(2026)


MALFORMED = [
    pytest.param(
        "[[2026.extra_days_off]]\ndate = 2026-03-02\n",
        ["[2026].extra_days_off[0]", "2026-03-02", "'reason'"],
        id="missing-reason",
    ),
    pytest.param(
        '[[2026.extra_days_off]]\ndate = "2026-03-02"\nreason = "x"\n',
        ["[2026].extra_days_off[0]", "'date' must be a TOML local date"],
        id="quoted-date",
    ),
    pytest.param(
        '[[2026.make_up_working_days]]\ndate = 2026-01-10\nreason = "ok"\n'
        '[[2026.make_up_working_days]]\ndate = 2027-01-09\nreason = "typo"\n',
        ["[2026].make_up_working_days[1]", "2027-01-09", "not in 2026"],
        id="date-in-wrong-year",
    ),
    pytest.param(
        '[[2026.new_holidays]]\ndate = 2026-06-01\nname = "x"\nreasons = "y"\n',
        ["[2026].new_holidays[0]", "unknown field(s) reasons"],
        id="unknown-field",
    ),
    pytest.param(
        '[[2026.extra_days_off]]\ndate = 2026-03-02\nreason = "off"\n'
        '[[2026.make_up_working_days]]\ndate = 2026-03-02\nreason = "worked"\n',
        [
            "[2026].make_up_working_days",
            "2026-03-02",
            "already listed in extra_days_off",
        ],
        id="off-and-worked",
    ),
    pytest.param(
        '[[2026.bridging_days]]\ndate = 2026-03-02\nreason = "x"\n',
        ["[2026]", "unknown field(s) bridging_days"],
        id="unknown-kind",
    ),
    pytest.param(
        "[holidays]\nextra_days_off = []\n",
        ["[holidays]", "four-digit years"],
        id="not-a-year",
    ),
    pytest.param(
        "[[2026.extra_days_off]\ndate = 2026-03-02\n",
        ["not valid TOML"],
        id="bad-toml",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_malformed_override_file_names_the_entry(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write_overrides(tmp_path, text)
    with pytest.raises(CalendarError) as raised:
        WorkingDayCalendar(overrides=path)
    message = str(raised.value)
    for fragment in expected:
        assert fragment in message


def test_missing_override_file_is_a_calendar_error(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="not found"):
        WorkingDayCalendar(overrides=tmp_path / "absent.toml")


# -- office time --------------------------------------------------------------------


def test_half_day_across_lunch(calendar: WorkingDayCalendar) -> None:
    # Tue 10 Mar 10:30 + 4 h: 1 h to 11:30, lunch, 3 h from 13:00 -> 16:00.
    assert calendar.add_working_time(at(2026, 3, 10, 10, 30), Decimal("0.5")) == at(2026, 3, 10, 16)


def test_half_day_across_a_weekend(calendar: WorkingDayCalendar) -> None:
    # Fri 13 Mar 15:00 + 4 h: 2 h to 17:00, 2 h from Mon 16 Mar 07:30 -> 09:30.
    assert calendar.add_working_time(at(2026, 3, 13, 15), Decimal("0.5")) == at(2026, 3, 16, 9, 30)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Inside lunch: the budget starts at 13:00.
        (at(2026, 3, 10, 12), at(2026, 3, 10, 17)),
        # After closing: the next morning.
        (at(2026, 3, 10, 18), at(2026, 3, 11, 11, 30)),
        # Before opening: this morning. Ending exactly at closing stays at 11:30.
        (at(2026, 3, 10, 6), at(2026, 3, 10, 11, 30)),
        # A Saturday: Monday morning.
        (at(2026, 3, 14, 9), at(2026, 3, 16, 11, 30)),
    ],
)
def test_start_outside_office_hours_begins_at_next_opening(
    calendar: WorkingDayCalendar, start: datetime, expected: datetime
) -> None:
    assert calendar.add_working_time(start, Decimal("0.5")) == expected


def test_zero_budget_returns_start_unchanged(calendar: WorkingDayCalendar) -> None:
    evening = at(2026, 3, 14, 20)  # a Saturday evening
    assert calendar.add_working_time(evening, Decimal(0)) == evening
    assert calendar.working_time_between(evening, evening) == 0


ROUND_TRIP_STARTS = [
    at(2026, 2, 12, 9),  # before Tết
    at(2026, 3, 13, 15),  # Friday afternoon
    at(2026, 4, 24, 10, 45),  # before Hùng Kings and 30/4
    at(2026, 3, 10, 12, 15),  # lunch
    at(2025, 12, 31, 16, 59),  # across the year and the 2 January swap
]


@pytest.mark.parametrize("start", ROUND_TRIP_STARTS)
@pytest.mark.parametrize("days", ["0", "0.5", "1", "1.5", "2.25", "8", "15", "30.5"])
def test_round_trip(calendar: WorkingDayCalendar, start: datetime, days: str) -> None:
    budget = Decimal(days)
    end = calendar.add_working_time(start, budget)
    assert calendar.working_time_between(start, end) == budget


def test_working_time_between_measures_lateness(calendar: WorkingDayCalendar) -> None:
    deadline = at(2026, 3, 3, 9)
    # Tue 09:00–11:30 + 13:00–17:00 = 6.5 h, Wed 07:30–11:30 = 4 h: 10.5 h / 8 h.
    now = at(2026, 3, 4, 13)
    assert calendar.working_time_between(deadline, now) == Decimal("1.3125")
    # Reversed: time left is negative lateness.
    assert calendar.working_time_between(now, deadline) == Decimal("-1.3125")
    # Nights, weekends and the Tết break add nothing.
    assert calendar.working_time_between(at(2026, 2, 13, 17), at(2026, 2, 23, 7, 30)) == 0


def test_other_time_zones_are_converted_and_naive_datetimes_refused(
    calendar: WorkingDayCalendar,
) -> None:
    # 02:00 UTC is 09:00 in Hà Nội.
    received = datetime(2026, 2, 12, 2, 0, tzinfo=UTC)
    result = calendar.appointment_date(received, Decimal(8))
    assert result == at(2026, 3, 3, 9)
    assert result.tzinfo == VIETNAM_TZ
    assert result.hour == 9
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add_working_time(datetime(2026, 2, 12, 9), Decimal(1))
    with pytest.raises(ValueError, match=">= 0"):
        calendar.add_working_time(received, Decimal("-0.5"))


def test_add_working_days_backwards_and_zero(calendar: WorkingDayCalendar) -> None:
    # One working day before Mon 23 Feb is Fri 13 Feb, before the Tết break; this is
    # the last day to issue an apology letter for a dossier promised on the 23rd.
    assert calendar.add_working_days(date(2026, 2, 23), -1) == date(2026, 2, 13)
    assert calendar.add_working_days(date(2026, 2, 14), 0) == date(2026, 2, 14)


def test_configurable_office_hours() -> None:
    province = WorkingDayCalendar(
        overrides=None,
        office_hours=((time(8, 0), time(12, 0)), (time(13, 30), time(17, 30))),
    )
    assert province.working_day_length.total_seconds() == 8 * 3600
    # 10:00 + 4 h: 2 h to 12:00, 2 h from 13:30 -> 15:30.
    assert province.add_working_time(at(2026, 3, 10, 10), Decimal("0.5")) == at(2026, 3, 10, 15, 30)
    with pytest.raises(ValueError, match="overlaps"):
        WorkingDayCalendar(
            overrides=None,
            office_hours=((time(8, 0), time(12, 0)), (time(11, 0), time(17, 0))),
        )
