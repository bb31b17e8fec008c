"""Clocks are injected: the wall clock in production, a clock the tests (and replays) move."""

from __future__ import annotations

from contextvars import ContextVar
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


REQUEST_EVENT_TIME: ContextVar[datetime | None] = ContextVar("request_event_time", default=None)
"""The ``Event-Time`` of the HTTP request being served (a replayed desk action), else None."""


def work_time(clock: Clock, event_time: datetime | None, *, now: datetime | None = None) -> datetime:
    """The time a unit of work caused by something that happened at ``event_time`` runs at.

    On a wall clock, ``now`` (the clock's time if not given): the work happens when it happens.
    On a virtual clock, the later of the clock and the event: a replay hands services inputs
    ahead of their clocks, and each is handled at the moment it happened, as when it was
    recorded; a service whose clock is past the event (it was down, and catches up) handles it
    late, at its own time. The clock itself fires timed work (deadline alarms, retries).
    """
    current = clock.now() if now is None else now
    if event_time is None or not isinstance(clock, VirtualClock | ManualClock):
        return current
    return max(current, event_time)
