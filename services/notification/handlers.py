"""The notification service turns citizen-facing events into recorded notices, due for delivery."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

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
from services.notification.document_signing import LetterSigner, NoSigningCertificate
from services.notification.domain.notices import DEFAULT_PLACE, Notice, render
from services.runtime.consumer import EventRejected
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork


class NoticeWriter:
    """Renders and records each notice once, with one delivery per enabled channel."""

    def __init__(
        self,
        *,
        runtime: ServiceRuntime,
        signer: LetterSigner,
        channels: tuple[str, ...] = (EMAIL,),
        place: str = DEFAULT_PLACE,
        issuers: Mapping[str, str] | None = None,
    ) -> None:
        self.runtime = runtime
        self.signer = signer
        self.issuers = dict(issuers or {})
        self.channels = channels
        self.place = place

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
        """Render the notice for the citizen, record it and its deliveries in one transaction.

        A withdrawal voids the dossier's notices still queued, and those recorded after it.
        """
        if isinstance(event.data, DossierWithdrawn):
            await store.record_withdrawal(uow.conn, event.data.dossier_id, at=event.data.withdrawn_at)
            await store.void_if_withdrawn(uow.conn, event.data.dossier_id)
        notice = render(event.data, place=self.place, issuers=self.issuers)
        if notice is None:
            return
        notice = await self.signed(notice)
        notice_id = await store.record_notice(uow.conn, notice, source_event_id=event.id, created_at=uow.now)
        if notice_id is None:
            return  # this event's notice is already recorded (and its deliveries with it)
        await store.schedule_deliveries(
            uow.conn, notice_id, addresses(notice.recipient, self.channels), now=uow.now
        )
        if notice.kind != store.WITHDRAWAL_RECEIPT:
            await store.void_if_withdrawn(uow.conn, notice.dossier_id)

    async def signed(self, notice: Notice) -> Notice:
        """The notice with its letter signed by the issuing agency (a redelivery's is discarded).

        An agency without a certificate dead-letters the event (``rejected``): a letter goes out
        signed by its issuer or not at all. Add the certificate, restart, redrive the record.
        """
        attachment = notice.attachment
        if attachment is None or attachment.signed_by is None:
            return notice
        try:
            data = await self.signer.sign(attachment.data, agency=attachment.signed_by, location=self.place)
        except NoSigningCertificate as exc:
            raise EventRejected(f"{exc} in LETTER_SIGNING_DIR: the letter cannot be signed") from exc
        return dataclasses.replace(notice, attachment=dataclasses.replace(attachment, data=data))
