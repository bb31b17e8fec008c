"""The urban management office takes the building-permit dossiers handed to it and answers the desk."""

from __future__ import annotations

import json

from contracts import topics
from contracts.agencies import URBAN_MANAGEMENT
from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver, StepCompleted
from contracts.results import ResultRejected
from services.runtime.consumer import EventRejected
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork
from services.urban_management import store
from services.urban_management.domain.permits import UnknownAction, perform


class UrbanManagementOffice:
    """The office's use case: do the step a handoff asks for, and report back."""

    def __init__(self, *, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def register(self) -> None:
        """Read only what is addressed to the office; answer on its own topic."""
        self.runtime.publishes(topics.agency_events(URBAN_MANAGEMENT), StepCompleted)
        self.runtime.subscribe(
            topics.handoffs(URBAN_MANAGEMENT),
            consumer="urban_management.handoffs",
            accepts=(DossierHandedOver,),
            handler=self.perform_step,
        )

    async def perform_step(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """Review the design or issue the permit, and hand the dossier back to the desk."""
        handover = event.data
        assert isinstance(handover, DossierHandedOver)
        if handover.to_agency != URBAN_MANAGEMENT:
            raise EventRejected(f"handoff addressed to {handover.to_agency}, not {URBAN_MANAGEMENT}")
        number = (
            await store.next_permit_number(uow.conn, uow.now)
            if handover.action == "issue_construction_permit"
            else ""
        )
        try:
            outcome = perform(handover, permit_number=number, now=uow.now)
        except (UnknownAction, ResultRejected) as exc:
            raise EventRejected(str(exc)) from exc
        await store.record_step(
            uow.conn,
            dossier_id=handover.dossier_id,
            handoff_row=handover.handoff_row,
            action=handover.action,
            outcome=outcome.outcome,
            note=outcome.note,
            result=json.dumps(outcome.typed.wire()),
            completed_at=uow.now,
        )
        await uow.publish(
            StepCompleted.answering(
                handover,
                outcome=outcome.outcome,
                received_at=uow.now,
                completed_at=uow.now,
                note=outcome.note,
                result=outcome.typed,
            ),
            topic=topics.agency_events(URBAN_MANAGEMENT),
        )
