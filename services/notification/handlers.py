"""The notification service turns citizen-facing events into recorded notices, due for delivery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from contracts import topics
from contracts.agencies import TAX
from contracts.envelope import CloudEvent
from contracts.events import (
    ApologyIssued,
    DossierReceived,
    DossierReturned,
    DossierWithdrawn,
    FaultApologyIssued,
    PaymentNoticeIssued,
    SupplementRequested,
)
from services.notification import store
from services.notification.delivery import EMAIL, addresses
from services.notification.document_signing import NoSigningCertificate
from services.notification.domain.notices import Notice
from services.notification.letter_press import LetterPress
from services.runtime.consumer import EventRejected
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork


class NoticeWriter:
    """Renders and records each notice once, with one delivery per enabled channel."""

    def __init__(
        self, *, runtime: ServiceRuntime, press: LetterPress, channels: tuple[str, ...] = (EMAIL,)
    ) -> None:
        self.runtime = runtime
        self.press = press
        self.channels = channels
        # Notices of the batches in hand, being made (by event id), see prepared().
        self._making: dict[str, asyncio.Future[Notice | None]] = {}

    def register(self) -> None:
        """Receipts, supplement requests, apologies and results come from the desk; tax notices from tax."""
        letters = (
            DossierReceived,
            DossierReturned,
            SupplementRequested,
            ApologyIssued,
            FaultApologyIssued,
            DossierWithdrawn,
        )
        self.runtime.subscribe(
            topics.INTAKE_CITIZENS,
            consumer="notification.citizens",
            accepts=letters,
            handler=self.write_notice,
            prepare=self.prepared,
        )
        # Records written before the desk moved letters to intake.citizens (recordings, streams
        # replayed as they are) still carry them on intake.events.
        self.runtime.subscribe(
            topics.INTAKE_EVENTS,
            consumer="notification.intake",
            accepts=letters,
            handler=self.write_notice,
            prepare=self.prepared,
        )
        self.runtime.subscribe(
            topics.agency_events(TAX),
            consumer="notification.tax",
            accepts=(PaymentNoticeIssued,),
            handler=self.write_notice,
            prepare=self.prepared,
        )

    async def write_notice(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """Render the notice for the citizen, record it and its deliveries in one transaction.

        A withdrawal voids the dossier's notices still queued, and those recorded after it.
        """
        if isinstance(event.data, DossierWithdrawn):
            await store.record_withdrawal(uow.conn, event.data.dossier_id, at=event.data.withdrawn_at)
            await store.void_if_withdrawn(uow.conn, event.data.dossier_id)
        notice = await self.notice(event)
        if notice is None:
            return
        notice_id = await store.record_notice(uow.conn, notice, source_event_id=event.id, created_at=uow.now)
        if notice_id is None:
            return  # this event's notice is already recorded (and its deliveries with it)
        await store.schedule_deliveries(
            uow.conn, notice_id, addresses(notice.recipient, self.channels), now=uow.now
        )
        if notice.kind != store.WITHDRAWAL_RECEIPT:
            await store.void_if_withdrawn(uow.conn, notice.dossier_id)

    @contextlib.asynccontextmanager
    async def prepared(self, events: Sequence[CloudEvent]) -> AsyncIterator[None]:
        """Start making a batch's notices side by side before its transaction (on letter workers).

        The transaction then holds its connection only for the writes. What is made for an
        event the inbox shows as handled already is dropped when the batch ends.
        """
        started = {}
        if self.press.parallel:
            for event in events:
                if event.id not in self._making:
                    started[event.id] = asyncio.ensure_future(self.press.notice(event.data))
            self._making.update(started)
        try:
            yield
        finally:
            for event_id, making in started.items():
                del self._making[event_id]
                if making.done() and not making.cancelled():
                    making.exception()  # looked at: a failure of a duplicate's letter is no one's news
                else:
                    making.cancel()

    async def notice(self, event: CloudEvent) -> Notice | None:
        """The event's notice with its letter signed by the issuing agency (a redelivery's is discarded).

        An agency without a certificate dead-letters the event (``rejected``): a letter goes out
        signed by its issuer or not at all. Add the certificate, restart, redrive the record.
        """
        making = self._making.get(event.id)
        try:
            return await (making if making is not None else self.press.notice(event.data))
        except NoSigningCertificate as exc:
            raise EventRejected(f"{exc} in LETTER_SIGNING_DIR: the letter cannot be signed") from exc
