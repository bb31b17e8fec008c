"""Intake's use cases: receive a dossier, route it on when an agency reports, take payments.

Each one opens a unit of work, loads the dossier, calls one domain method and saves the
dossier with the events it produced; the transaction commits both or neither.

Tracing: a dossier has one trace, started by its ``POST /dossiers``, whose context is stored
with it. Work that does not come from a Kafka record continues that trace: the deadline
watcher's ``deadline alarm`` span is its child; a later request (payment, supplement) keeps
its own HTTP span and the desk's work on it is a child of the dossier's trace linked to it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from prometheus_client import Counter

from contracts import topics
from contracts.agencies import ONE_STOP
from contracts.envelope import CloudEvent
from contracts.events import (
    ApologyIssued,
    Applicant,
    DossierEscalated,
    DossierEvent,
    DossierHandedOver,
    DossierProgressed,
    DossierReceived,
    DossierReturned,
    StepCompleted,
    StepOverdue,
    SupplementRequested,
)
from services.intake import store
from services.intake.domain.catalog import Catalog
from services.intake.domain.dossier import Dossier, TransitionRefused
from services.runtime import telemetry
from services.runtime.consumer import EventRejected
from services.runtime.service import ServiceRuntime
from services.runtime.telemetry import continue_trace, trace_carrier
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.working_days import WorkingDayCalendar

log = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS = 0.5
"""How often the deadline watcher looks; an alarm fires at most this late (plus the work)."""
ALARM_BATCH = 100


class DossierNotFound(LookupError):
    """No dossier with that id."""


class Desk:
    """The one-stop desk's use cases, wired to the service's runtime, catalog and calendar."""

    def __init__(self, *, runtime: ServiceRuntime, catalog: Catalog, calendar: WorkingDayCalendar) -> None:
        self.runtime = runtime
        self.catalog = catalog
        self.calendar = calendar
        registry = runtime.telemetry.registry
        self.overdue_steps = Counter(
            "dossier_steps_overdue",
            "Steps found past their due time, by agency.",
            ["agency"],
            registry=registry,
        )
        self.apologies = Counter(
            "dossier_apologies",
            "Apology letters issued to citizens, by late agency.",
            ["agency"],
            registry=registry,
        )
        self.escalations = Counter(
            "dossier_escalations",
            "Dossiers escalated after a second overrun, by agency.",
            ["agency"],
            registry=registry,
        )

    def register(self) -> None:
        """Declare what the desk writes, and listen to every agency the catalog routes to.

        A new agency in the catalog needs no code here.
        """
        self.runtime.publishes(
            topics.INTAKE_EVENTS,
            DossierReceived,
            DossierReturned,
            SupplementRequested,
            StepOverdue,
            ApologyIssued,
            DossierEscalated,
            DossierProgressed,
        )
        for agency in sorted(self.catalog.consumers()):
            self.runtime.publishes(topics.handoffs(agency), DossierHandedOver)
        self.runtime.run_in_background("deadline_watcher", self.watch_deadlines)
        for agency in sorted(self.catalog.consumers()):
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
            # The span now current (the POST /dossiers request) is where the dossier's trace starts.
            trace.get_current_span().set_attributes(
                {
                    telemetry.DOSSIER_ID: dossier.id,
                    telemetry.PROCEDURE: procedure_code,
                    telemetry.AGENCY: ONE_STOP,
                }
            )
            await _record(uow, dossier, events)
            await store.remember_trace(uow.conn, dossier.id, trace_carrier())
        return dossier

    async def record_payment(self, dossier_id: str) -> Dossier:
        """The citizen's payment of the tax notice was received at the desk."""
        async with self._follow_up("record payment", dossier_id) as uow:
            dossier = await self._load_for_update(uow, dossier_id)
            events = dossier.record_payment(now=uow.now, calendar=self.calendar)
            await _record(uow, dossier, events)
        return dossier

    async def request_supplement(self, dossier_id: str, *, missing: list[str], reason: str) -> Dossier:
        """The desk asks the citizen to complete the dossier; the clock stops meanwhile."""
        async with self._follow_up("request supplement", dossier_id) as uow:
            dossier = await self._load_for_update(uow, dossier_id)
            events = dossier.request_supplement(
                missing=missing, reason=reason, now=uow.now, agencies=self.catalog.agencies
            )
            await _record(uow, dossier, events)
        return dossier

    async def supplement(
        self, dossier_id: str, *, documents: list[str], details: dict[str, Any] | None
    ) -> Dossier:
        """The citizen's complete supplement: the limit restarts in full."""
        async with self._follow_up("supplement", dossier_id) as uow:
            dossier = await self._load_for_update(uow, dossier_id)
            events = dossier.supplement(
                documents=documents, details=details, now=uow.now, calendar=self.calendar
            )
            await _record(uow, dossier, events)
        return dossier

    async def watch_deadlines(self) -> None:
        """Fire every passed alarm, forever; the alarms live in Postgres, so a restart loses none."""
        while True:
            try:
                fired = await self.fire_due_alarms()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deadline watcher failed; retrying")
                fired = 0
            if fired < ALARM_BATCH:
                await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    async def fire_due_alarms(self) -> int:
        """One pass of the watcher: each due alarm in its own transaction with its events."""
        async with self.runtime.pool.acquire() as conn:
            due = await store.due_alarms(conn, self.runtime.clock.now(), limit=ALARM_BATCH)
        for alarm in due:
            attributes = {telemetry.DOSSIER_ID: alarm.dossier_id, telemetry.AGENCY: ONE_STOP}
            with continue_trace(
                self.runtime.telemetry.tracer, "deadline alarm", alarm.trace_context, attributes
            ):
                async with self.runtime.unit_of_work() as uow:
                    # The row lock makes a second watcher (another intake instance) a no-op: it
                    # finds the alarm moved or cleared when it gets the lock.
                    dossier = await self._load_for_update(uow, alarm.dossier_id)
                    _describe_step(dossier, alarm.row, now=uow.now, calendar=self.calendar)
                    number = (
                        await store.next_letter_number(uow.conn, uow.now)
                        if dossier.apologised_at is None
                        else ""
                    )
                    events = dossier.on_alarm(
                        alarm.row,
                        now=uow.now,
                        calendar=self.calendar,
                        agencies=self.catalog.agencies,
                        letter_number=number,
                    )
                    await _record(uow, dossier, events)
            self._count_deadline_events(events)
        return len(due)

    def _count_deadline_events(self, events: list[DossierEvent]) -> None:
        """Overdue steps, apologies and escalations, counted once their transaction committed."""
        for event in events:
            if isinstance(event, StepOverdue):
                self.overdue_steps.labels(event.agency).inc()
            elif isinstance(event, ApologyIssued):
                self.apologies.labels(event.issued_by_agency).inc()
            elif isinstance(event, DossierEscalated):
                self.escalations.labels(event.agency).inc()

    @asynccontextmanager
    async def _follow_up(self, name: str, dossier_id: str) -> AsyncIterator[UnitOfWork]:
        """A unit of work on an existing dossier, in the dossier's trace (linked to the request)."""
        async with self.runtime.pool.acquire() as conn:
            stored = await store.trace_context(conn, dossier_id)
        attributes = {telemetry.DOSSIER_ID: dossier_id, telemetry.AGENCY: ONE_STOP}
        with continue_trace(self.runtime.telemetry.tracer, name, stored, attributes):
            async with self.runtime.unit_of_work() as uow:
                yield uow

    async def _load_for_update(self, uow: UnitOfWork, dossier_id: str) -> Dossier:
        dossier = await store.load(uow.conn, dossier_id, for_update=True)
        if dossier is None:
            raise DossierNotFound(dossier_id)
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
            events = dossier.on_step_completed(
                event.data, now=uow.now, calendar=self.calendar, agencies=self.catalog.agencies
            )
        except TransitionRefused as exc:
            raise EventRejected(str(exc)) from exc
        await _record(uow, dossier, events)


