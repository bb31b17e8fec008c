"""The officers' work queue arithmetic: time left in working hours, and the traffic-light colour.

Vietnamese one-stop software shows each waiting dossier green while there is time, yellow in
the last quarter of its budget, red once it is past due. Plain Python, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from services.runtime.working_days import WorkingDayCalendar

Colour = Literal["green", "yellow", "red"]


@dataclass(frozen=True)
class TimeLeft:
    """How much office time a task has left, and its colour."""

    working_hours: Decimal
    """Office hours until the due time; negative: how late it is already."""
    colour: Colour


def hours_per_day(calendar: WorkingDayCalendar) -> Decimal:
    """Office hours in one working day (8 with the default office hours)."""
    return Decimal(int(calendar.working_day_length.total_seconds())) / Decimal(3600)


def time_left(
    *, now: datetime, received_at: datetime, due_at: datetime, calendar: WorkingDayCalendar
) -> TimeLeft:
    """Time left of a task taken in at ``received_at`` and due at ``due_at``, seen at ``now``.

    Red from the due time on (nothing left), yellow once at most a quarter of the budget's office
    time remains, green before. Hours are rounded to the minute's hundredth of an hour.
    """
    per_day = hours_per_day(calendar)
    left = calendar.working_time_between(now, due_at) * per_day
    budget = calendar.working_time_between(received_at, due_at) * per_day
    if now >= due_at:
        colour: Colour = "red"
    elif left * 4 <= budget:
        colour = "yellow"
    else:
        colour = "green"
    return TimeLeft(working_hours=left.quantize(Decimal("0.01")), colour=colour)
