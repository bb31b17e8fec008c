"""The console's use cases: keep the read model of the desk's events, keep received spans."""

from __future__ import annotations

import asyncpg

from contracts import topics
from contracts.envelope import CloudEvent
from contracts.events import (
    ApologyIssued,
    DossierEscalated,
    DossierProgressed,
    DossierRated,
    DossierReceived,
    FaultApologyIssued,
    StepDueSoon,
    StepOverdue,
)
from services.console import store
from services.console.domain.spans import ParsedExport
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork

CONSUMER = "console.intake"
"""Consumer group and inbox name; console replicas sharing one database share it too."""
CITIZENS_CONSUMER = "console.citizens"
"""The same for the desk's letters to citizens."""


class ReadModel:
    """What operators look at, kept from the desk's events (``intake.events``) alone."""

    def __init__(self, *, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def register(self) -> None:
        """The desk's snapshots, overdue and last-day steps, escalations; who applied, the apologies.

        The applicant comes from the receipt on ``intake.citizens``, which operators may read;
        ``intake.events`` carries no personal data. Older records carried receipts and apologies
        on ``intake.events``: read there too, so a recording made before the split replays whole.
        """
        self.runtime.subscribe(
            topics.INTAKE_EVENTS,
            consumer=CONSUMER,
            accepts=(
                DossierProgressed,
                StepOverdue,
                StepDueSoon,
                ApologyIssued,
                DossierEscalated,
                DossierReceived,
                DossierRated,
            ),
            handler=self.apply,
        )
        self.runtime.subscribe(
            topics.INTAKE_CITIZENS,
            consumer=CITIZENS_CONSUMER,
            accepts=(DossierReceived, ApologyIssued, FaultApologyIssued),
            handler=self.apply,
        )

    async def apply(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """Record one event in the read model (in the inbox's transaction)."""
        data = event.data
        if isinstance(data, DossierProgressed):
            await store.save_progress(uow.conn, data)
        elif isinstance(data, StepOverdue | StepDueSoon):
            await store.save_step_alert(uow.conn, event.id, data)
        elif isinstance(data, ApologyIssued | FaultApologyIssued):
            await store.save_apology(uow.conn, event.id, data)
        elif isinstance(data, DossierEscalated):
            await store.save_escalation(uow.conn, event.id, data)
        elif isinstance(data, DossierRated):
            await store.save_rating(uow.conn, data)
        elif isinstance(data, DossierReceived):
            await store.save_applicant(uow.conn, data.dossier_id, data.applicant)


async def keep_spans(pool: asyncpg.Pool, export: ParsedExport) -> None:
    """Store the spans of one OTLP export in one transaction (all or none, so a retry is whole)."""
    if not export.spans:
        return
    async with pool.acquire() as conn, conn.transaction():
        await store.save_spans(conn, export.spans)
