"""Working-day arithmetic for statutory time limits on administrative dossiers.

Vietnamese time limits are counted in *working days*: weekends and public holidays
do not count, and every year the Prime Minister moves some working days (a weekday
off to bridge a holiday to a weekend, paid back by working a Saturday). The calendar
is therefore data plus a library:

* ``holidays.Vietnam`` (python-holidays) supplies the statutory holidays, with the lunar dates (Tết,
  Hùng Kings) computed by the library — no lunar date is hard-coded here — and the
  swaps the library already knows about;
* a per-year TOML override file (``calendar_overrides.toml`` beside this module)
  supplies what the library lacks: extra days off, make-up working days and new
  holidays, each with a reason.

Budgets are fractions of a working day (half-day precision in practice): one working
day is the total office time of a day (8 hours with the default office hours), and a
budget is consumed only while the office is open.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import holidays

__all__ = [
    "DEFAULT_OFFICE_HOURS",
    "DEFAULT_OVERRIDES",
    "VIETNAM_TZ",
    "CalendarError",
    "WorkingDayCalendar",
]

VIETNAM_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
"""Time zone of every Vietnamese government office (UTC+7, no daylight saving)."""

DEFAULT_OVERRIDES: Final = Path(__file__).with_name("calendar_overrides.toml")
"""The override file shipped beside this module."""

DEFAULT_OFFICE_HOURS: Final[tuple[tuple[time, time], ...]] = (
    (time(7, 30), time(11, 30)),
    (time(13, 0), time(17, 0)),
)
"""Office periods of a working day: 07:30–11:30 and 13:00–17:00 (8 hours).

These are the hours most Vietnamese government offices keep; provinces may set
others (e.g. 08:00–12:00, 13:30–17:30), hence the ``office_hours`` argument.
"""

# Field names of the override file, one per kind of entry.
_EXTRA_DAYS_OFF: Final = "extra_days_off"
_MAKE_UP_WORKING_DAYS: Final = "make_up_working_days"
_NEW_HOLIDAYS: Final = "new_holidays"
# new_holidays carry the holiday's *name*; the other two the *reason* for the move.
_LABEL_KEY: Final[Mapping[str, str]] = {
    _EXTRA_DAYS_OFF: "reason",
    _MAKE_UP_WORKING_DAYS: "reason",
    _NEW_HOLIDAYS: "name",
}

# A calendar with no working day for ten years is a broken override file, not a
# long holiday; stop instead of looping forever.
_MAX_CONSECUTIVE_DAYS_OFF: Final = 3660

_LIBRARY_LANGUAGE: Final = "vi"  # names appear on Vietnamese receipt slips


class CalendarError(ValueError):
    """The calendar's data is unusable, e.g. a malformed override file.

    The message names the file, the entry and what is wrong with it.
    """


@dataclass(frozen=True)
class _Entry:
    """One validated line of the override file."""

    day: date
    label: str


@dataclass(frozen=True)
class _YearOverrides:
    """The override file's entries for one year."""

    extra_days_off: tuple[_Entry, ...] = ()
    make_up_working_days: tuple[_Entry, ...] = ()
    new_holidays: tuple[_Entry, ...] = ()


@dataclass(frozen=True)
class _YearCalendar:
    """Resolved non-working and make-up working days of one year."""

    # Named days off, weekend dates included (a holiday on a Sunday is still shown).
    days_off: dict[date, str] = field(default_factory=dict)
    # Days worked although they would otherwise be off; these win over everything.
    working_days: dict[date, str] = field(default_factory=dict)


