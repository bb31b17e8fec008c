"""On-time rates, the seed's "97% settled on time" figure computed live.

Two measures, because they answer two questions:

- a **dossier** is on time when the result was returned by the date first promised on the
  receipt (a rescheduled dossier counts as late, even if it met its new date); grouped by
  procedure or by level (city, ward);
- an **agency's step** is on time when the agency completed it by its due time on the slip;
  steps with no due time (the citizen paying, clock stopped) are not counted.

A dossier counts in the period in which it was returned; a step in the period in which it was
completed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import TypeVar

from services.runtime.working_days import VIETNAM_TZ


class Grouping(StrEnum):
    """What the rates are broken down by (``by=`` in the API)."""

    AGENCY = "agency"
    PROCEDURE = "procedure"
    LEVEL = "level"


@dataclass(frozen=True)
class Period:
    """Calendar days in Vietnam time, both ends included; an open end means "since ever"/"until now"."""

    first_day: date | None = None
    last_day: date | None = None

    def __post_init__(self) -> None:
        if self.first_day and self.last_day and self.last_day < self.first_day:
            raise ValueError(f"the period ends ({self.last_day}) before it starts ({self.first_day})")

    @property
    def start(self) -> datetime | None:
        """First instant included."""
        return None if self.first_day is None else datetime.combine(self.first_day, time(), VIETNAM_TZ)

    @property
    def end(self) -> datetime | None:
        """First instant no longer included (midnight after the last day)."""
        if self.last_day is None:
            return None
        return datetime.combine(self.last_day + timedelta(days=1), time(), VIETNAM_TZ)

    def __contains__(self, moment: datetime) -> bool:
        start, end = self.start, self.end
        return (start is None or moment >= start) and (end is None or moment < end)


@dataclass(frozen=True)
class SettledDossier:
    """A returned dossier, with what the on-time rate needs."""

    procedure_code: str
    procedure_name: str
    level: str
    returned_at: datetime
    first_promised_at: datetime

    @property
    def on_time(self) -> bool:
        """Returned by the first promised date."""
        return self.returned_at <= self.first_promised_at


@dataclass(frozen=True)
class CompletedStep:
    """A timed step an agency completed (one slip row)."""

    agency: str
    completed_at: datetime
    due_at: datetime

    @property
    def on_time(self) -> bool:
        """Completed by its due time."""
        return self.completed_at <= self.due_at


@dataclass(frozen=True)
class Rate:
    """How many of ``total`` were on time, for one group (or for all: ``key`` is "")."""

    key: str
    label: str
    total: int
    on_time: int

    @property
    def late(self) -> int:
        """The rest."""
        return self.total - self.on_time

    @property
    def percent(self) -> Decimal | None:
        """Share on time in percent, one decimal; None when there is nothing to measure."""
        if self.total == 0:
            return None
        return (Decimal(100 * self.on_time) / self.total).quantize(Decimal("0.1"), ROUND_HALF_UP)


Item = TypeVar("Item", SettledDossier, CompletedStep)


def _rates(
    items: Iterable[Item],
    *,
    period: Period,
    when: Callable[[Item], datetime],
    key: Callable[[Item], tuple[str, str]],
) -> list[Rate]:
    counts: dict[str, list[int]] = {}
    labels: dict[str, str] = {}
    for item in items:
        if when(item) not in period:
            continue
        group, label = key(item)
        labels.setdefault(group, label)
        tally = counts.setdefault(group, [0, 0])
        tally[0] += 1
        tally[1] += item.on_time
    return sorted(
        (Rate(key=g, label=labels[g], total=t, on_time=o) for g, (t, o) in counts.items()),
        key=lambda r: r.key,
    )


def dossier_rate(dossiers: Iterable[SettledDossier], *, period: Period) -> Rate:
    """Share of the dossiers returned in ``period`` that were returned by their first promised date."""
    settled = [d for d in dossiers if d.returned_at in period]
    return Rate(key="", label="", total=len(settled), on_time=sum(d.on_time for d in settled))


def dossier_rates(
    dossiers: Iterable[SettledDossier], *, by: Grouping, period: Period, labels: Callable[[str], str] = str
) -> list[Rate]:
    """The dossier on-time rate per procedure or per level, sorted by key."""
    if by is Grouping.AGENCY:
        raise ValueError("dossiers are grouped by procedure or level; agencies are rated on their steps")

    def key(d: SettledDossier) -> tuple[str, str]:
        if by is Grouping.PROCEDURE:
            return d.procedure_code, d.procedure_name
        return d.level, labels(d.level)

    return _rates(dossiers, period=period, when=lambda d: d.returned_at, key=key)


def agency_rates(
    steps: Iterable[CompletedStep], *, period: Period, labels: Callable[[str], str] = str
) -> list[Rate]:
    """Per agency, the share of its steps completed in ``period`` that were completed by due."""
    return _rates(
        steps, period=period, when=lambda s: s.completed_at, key=lambda s: (s.agency, labels(s.agency))
    )
