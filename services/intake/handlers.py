"""Intake's use cases: receive a dossier, route it on when an agency reports, take payments.

Each one opens a unit of work, loads the dossier, calls one domain method and saves the
dossier with the events it produced; the transaction commits both or neither.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from contracts import topics
from contracts.envelope import CloudEvent
from contracts.events import (
    ApologyIssued,
    Applicant,
    DossierEscalated,
    DossierEvent,
    DossierHandedOver,
    DossierProgressed,
    DossierReceived,
    DossierReturned,
    StepCompleted,
    StepOverdue,
    SupplementRequested,
)
from services.intake import store
from services.intake.domain.catalog import Catalog
from services.intake.domain.dossier import Dossier, TransitionRefused
from services.runtime.consumer import EventRejected
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.working_days import WorkingDayCalendar

log = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS = 0.5
"""How often the deadline watcher looks; an alarm fires at most this late (plus the work)."""
ALARM_BATCH = 100


class DossierNotFound(LookupError):
    """No dossier with that id."""


class Desk:
    """The one-stop desk's use cases, wired to the service's runtime, catalog and calendar."""

    def __init__(self, *, runtime: ServiceRuntime, catalog: Catalog, calendar: WorkingDayCalendar) -> None:
        self.runtime = runtime
        self.catalog = catalog
        self.calendar = calendar

    def register(self) -> None:
        """Declare what the desk writes, and listen to every agency the catalog routes to.

        A new agency in the catalog needs no code here.
        """
        self.runtime.publishes(
            topics.INTAKE_EVENTS,
            DossierReceived,
            DossierReturned,
            SupplementRequested,
            StepOverdue,
            ApologyIssued,
            DossierEscalated,
            DossierProgressed,
        )
        for agency in sorted(self.catalog.consumers()):
            self.runtime.publishes(topics.handoffs(agency), DossierHandedOver)
        self.runtime.run_in_background("deadline_watcher", self.watch_deadlines)
        for agency in sorted(self.catalog.consumers()):
            self.runtime.subscribe(
                topics.agency_events(agency),
                consumer=f"intake.from.{agency}",
                accepts=(StepCompleted,),
                handler=self.route_on,
            )

    async def submit(
        self,
        *,
        procedure_code: str,
        applicant: Applicant,
        documents: list[str],
        details: dict[str, Any],
    ) -> Dossier:
        """Receive a dossier at the desk (raises SubmissionRefused before anything is stored)."""
        async with self.runtime.unit_of_work() as uow:
            dossier, events = Dossier.receive(
                dossier_id=f"HS-{uow.now:%y%m%d}-{uuid.uuid4().hex[:10].upper()}",
                procedure=self.catalog.get(procedure_code),
                procedure_code=procedure_code,
                applicant=applicant,
                documents=documents,
                details=details,
                now=uow.now,
                calendar=self.calendar,
            )
            await _record(uow, dossier, events)
        return dossier

    async def record_payment(self, dossier_id: str) -> Dossier:
        """The citizen's payment of the tax notice was received at the desk."""
        async with self.runtime.unit_of_work() as uow:
            dossier = await self._load_for_update(uow, dossier_id)
            events = dossier.record_payment(now=uow.now, calendar=self.calendar)
            await _record(uow, dossier, events)
        return dossier

    async def request_supplement(self, dossier_id: str, *, missing: list[str], reason: str) -> Dossier:
        """The desk asks the citizen to complete the dossier; the clock stops meanwhile."""
        async with self.runtime.unit_of_work() as uow:
            dossier = await self._load_for_update(uow, dossier_id)
            events = dossier.request_supplement(
                missing=missing, reason=reason, now=uow.now, agencies=self.catalog.agencies
            )
            await _record(uow, dossier, events)
        return dossier

    async def supplement(
        self, dossier_id: str, *, documents: list[str], details: dict[str, Any] | None
    ) -> Dossier:
        """The citizen's complete supplement: the limit restarts in full."""
        async with self.runtime.unit_of_work() as uow:
            dossier = await self._load_for_update(uow, dossier_id)
            events = dossier.supplement(
                documents=documents, details=details, now=uow.now, calendar=self.calendar
            )
            await _record(uow, dossier, events)
        return dossier

    async def watch_deadlines(self) -> None:
        """Fire every passed alarm, forever; the alarms live in Postgres, so a restart loses none."""
        while True:
            try:
                fired = await self.fire_due_alarms()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deadline watcher failed; retrying")
                fired = 0
            if fired < ALARM_BATCH:
                await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    async def fire_due_alarms(self) -> int:
        """One pass of the watcher: each due alarm in its own transaction with its events."""
        async with self.runtime.pool.acquire() as conn:
            due = await store.due_alarms(conn, self.runtime.clock.now(), limit=ALARM_BATCH)
        for dossier_id, row in due:
            async with self.runtime.unit_of_work() as uow:
                # The row lock makes a second watcher (another intake instance) a no-op: it
                # finds the alarm moved or cleared when it gets the lock.
                dossier = await self._load_for_update(uow, dossier_id)
                number = (
                    await store.next_letter_number(uow.conn, uow.now) if dossier.apologised_at is None else ""
                )
                events = dossier.on_alarm(
                    row,
                    now=uow.now,
                    calendar=self.calendar,
                    agencies=self.catalog.agencies,
                    letter_number=number,
                )
                await _record(uow, dossier, events)
        return len(due)

    async def _load_for_update(self, uow: UnitOfWork, dossier_id: str) -> Dossier:
        dossier = await store.load(uow.conn, dossier_id, for_update=True)
        if dossier is None:
            raise DossierNotFound(dossier_id)
        return dossier

    async def lookup(self, dossier_id: str) -> Dossier:
        """The dossier as it stands now."""
        async with self.runtime.pool.acquire() as conn:
            dossier = await store.load(conn, dossier_id)
        if dossier is None:
            raise DossierNotFound(dossier_id)
        return dossier

    async def route_on(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """An agency finished its step: record it on the slip and hand the dossier on."""
        assert isinstance(event.data, StepCompleted)
        dossier = await store.load(uow.conn, event.data.dossier_id, for_update=True)
        if dossier is None:
            raise EventRejected(f"no dossier {event.data.dossier_id}")
        try:
            events = dossier.on_step_completed(
                event.data, now=uow.now, calendar=self.calendar, agencies=self.catalog.agencies
            )
        except TransitionRefused as exc:
            raise EventRejected(str(exc)) from exc
        await _record(uow, dossier, events)


async def _record(uow: UnitOfWork, dossier: Dossier, events: list[DossierEvent]) -> None:
    """Save the dossier, and publish its events and its new state, all in this transaction."""
    await store.save(uow.conn, dossier)
    for event in [*events, dossier.progress(uow.now)]:
        if isinstance(event, DossierHandedOver):
            await uow.publish(event, topic=topics.handoffs(event.to_agency))
        else:
            await uow.publish(event, topic=topics.INTAKE_EVENTS)
