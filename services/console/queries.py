"""What the API and the pages ask of the read model, answered the same way for both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from services.console import store
from services.console.domain import labels
from services.console.domain.dossiers import fold, lateness
from services.console.domain.on_time import (
    Grouping,
    Period,
    Rate,
    agency_rates,
    dossier_rate,
    dossier_rates,
)
from services.runtime.clock import Clock

MEASURES = {
    Grouping.AGENCY: "share of the agency's steps completed by their due time",
    Grouping.PROCEDURE: "share of dossiers returned by their first promised date",
    Grouping.LEVEL: "share of dossiers returned by their first promised date",
}


@dataclass(frozen=True)
class OnTimeReport:
    """Dossiers on time overall, and the rates by one grouping, for one period."""

    period: Period
    by: Grouping
    overall: Rate
    groups: list[Rate]

    @property
    def measure(self) -> str:
        """What the groups' rates count."""
        return MEASURES[self.by]


class ConsoleQueries:
    """Read-side queries; times stay datetimes here (the API and the pages format them)."""

    def __init__(self, *, pool: Callable[[], asyncpg.Pool], clock: Clock) -> None:
        self._pool = pool
        self._clock = clock

    async def dossiers(
        self, *, q: str = "", status: str | None = None, late: bool | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Dossiers matching a search (id, citizen name or id number), newest first."""
        now = self._clock.now()
        async with self._pool().acquire() as conn:
            rows = await store.list_dossiers(
                conn, now=now, folded_query=fold(q.strip()), status=status or None, late=late, limit=limit
            )
        return [_with_lateness(row, now) for row in rows]

    async def statuses(self) -> list[str]:
        """Statuses present, for the filter."""
        async with self._pool().acquire() as conn:
            return await store.statuses(conn)

    async def dossier(self, dossier_id: str) -> dict[str, Any] | None:
        """One dossier: its slip, overdue steps, apologies and escalations; None if unknown."""
        async with self._pool().acquire() as conn:
            found = await store.dossier(conn, dossier_id)
            if found is None:
                return None
            found["overdue_steps"] = await store.overdue_steps(conn, dossier_id=dossier_id)
            found["apologies"] = await store.apologies(conn, dossier_id=dossier_id)
            found["escalations"] = await store.escalations(conn, dossier_id=dossier_id)
        return _with_lateness(found, self._clock.now())

    async def trace(self, dossier_id: str) -> list[dict[str, Any]]:
        """Every span of the traces the dossier appears in, in start order."""
        async with self._pool().acquire() as conn:
            return await store.trace_of(conn, dossier_id)

    async def on_time(self, *, period: Period, by: Grouping) -> OnTimeReport:
        """On-time rates in ``period``: dossiers overall, and by agency, procedure or level."""
        async with self._pool().acquire() as conn:
            settled = await store.settled_dossiers(conn, period)
            steps = await store.completed_steps(conn, period) if by is Grouping.AGENCY else []
        if by is Grouping.AGENCY:
            groups = agency_rates(steps, period=period, labels=labels.agency)
        else:
            groups = dossier_rates(settled, by=by, period=period, labels=labels.level)
        return OnTimeReport(period=period, by=by, overall=dossier_rate(settled, period=period), groups=groups)

    async def overdue(self, *, open_only: bool = False, due_soon: bool = False) -> list[dict[str, Any]]:
        """Steps found overdue (``due_soon``: warned in their last working day), newest first."""
        async with self._pool().acquire() as conn:
            return await store.overdue_steps(conn, open_only=open_only, due_soon=due_soon)

    async def apologies(self, *, agency: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Apology letters issued, newest first."""
        async with self._pool().acquire() as conn:
            return await store.apologies(conn, agency=agency or None, kind=kind or None)

    async def satisfaction(self, *, by: Literal["agency", "procedure"]) -> list[dict[str, Any]]:
        """The citizens' ratings by agency or procedure, with each group's Vietnamese label."""
        async with self._pool().acquire() as conn:
            rows = await store.satisfaction(conn, by=by)
        name = labels.agency if by == "agency" else labels.procedure
        return [{**row, "label": name(row["key"])} for row in rows]

    async def escalations(self) -> list[dict[str, Any]]:
        """Escalations to supervisors, newest first."""
        async with self._pool().acquire() as conn:
            return await store.escalations(conn)


def _with_lateness(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    state = lateness(
        first_promised_at=row["first_promised_at"],
        returned_at=row["returned_at"],
        overdue_open=row["overdue_open"],
        now=now,
    )
    return row | {"lateness": state.value, "late": state.is_late}