class WorkingDayCalendar:
    """Working days and office time of Vietnamese government offices.

    A day is a working day when it is a make-up working day, or else when it is a
    Monday to Friday that is neither a holiday (library or override file) nor an
    extra day off. Office time runs only inside ``office_hours`` on working days.

    All datetime arguments must be timezone-aware; they are converted to the
    calendar's time zone, and every datetime returned is in that zone.
    """

    def __init__(
        self,
        *,
        overrides: Path | None = DEFAULT_OVERRIDES,
        office_hours: Sequence[tuple[time, time]] = DEFAULT_OFFICE_HOURS,
        tz: tzinfo = VIETNAM_TZ,
    ) -> None:
        """Build the calendar.

        Args:
            overrides: TOML file of per-year Prime-Minister decisions, read once here;
                ``None`` uses the library alone.
            office_hours: ordered, non-overlapping (opening, closing) local times of
                one working day.
            tz: time zone of the offices.

        Raises:
            CalendarError: the override file is missing or malformed.
            ValueError: ``office_hours`` is empty, unordered or overlapping.
        """
        self._periods = _validate_office_hours(office_hours)
        self._tz = tz
        self._day_length = sum(
            (_as_delta(end) - _as_delta(start) for start, end in self._periods),
            timedelta(),
        )
        self._overrides = _load_overrides(overrides) if overrides is not None else {}
        # Years are resolved lazily and cached; a cached value never changes, so a
        # race between two threads only computes the same year twice.
        self._years: dict[int, _YearCalendar] = {}

    @property
    def tz(self) -> tzinfo:
        """Time zone of the offices; every returned datetime is in it."""
        return self._tz

    @property
    def office_hours(self) -> tuple[tuple[time, time], ...]:
        """Office periods of one working day, in order."""
        return self._periods

    @property
    def working_day_length(self) -> timedelta:
        """Office time in one working day (8 hours with the default hours)."""
        return self._day_length

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day.

        Weekends are off unless they are make-up working days; holidays, extra days
        off and new holidays are off. An aware datetime is judged by its local date.
        """
        day = self._local_date(d)
        year = self._year(day.year)
        if day in year.working_days:
            return True
        if day in year.days_off:
            return False
        return day.weekday() < 5  # Monday..Friday

    def add_working_days(self, start: date, days: int) -> date:
        """The date ``days`` working days after ``start`` (before it if negative).

        ``start`` itself is not counted, so the result is always a working day when
        ``days`` is not zero; ``days == 0`` returns ``start`` unchanged.
        """
        day = self._local_date(start)
        step = timedelta(days=1 if days >= 0 else -1)
        remaining = abs(days)
        off_in_a_row = 0
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining -= 1
                off_in_a_row = 0
            else:
                off_in_a_row += 1
                self._guard_endless(off_in_a_row, day)
        return day

    def add_working_time(self, start: datetime, days: Decimal) -> datetime:
        """The moment a budget of ``days`` working days, started at ``start``, runs out.

        The budget is converted to office time (``days`` x the office time of one
        working day, so 0.5 is one office half-day, 4 hours with the default hours) and
        consumed from ``start`` forward, skipping lunch, nights, weekends, holidays and
        days off. A start outside office hours begins at the next office opening.

        A budget ending exactly when an office period closes returns that closing time
        (e.g. 17:00), not the next opening: the limit expires at the end of that day.

        A zero budget returns ``start`` unchanged (converted to the calendar's zone),
        not moved to the next office moment: no office time has to pass, and this keeps
        ``working_time_between(start, add_working_time(start, Decimal(0))) == 0``.

        Fractions finer than a microsecond of office time are rounded up, so the
        deadline never comes before the budget is spent.

        Raises:
            ValueError: ``start`` is naive, or ``days`` is negative or not finite.
        """
        moment = self._localise(start)
        if not days.is_finite() or days < 0:
            raise ValueError(f"working-day budget must be a finite number >= 0, got {days}")
        remaining = timedelta(microseconds=math.ceil(days * _microseconds(self._day_length)))
        if not remaining:
            return moment
        for opening, closing in self._office_periods_from(moment.date()):
            if moment >= closing:
                continue
            begin = max(moment, opening)
            available = closing - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _office_periods_from never ends")  # pragma: no cover

    def working_time_between(self, start: datetime, end: datetime) -> Decimal:
        """Office time from ``start`` to ``end``, in working days.

        The inverse of :meth:`add_working_time`: office time inside office periods on
        working days, divided by the office time of one working day. The result is
        negative when ``end`` is before ``start``, so ``working_time_between(deadline,
        now)`` is how late a step is (negative: time left).

        Raises:
            ValueError: ``start`` or ``end`` is naive.
        """
        begin = self._localise(start)
        finish = self._localise(end)
        if finish < begin:
            return -self.working_time_between(finish, begin)
        elapsed = timedelta()
        day = begin.date()
        while day <= finish.date():
            if self.is_working_day(day):
                for opening, closing in self._periods_of(day):
                    overlap = min(closing, finish) - max(opening, begin)
                    if overlap > timedelta():
                        elapsed += overlap
            day += timedelta(days=1)
        return Decimal(_microseconds(elapsed)) / Decimal(_microseconds(self._day_length))

    def appointment_date(self, received_at: datetime, limit_days: Decimal) -> datetime:
        """The moment the statutory time limit of a dossier received at ``received_at`` expires.

        This is the appointment printed on the receipt slip: :meth:`add_working_time`
        of ``limit_days`` from the receipt. Pauses (awaiting supplement, awaiting
        payment of financial obligations) are not known at receipt and are handled by
        recomputing from the remaining budget when the clock resumes.
        """
        return self.add_working_time(received_at, limit_days)

    def holidays_in(self, year: int) -> dict[date, str]:
        """Named days off of ``year`` in date order, for display.

        Library holidays (including those on a weekend and their observed days),
        extra days off and new holidays from the override file, less any day the
        override file turns into a working day. Weekends are not listed.
        """
        resolved = self._year(year)
        return {
            day: name for day, name in sorted(resolved.days_off.items()) if day not in resolved.working_days
        }

    # -- internals ---------------------------------------------------------------

    def _year(self, year: int) -> _YearCalendar:
        cached = self._years.get(year)
        if cached is None:
            cached = self._resolve_year(year)
            self._years[year] = cached
        return cached

    def _resolve_year(self, year: int) -> _YearCalendar:
        # Neighbouring years too: a swap decided for one year can move a day of the
        # next (e.g. 2 January 2015 swapped for Saturday 27 December 2014), and the
        # library files it under the year of the decision. country_holidays("VN")
        # builds a holidays.Vietnam; it is the library's typed entry point (the class's
        # own __init__ is untyped, which mypy --strict rejects).
        library = holidays.country_holidays(
            "VN", years=(year - 1, year, year + 1), language=_LIBRARY_LANGUAGE
        )
        days_off = {day: name for day, name in library.items() if day.year == year}
        working_days = {
            day: "Ngày làm việc bù (theo thư viện holidays)"
            for day in library.weekend_workdays
            if day.year == year
        }
        decided = self._overrides.get(year, _YearOverrides())
        for entry in (*decided.new_holidays, *decided.extra_days_off):
            days_off[entry.day] = _join(days_off.get(entry.day), entry.label)
        for entry in decided.make_up_working_days:
            working_days[entry.day] = entry.label
        return _YearCalendar(days_off=days_off, working_days=working_days)

    def _office_periods_from(self, first: date) -> Iterator[tuple[datetime, datetime]]:
        """Office periods of every working day from ``first`` on, endlessly."""
        day = first
        off_in_a_row = 0
        while True:
            if self.is_working_day(day):
                off_in_a_row = 0
                yield from self._periods_of(day)
            else:
                off_in_a_row += 1
                self._guard_endless(off_in_a_row, day)
            day += timedelta(days=1)

    def _periods_of(self, day: date) -> list[tuple[datetime, datetime]]:
        # Wall-clock datetimes: Vietnam has no daylight saving, and office hours are
        # wall-clock hours in any zone.
        return [
            (
                datetime.combine(day, opening, tzinfo=self._tz),
                datetime.combine(day, closing, tzinfo=self._tz),
            )
            for opening, closing in self._periods
        ]

    def _localise(self, moment: datetime) -> datetime:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"datetime must be timezone-aware, got naive {moment.isoformat()}")
        return moment.astimezone(self._tz)

    def _local_date(self, d: date) -> date:
        # A datetime is a date subclass; using it as a dict key would never match the
        # calendar's dates, so take its local calendar date instead.
        if isinstance(d, datetime):
            return self._localise(d).date()
        return d

    @staticmethod
    def _guard_endless(off_in_a_row: int, day: date) -> None:
        if off_in_a_row > _MAX_CONSECUTIVE_DAYS_OFF:
            raise CalendarError(
                f"no working day in the {_MAX_CONSECUTIVE_DAYS_OFF} days up to {day}; check the override file"
            )


# -- helpers -----------------------------------------------------------------------


def _as_delta(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _microseconds(delta: timedelta) -> int:
    # Exact integer arithmetic: timedelta.total_seconds() is a float.
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _join(existing: str | None, label: str) -> str:
    if existing is None or existing == label:
        return label
    return f"{existing}; {label}"


def _validate_office_hours(
    office_hours: Sequence[tuple[time, time]],
) -> tuple[tuple[time, time], ...]:
    periods = tuple((opening, closing) for opening, closing in office_hours)
    if not periods:
        raise ValueError("office_hours must contain at least one (opening, closing) period")
    previous_closing: time | None = None
    for opening, closing in periods:
        if opening.tzinfo is not None or closing.tzinfo is not None:
            raise ValueError("office_hours are local wall-clock times; give naive times")
        if not opening < closing:
            raise ValueError(f"office period {opening}–{closing} must open before it closes")
        if previous_closing is not None and opening < previous_closing:
            raise ValueError(f"office period {opening}–{closing} overlaps or precedes the previous one")
        previous_closing = closing
    return periods


def _load_overrides(path: Path) -> dict[int, _YearOverrides]:
    """Read and validate the override file; every problem names the entry."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as error:
        raise CalendarError(f"{path}: override file not found") from error
    except tomllib.TOMLDecodeError as error:
        raise CalendarError(f"{path}: not valid TOML: {error}") from error

    years: dict[int, _YearOverrides] = {}
    for key, section in document.items():
        where = f"{path.name}: [{key}]"
        if not (key.isascii() and key.isdigit() and len(key) == 4):
            raise CalendarError(f"{where}: top-level tables must be four-digit years")
        if not isinstance(section, dict):
            raise CalendarError(f"{where}: must be a table of {', '.join(_LABEL_KEY)}")
        unknown = sorted(set(section) - set(_LABEL_KEY))
        if unknown:
            raise CalendarError(
                f"{where}: unknown field(s) {', '.join(unknown)}; expected {', '.join(_LABEL_KEY)}"
            )
        year = int(key)
        parsed = {kind: _parse_entries(section.get(kind, []), year, kind, where) for kind in _LABEL_KEY}
        _reject_conflicts(parsed, where)
        years[year] = _YearOverrides(
            extra_days_off=parsed[_EXTRA_DAYS_OFF],
            make_up_working_days=parsed[_MAKE_UP_WORKING_DAYS],
            new_holidays=parsed[_NEW_HOLIDAYS],
        )
    return years


def _parse_entries(raw: object, year: int, kind: str, where: str) -> tuple[_Entry, ...]:
    if not isinstance(raw, list):
        raise CalendarError(f"{where}.{kind}: must be an array of tables ([[{year}.{kind}]])")
    label_key = _LABEL_KEY[kind]
    allowed = {"date", label_key, "source"}
    entries: list[_Entry] = []
    for index, item in enumerate(raw):
        entry_where = f"{where}.{kind}[{index}]"
        if not isinstance(item, dict):
            raise CalendarError(f"{entry_where}: must be a table with date and {label_key}")
        day = item.get("date")
        if day is not None:
            entry_where += f" (date {day})"
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise CalendarError(
                f"{entry_where}: unknown field(s) {', '.join(unknown)}; expected date, {label_key}, source"
            )
        # tomllib gives a TOML local date as datetime.date; a datetime (a date
        # subclass) or a quoted string means the author wrote something else.
        if not isinstance(day, date) or isinstance(day, datetime):
            raise CalendarError(
                f"{entry_where}: 'date' must be a TOML local date such as {year}-01-02 "
                f"(unquoted), got {day!r}"
            )
        if day.year != year:
            raise CalendarError(f"{entry_where}: date is not in {year}, the table it is listed in")
        label = item.get(label_key)
        if not isinstance(label, str) or not label.strip():
            raise CalendarError(f"{entry_where}: '{label_key}' must be a non-empty string")
        source = item.get("source", "")
        if not isinstance(source, str):
            raise CalendarError(f"{entry_where}: 'source' must be a string")
        entries.append(_Entry(day=day, label=label.strip()))
    return tuple(entries)


def _reject_conflicts(parsed: Mapping[str, tuple[_Entry, ...]], where: str) -> None:
    # A date listed twice, or both off and worked, is a copy-paste error; guessing
    # which line wins would silently move deadlines.
    seen: dict[date, str] = {}
    for kind, entries in parsed.items():
        for entry in entries:
            if entry.day in seen:
                raise CalendarError(f"{where}.{kind} (date {entry.day}): already listed in {seen[entry.day]}")
            seen[entry.day] = kind
