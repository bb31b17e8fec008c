"""Intake's use cases: receive a dossier, route it on when an agency reports, take payments.

Each one opens a unit of work, loads the dossier, calls one domain method and saves the
dossier with the events it produced; the transaction commits both or neither.
"""

from __future__ import annotations

import uuid
from typing import Any

from contracts import topics
from contracts.envelope import CloudEvent
from contracts.events import (
    Applicant,
    DossierEvent,
    DossierHandedOver,
    DossierReceived,
    DossierReturned,
    StepCompleted,
)
from services.intake import store
from services.intake.domain.catalog import Catalog
from services.intake.domain.dossier import Dossier, TransitionRefused
from services.runtime.consumer import EventRejected
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.working_days import WorkingDayCalendar


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
        self.runtime.publishes(topics.INTAKE_EVENTS, DossierReceived, DossierReturned)
        for agency in sorted(self.catalog.agencies()):
            self.runtime.publishes(topics.handoffs(agency), DossierHandedOver)
        for agency in sorted(self.catalog.agencies()):
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
            await store.save(uow.conn, dossier)
            await _publish(uow, events)
        return dossier

    async def record_payment(self, dossier_id: str) -> Dossier:
        """The citizen's payment of the tax notice was received at the desk."""
        async with self.runtime.unit_of_work() as uow:
            dossier = await store.load(uow.conn, dossier_id, for_update=True)
            if dossier is None:
                raise DossierNotFound(dossier_id)
            events = dossier.record_payment(now=uow.now, calendar=self.calendar)
            await store.save(uow.conn, dossier)
            await _publish(uow, events)
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
            events = dossier.on_step_completed(event.data, now=uow.now, calendar=self.calendar)
        except TransitionRefused as exc:
            raise EventRejected(str(exc)) from exc
        await store.save(uow.conn, dossier)
        await _publish(uow, events)


async def _publish(uow: UnitOfWork, events: list[DossierEvent]) -> None:
    for event in events:
        if isinstance(event, DossierHandedOver):
            await uow.publish(event, topic=topics.handoffs(event.to_agency))
        else:
            await uow.publish(event, topic=topics.INTAKE_EVENTS)
