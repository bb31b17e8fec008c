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


class VirtualClock:
    """Test and replay time: set from outside (``PUT /clock``), never from the machine.

    A whole route's working days then pass in milliseconds, and a replayed stream fires
    deadlines as it would have. Time only moves forward, as deadlines assume.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        """The time last set."""
        return self._now

    def set(self, moment: datetime) -> datetime:
        """Move to ``moment`` if it is later; return the clock's time."""
        if moment.tzinfo is None:
            raise ValueError("a virtual time must be timezone-aware")
        self._now = max(self._now, moment)
        return self._now


def clock_from_env(environ: dict[str, str]) -> Clock:
    """``CLOCK=virtual`` (with ``VIRTUAL_CLOCK_START``, ISO-8601) for tests and replay, else wall."""
    if environ.get("CLOCK", "wall") != "virtual":
        return WallClock()
    start = environ.get("VIRTUAL_CLOCK_START")
    return VirtualClock(datetime.fromisoformat(start) if start else datetime.now(UTC))
