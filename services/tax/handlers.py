"""The tax authority assesses transfers handed to it and issues the payment notice."""

from __future__ import annotations

from contracts import topics
from contracts.agencies import TAX
from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver, PaymentNoticeIssued, StepCompleted
from services.runtime.consumer import EventRejected
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork
from services.tax import store
from services.tax.domain.assessment import AssessmentImpossible, assess, notice_and_answer


class TaxOffice:
    """The tax authority's use case: assess and notify."""

    def __init__(self, *, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def register(self) -> None:
        """Read only what is addressed to the tax authority; answer on its own topic."""
        self.runtime.publishes(topics.agency_events(TAX), PaymentNoticeIssued, StepCompleted)
        self.runtime.subscribe(
            topics.handoffs(TAX),
            consumer="tax.handoffs",
            accepts=(DossierHandedOver,),
            handler=self.assess_obligations,
        )

    async def assess_obligations(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """Compute what the citizen owes, notify them, and report the step done."""
        handover = event.data
        assert isinstance(handover, DossierHandedOver)
        if (handover.to_agency, handover.action) != (TAX, "assess"):
            raise EventRejected(f"the tax authority does not {handover.action!r}")
        try:
            assessment = assess(handover.results)
        except AssessmentImpossible as exc:
            raise EventRejected(str(exc)) from exc
        notice_number = await store.next_notice_number(uow.conn, uow.now)
        await store.record_assessment(
            uow.conn,
            dossier_id=handover.dossier_id,
            handoff_row=handover.handoff_row,
            notice_number=notice_number,
            assessment=assessment,
            issued_at=uow.now,
        )
        notice, done = notice_and_answer(handover, assessment, notice_number=notice_number, now=uow.now)
        await uow.publish(notice, topic=topics.agency_events(TAX))
        await uow.publish(done, topic=topics.agency_events(TAX))