def _describe_step(dossier: Dossier, row: int, *, now: datetime, calendar: WorkingDayCalendar) -> None:
    """Put the watched step on the current span: who, which step, its budget, how late."""
    step = dossier.slip[row]
    attributes: dict[str, AttributeValue] = {
        telemetry.STEP: step.step_index,
        telemetry.STEP_AGENCY: step.to_agency,
        telemetry.ACTION: step.action,
        telemetry.BUDGET_DAYS: float(step.budget_days),
        telemetry.PROCEDURE: dossier.procedure_code,
        telemetry.LATE_BY_DAYS: float(step.lateness(now, calendar)),
    }
    if step.due_at is not None:
        attributes[telemetry.DUE_AT] = telemetry.attribute(telemetry.DUE_AT, step.due_at)
    trace.get_current_span().set_attributes(attributes)


async def _record(uow: UnitOfWork, dossier: Dossier, events: list[DossierEvent]) -> None:
    """Save the dossier, and publish its events and its new state, all in this transaction."""
    await store.save(uow.conn, dossier)
    for event in [*events, dossier.progress(uow.now)]:
        if isinstance(event, DossierHandedOver):
            await uow.publish(event, topic=topics.handoffs(event.to_agency))
        else:
            await uow.publish(event, topic=topics.INTAKE_EVENTS)
