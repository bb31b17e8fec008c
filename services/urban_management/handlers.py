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
from services.runtime.unit_of_work import UnitOfWork, Work
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
        """The subscription's handler: :func:`answer_handoff` in the unit of work's transaction."""
        assert isinstance(event.data, DossierHandedOver)
        await answer_handoff(uow, store.PostgresRegister(uow.conn, uow.now), event.data)


async def answer_handoff(work: Work, register: store.Register, handover: DossierHandedOver) -> None:
    """Review the design or issue the permit, keep the decision, and answer the desk.

    Raises EventRejected (the record is dead-lettered) for a handoff meant for another agency,
    an action the office does not do, or an earlier result off its contract.
    """
    if handover.to_agency != URBAN_MANAGEMENT:
        raise EventRejected(f"handoff addressed to {handover.to_agency}, not {URBAN_MANAGEMENT}")
    number = (
        await register.next_permit_number(work.now) if handover.action == "issue_construction_permit" else ""
    )
    try:
        outcome = perform(handover, permit_number=number, now=work.now)
    except (UnknownAction, ResultRejected) as exc:
        raise EventRejected(str(exc)) from exc
    await register.record_step(
        dossier_id=handover.dossier_id,
        handoff_row=handover.handoff_row,
        action=handover.action,
        outcome=outcome.outcome,
        note=outcome.note,
        result=json.dumps(outcome.typed.wire()),
    )
    await work.publish(
        StepCompleted.answering(
            handover,
            outcome=outcome.outcome,
            received_at=work.now,
            completed_at=work.now,
            note=outcome.note,
            result=outcome.typed,
        ),
        topic=topics.agency_events(URBAN_MANAGEMENT),
    )
