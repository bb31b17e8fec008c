"""The land registry takes dossiers handed to it, does the step, and reports back."""

from __future__ import annotations

from contracts import topics
from contracts.agencies import LAND_REGISTRY
from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver, StepCompleted
from contracts.results import ResultRejected
from services.land_registry import store
from services.land_registry.domain.registry import LandPriceTable, UnknownAction, perform
from services.runtime.consumer import EventRejected
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork


class Registry:
    """The registry's single use case: perform the step a handoff asks for."""

    def __init__(self, *, runtime: ServiceRuntime, prices: LandPriceTable) -> None:
        self.runtime = runtime
        self.prices = prices

    def register(self) -> None:
        """Read only what is addressed to the land registry; answer on its own topic."""
        self.runtime.publishes(topics.agency_events(LAND_REGISTRY), StepCompleted)
        self.runtime.subscribe(
            topics.handoffs(LAND_REGISTRY),
            consumer="land_registry.handoffs",
            accepts=(DossierHandedOver,),
            handler=self.perform_step,
        )

    async def perform_step(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """Appraise, or issue the certificate, and hand the dossier back to the desk."""
        handover = event.data
        assert isinstance(handover, DossierHandedOver)
        if handover.to_agency != LAND_REGISTRY:
            raise EventRejected(f"handoff addressed to {handover.to_agency}, not {LAND_REGISTRY}")
        serial = (
            await store.next_certificate_serial(uow.conn) if handover.action == "issue_certificate" else ""
        )
        try:
            outcome = perform(handover, prices=self.prices, certificate_serial=serial)
        except (UnknownAction, ResultRejected) as exc:  # a malformed earlier result is dead-lettered
            raise EventRejected(str(exc)) from exc
        await store.record_step(
            uow.conn,
            dossier_id=handover.dossier_id,
            step_index=handover.step_index,
            handoff_row=handover.handoff_row,
            action=handover.action,
            outcome=outcome,
            received_at=uow.now,
            completed_at=uow.now,
        )
        await uow.publish(
            StepCompleted.answering(
                handover,
                outcome=outcome.outcome,
                received_at=uow.now,
                completed_at=uow.now,
                note=outcome.note,
                result=outcome.result,
            ),
            topic=topics.agency_events(LAND_REGISTRY),
        )
