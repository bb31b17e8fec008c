"""Clocks are injected: the wall clock in production, a clock the tests (and replays) move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where a service gets the time; never ``datetime.now()`` directly."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class WallClock:
    """Real time, in UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to, for tests of time limits."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        """The time the clock was last set to."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move time forward (never backward: deadlines rely on it)."""
        if delta < timedelta(0):
            raise ValueError("time does not go backwards")
        self._now += delta
