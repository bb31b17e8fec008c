"""The notification service turns citizen-facing events into recorded notices."""

from __future__ import annotations

from contracts import topics
from contracts.agencies import TAX
from contracts.envelope import CloudEvent
from contracts.events import DossierReceived, DossierReturned, PaymentNoticeIssued
from services.notification import store
from services.notification.domain.notices import render
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork


class NoticeWriter:
    """Renders and records each notice once."""

    def __init__(self, *, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def register(self) -> None:
        """Receipts and results come from the desk, payment notices from the tax authority."""
        self.runtime.subscribe(
            topics.INTAKE_EVENTS,
            consumer="notification.intake",
            accepts=(DossierReceived, DossierReturned),
            handler=self.write_notice,
        )
        self.runtime.subscribe(
            topics.agency_events(TAX),
            consumer="notification.tax",
            accepts=(PaymentNoticeIssued,),
            handler=self.write_notice,
        )

    async def write_notice(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """Render the notice for the citizen and record it."""
        notice = render(event.data)
        if notice is not None:
            await store.record_notice(uow.conn, notice, source_event_id=event.id, created_at=uow.now)
