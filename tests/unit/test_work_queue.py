"""The work queue's arithmetic (time left, colours) and the decision settings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.land_registry.decisions import Decisions
from services.land_registry.domain.queue import time_left
from services.runtime.settings import ConfigurationError
from services.runtime.working_days import WorkingDayCalendar

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = WorkingDayCalendar()
RECEIVED = datetime(2026, 3, 9, 8, 0, tzinfo=VN)  # Monday
DUE = CALENDAR.add_working_time(RECEIVED, Decimal(3))  # Thursday 08:00, 24 office hours later


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=VN)


def test_green_while_more_than_a_quarter_is_left() -> None:
    left = time_left(now=at(9, 9), received_at=RECEIVED, due_at=DUE, calendar=CALENDAR)
    assert (left.working_hours, left.colour) == (Decimal("23.00"), "green")


def test_yellow_in_the_last_quarter_counting_office_hours_only() -> None:
    # Wednesday 14:00: 3 office hours this afternoon + 0.5 tomorrow morning = 3.5 of 24 left.
    left = time_left(now=at(11, 14), received_at=RECEIVED, due_at=DUE, calendar=CALENDAR)
    assert (left.working_hours, left.colour) == (Decimal("3.50"), "yellow")
    # Wednesday 10:00: exactly a quarter (6 of 24 office hours) left is already yellow...
    quarter = time_left(now=at(11, 10), received_at=RECEIVED, due_at=DUE, calendar=CALENDAR)
    assert (quarter.working_hours, quarter.colour) == (Decimal("6.00"), "yellow")
    # ...a minute earlier it is still green.
    before = time_left(now=at(11, 9, 59), received_at=RECEIVED, due_at=DUE, calendar=CALENDAR)
    assert before.colour == "green"


def test_red_from_the_due_time_with_the_lateness_in_office_hours() -> None:
    assert time_left(now=DUE, received_at=RECEIVED, due_at=DUE, calendar=CALENDAR).colour == "red"
    # Thursday 14:00: 08:00-11:30 and 13:00-14:00, 4.5 office hours late.
    late = time_left(now=at(12, 14), received_at=RECEIVED, due_at=DUE, calendar=CALENDAR)
    assert (late.working_hours, late.colour) == (Decimal("-4.50"), "red")


def test_nights_and_weekends_do_not_run_the_clock() -> None:
    friday_due = at(13, 17)
    received = at(13, 8)
    evening = time_left(now=at(13, 20), received_at=received, due_at=friday_due, calendar=CALENDAR)
    assert (evening.working_hours, evening.colour) == (Decimal("0.00"), "red")
    saturday = time_left(now=at(14, 10), received_at=received, due_at=at(16, 17), calendar=CALENDAR)
    assert saturday.working_hours == Decimal("8.00")


def test_decisions_default_to_officers_with_no_bot() -> None:
    assert Decisions.from_env({}) == Decisions(by_officers=True, bot=False)
    automatic = Decisions.from_env({"AGENCY_DECISIONS": "automatic"})
    assert not automatic.by_officers
    bot = Decisions.from_env({"OFFICER_BOT": "on", "OFFICER_BOT_DELAY_HOURS": "2, 10.5"})
    assert bot.bot
    assert bot.bot_delay_hours == (Decimal(2), Decimal("10.5"))


@pytest.mark.parametrize(
    "environ",
    [
        {"AGENCY_DECISIONS": "manual"},
        {"OFFICER_BOT": "yes"},
        {"OFFICER_BOT_DELAY_HOURS": "5"},
        {"OFFICER_BOT_DELAY_HOURS": "9,3"},
        {"OFFICER_BOT_DELAY_HOURS": "-1,3"},
        {"OFFICER_BOT_DELAY_HOURS": "a,b"},
    ],
)
def test_bad_decision_settings_stop_the_service(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Decisions.from_env(environ)
