"""The notification service turns citizen-facing events into recorded notices, due for delivery."""

from __future__ import annotations

from contracts import topics
from contracts.agencies import TAX
from contracts.envelope import CloudEvent
from contracts.events import (
    ApologyIssued,
    DossierReceived,
    DossierReturned,
    PaymentNoticeIssued,
    SupplementRequested,
)
from services.notification import store
from services.notification.delivery import EMAIL, addresses
from services.notification.domain.notices import DEFAULT_PLACE, render
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork


class NoticeWriter:
    """Renders and records each notice once, with one delivery per enabled channel."""

    def __init__(
        self, *, runtime: ServiceRuntime, channels: tuple[str, ...] = (EMAIL,), place: str = DEFAULT_PLACE
    ) -> None:
        self.runtime = runtime
        self.channels = channels
        self.place = place

    def register(self) -> None:
        """Receipts, supplement requests, apologies and results come from the desk; tax notices from tax."""
        letters = (DossierReceived, DossierReturned, SupplementRequested, ApologyIssued)
        self.runtime.subscribe(
            topics.INTAKE_CITIZENS,
            consumer="notification.citizens",
            accepts=letters,
            handler=self.write_notice,
        )
        # Records written before the desk moved letters to intake.citizens (recordings, streams
        # replayed as they are) still carry them on intake.events.
        self.runtime.subscribe(
            topics.INTAKE_EVENTS, consumer="notification.intake", accepts=letters, handler=self.write_notice
        )
        self.runtime.subscribe(
            topics.agency_events(TAX),
            consumer="notification.tax",
            accepts=(PaymentNoticeIssued,),
            handler=self.write_notice,
        )

    async def write_notice(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """Render the notice for the citizen, record it and its deliveries in one transaction."""
        notice = render(event.data, place=self.place)
        if notice is None:
            return
        notice_id = await store.record_notice(uow.conn, notice, source_event_id=event.id, created_at=uow.now)
        if notice_id is None:
            return  # this event's notice is already recorded (and its deliveries with it)
        await store.schedule_deliveries(
            uow.conn, notice_id, addresses(notice.recipient, self.channels), now=uow.now
        )
