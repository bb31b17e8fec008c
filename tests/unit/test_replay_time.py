"""How a replay moves time: where the clock stops next, and the time each input is handled at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from services.replay.replay import ClockReading, window_end
from services.runtime.clock import REQUEST_EVENT_TIME, VirtualClock, WallClock, work_time
from services.runtime.http_app import EventTime

T = datetime(2026, 3, 9, 1, tzinfo=UTC)
MOMENTS = [T, T + timedelta(hours=1), T + timedelta(hours=2), T + timedelta(hours=5)]


def reading(horizon: datetime | None, now: datetime = T) -> ClockReading:
    return ClockReading(now=now, next_due=None, horizon=horizon)


def test_the_clock_stops_at_the_first_moment_at_or_after_the_horizon() -> None:
    assert window_end(MOMENTS, {"intake": reading(T + timedelta(hours=1))}, after=T) == MOMENTS[1]
    assert window_end(MOMENTS, {"intake": reading(T + timedelta(hours=3))}, after=T) == MOMENTS[3]


def test_the_earliest_horizon_of_all_services_counts() -> None:
    readings = {"a": reading(T + timedelta(hours=4)), "b": reading(T + timedelta(minutes=90))}
    assert window_end(MOMENTS, readings, after=T) == MOMENTS[2]


def test_a_horizon_at_the_clock_still_moves_one_moment_on() -> None:
    # A step with no budget could fall due at once: the replay degrades to moment by moment.
    assert window_end(MOMENTS, {"intake": reading(T)}, after=T) == MOMENTS[1]


def test_without_timed_work_or_moments_left_the_rest_is_one_window() -> None:
    assert window_end(MOMENTS, {"notification": reading(None)}, after=T) is None
    assert window_end(MOMENTS, {"intake": reading(T + timedelta(days=9))}, after=T) is None


def test_on_a_virtual_clock_work_runs_at_its_event_time_never_before_the_clock() -> None:
    clock = VirtualClock(T)
    assert work_time(clock, T + timedelta(hours=3)) == T + timedelta(hours=3)
    # A service that was down and catches up handles an old record late, at its own time.
    assert work_time(clock, T - timedelta(hours=3)) == T
    assert work_time(clock, None) == T


def test_on_the_wall_clock_the_event_time_is_ignored() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert work_time(WallClock(), T + timedelta(days=1), now=now) == now


def app_reporting_event_time(*, virtual: bool) -> httpx.AsyncClient:
    app = FastAPI()

    @app.post("/dossiers")
    async def file() -> dict[str, str | None]:
        when = REQUEST_EVENT_TIME.get()
        return {"event_time": when.isoformat() if when else None}

    app.add_middleware(EventTime, virtual=virtual)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk")


async def test_a_virtual_clock_serves_a_request_at_its_event_time() -> None:
    async with app_reporting_event_time(virtual=True) as client:
        response = await client.post("/dossiers", headers={"Event-Time": "2026-03-09T08:00:00+07:00"})
        plain = await client.post("/dossiers")
    assert response.json() == {"event_time": "2026-03-09T08:00:00+07:00"}
    assert plain.json() == {"event_time": None}
    assert REQUEST_EVENT_TIME.get() is None  # not left behind for the next request


async def test_the_wall_clock_refuses_an_event_time() -> None:
    async with app_reporting_event_time(virtual=False) as client:
        response = await client.post("/dossiers", headers={"Event-Time": "2026-03-09T08:00:00+07:00"})
    assert response.status_code == 400
    assert "virtual clock" in response.json()["detail"]


@pytest.mark.parametrize("value", ["yesterday", "2026-03-09T08:00:00"])
async def test_an_event_time_must_be_an_aware_iso_time(value: str) -> None:
    async with app_reporting_event_time(virtual=True) as client:
        response = await client.post("/dossiers", headers={"Event-Time": value})
    assert response.status_code == 400
    assert "UTC offset" in response.json()["detail"]
