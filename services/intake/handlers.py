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
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from prometheus_client import Counter

from contracts import topics
from contracts.agencies import ONE_STOP
from contracts.envelope import CloudEvent
from contracts.events import (
    ApologyIssued,
    Applicant,
    DocumentLossReported,
    DossierEscalated,
    DossierEvent,
    DossierHandedOver,
    DossierProgressed,
    DossierRated,
    DossierReceived,
    DossierReturned,
    DossierWithdrawn,
    FaultApologyIssued,
    FaultKind,
    HandoffWithdrawn,
    PaymentReceived,
    SatisfactionScores,
    StepCompleted,
    StepDelayReported,
    StepDueSoon,
    StepOverdue,
    SupplementReceived,
    SupplementRequested,
)
from contracts.results import ResultRejected, parse_result
from services.intake import store
from services.intake.domain.catalog import AgencyInfo, Catalog
from services.intake.domain.dossier import Dossier, FaultRefused, TransitionRefused
from services.runtime import telemetry
from services.runtime.consumer import EventRejected
from services.runtime.loops import keep_running
from services.runtime.service import ServiceRuntime
from services.runtime.telemetry import continue_trace, trace_carrier
from services.runtime.unit_of_work import UnitOfWork, Work
from services.runtime.working_days import WorkingDayCalendar

log = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS = 0.5
"""How often the deadline watcher looks; an alarm fires at most this late (plus the work)."""
ALARM_BATCH = 100
WATCH_SLICES = 25


LOOKUP_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
"""Letters and digits a citizen cannot misread (no I/1, O/0, L)."""
LOOKUP_CODE_LENGTH = 8


def new_lookup_code() -> str:
    """A random code for the receipt (about 40 bits: guessing one is hopeless at any request rate)."""
    return "".join(secrets.choice(LOOKUP_ALPHABET) for _ in range(LOOKUP_CODE_LENGTH))


class DossierNotFound(LookupError):
    """No dossier with that id."""


class DossierIdTaken(ValueError):
    """A client-chosen dossier id (e.g. the portal's) is already used by another dossier."""


class IdempotencyKeyReused(ValueError):
    """An ``Idempotency-Key`` already used for a different request."""


@dataclass(frozen=True)
class Handled:
    """A desk request's result: the dossier, and whether the request had been done before."""

    dossier: Dossier
    replayed: bool = False


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
        desk_events = (
            DossierReceived,
            DossierReturned,
            PaymentReceived,
            SupplementReceived,
            SupplementRequested,
            StepOverdue,
            StepDueSoon,
            ApologyIssued,
            FaultApologyIssued,
            DossierEscalated,
            DossierWithdrawn,
            DossierRated,
            DossierProgressed,
        )
        # The citizen's identity goes only where readers are entitled to it (contracts.topics).
        for topic in (topics.INTAKE_EVENTS, topics.INTAKE_CITIZENS):
            self.runtime.publishes(topic, *(e for e in desk_events if topics.desk_topic(e) == topic))
        for agency in sorted(self.catalog.consumers()):
            self.runtime.publishes(topics.handoffs(agency), DossierHandedOver, HandoffWithdrawn, StepDueSoon)
        self.runtime.run_in_background("deadline_watcher", self.watch_deadlines)
        self.runtime.counts_backlog("alarms_due", store.count_due_alarms)
        self.runtime.schedules_work(store.next_alarm, self._earliest_alarm)
        for agency in sorted(self.catalog.consumers()):
            self.runtime.subscribe(
                topics.agency_events(agency),
                consumer=f"intake.from.{agency}",
                accepts=(StepCompleted, StepDelayReported, DocumentLossReported),
                handler=self.route_on,
            )

    async def submit(
        self,
        *,
        procedure_code: str,
        applicant: Applicant,
        documents: list[str],
        details: dict[str, Any],
        dossier_id: str | None = None,
        lookup_code: str | None = None,
        idempotency_key: str | None = None,
    ) -> Handled:
        """Receive a dossier at the desk (raises SubmissionRefused before anything is stored).

        ``dossier_id`` keeps a number the online portal already gave the dossier; by default the
        desk numbers it. With ``idempotency_key``, a repeat of the same request (a client retry,
        a replay) returns the dossier filed the first time and changes nothing.
        """
        async with self.runtime.unit_of_work() as uow:
            chosen = dossier_id or f"HS-{uow.now:%y%m%d}-{uuid.uuid4().hex[:10].upper()}"
            if idempotency_key is not None:
                done = await self._claim(uow, idempotency_key, "submit", chosen)
                if done is not None:
                    return done
            if dossier_id is not None and await store.exists(uow.conn, dossier_id):
                raise DossierIdTaken(dossier_id)
            dossier, events = Dossier.receive(
                dossier_id=chosen,
                procedure=self.catalog.get(procedure_code),
                procedure_code=procedure_code,
                applicant=applicant,
                documents=documents,
                details=details,
                now=uow.now,
                calendar=self.calendar,
                lookup_code=lookup_code or new_lookup_code(),
            )
            # The span now current (the POST /dossiers request) is where the dossier's trace starts.
            trace.get_current_span().set_attributes(
                {
                    telemetry.DOSSIER_ID: dossier.id,
                    telemetry.PROCEDURE: procedure_code,
                    telemetry.AGENCY: ONE_STOP,
                }
            )
            await _record(
                uow, store.PostgresDossiers(uow.conn), dossier, events, trace_context=trace_carrier()
            )
        return Handled(dossier)

    async def record_payment(
        self, dossier_id: str, *, notice_number: str, amount_vnd: int, idempotency_key: str | None = None
    ) -> Handled:
        """The treasury confirms the tax notice paid (raises PaymentRefused if it does not match)."""
        return await self._change(
            "record payment",
            dossier_id,
            idempotency_key,
            lambda dossier, now: dossier.record_payment(
                notice_number=notice_number, amount_vnd=amount_vnd, now=now, calendar=self.calendar
            ),
        )

    async def request_supplement(
        self, dossier_id: str, *, missing: list[str], reason: str, idempotency_key: str | None = None
    ) -> Handled:
        """The desk asks the citizen to complete the dossier; the clock stops meanwhile."""
        return await self._change(
            "request supplement",
            dossier_id,
            idempotency_key,
            lambda dossier, now: dossier.request_supplement(
                missing=missing, reason=reason, now=now, agencies=self.catalog.agencies
            ),
        )

    async def supplement(
        self,
        dossier_id: str,
        *,
        documents: list[str],
        details: dict[str, Any] | None,
        idempotency_key: str | None = None,
    ) -> Handled:
        """The citizen's complete supplement: the limit restarts in full."""
        return await self._change(
            "supplement",
            dossier_id,
            idempotency_key,
            lambda dossier, now: dossier.supplement(
                documents=documents, details=details, now=now, calendar=self.calendar
            ),
        )

    async def withdraw(
        self,
        dossier_id: str,
        *,
        reason: str,
        requested_by: Literal["citizen", "desk"],
        idempotency_key: str | None = None,
    ) -> Handled:
        """The citizen withdraws the dossier; the agency holding it is told to stop."""
        return await self._change(
            "withdraw",
            dossier_id,
            idempotency_key,
            lambda dossier, now: dossier.withdraw(reason=reason, requested_by=requested_by, now=now),
        )

    async def refuse(self, dossier_id: str, *, reason: str, idempotency_key: str | None = None) -> Handled:
        """The desk refuses to settle the dossier; the citizen gets the refusal with the reason."""
        return await self._change(
            "refuse",
            dossier_id,
            idempotency_key,
            lambda dossier, now: dossier.refuse(reason=reason, now=now, calendar=self.calendar),
        )

    async def record_fault(
        self,
        dossier_id: str,
        *,
        kind: FaultKind,
        agency: str,
        detail: str,
        documents: list[str],
        idempotency_key: str | None = None,
    ) -> Handled:
        """The desk records a fault in an agency's handling; that agency's letter goes out (once)."""

        def change(dossier: Dossier, now: datetime) -> list[DossierEvent]:
            procedure = self.catalog.get(dossier.procedure_code)
            if kind == "unlisted_document_requested" and procedure is not None:
                listed = [paper for paper in documents if procedure.lists_document(paper)]
                if listed:
                    raise FaultRefused(f"{', '.join(listed)}: listed by the procedure, so asking is no fault")
            return dossier.record_fault(
                kind,
                agency,
                detail=f"{', '.join(documents)}: {detail}" if documents else detail,
                subject=",".join(sorted(documents)) or detail,
                now=now,
                agencies=self.catalog.agencies,
            )

        return await self._change("record fault", dossier_id, idempotency_key, change)

    async def rate(
        self, dossier_id: str, scores: SatisfactionScores, *, idempotency_key: str | None = None
    ) -> Handled:
        """The citizen's rating of the service, once the result is returned."""
        return await self._change(
            "rate", dossier_id, idempotency_key, lambda dossier, now: dossier.rate(scores, now=now)
        )

    async def _change(
        self,
        name: str,
        dossier_id: str,
        idempotency_key: str | None,
        change: Callable[[Dossier, datetime], list[DossierEvent]],
    ) -> Handled:
        """One request on an existing dossier: load it locked, apply ``change``, record the events."""
        async with self._follow_up(name, dossier_id) as uow:
            dossier = await self._load_for_update(uow, dossier_id)
            if idempotency_key is not None:
                done = await self._claim(uow, idempotency_key, name, dossier_id)
                if done is not None:
                    return done
            await _record(uow, store.PostgresDossiers(uow.conn), dossier, change(dossier, uow.now))
        return Handled(dossier)

    async def _claim(self, uow: UnitOfWork, key: str, action: str, dossier_id: str) -> Handled | None:
        """Remember ``key`` in this transaction; if it was used before, what that request did."""
        first = await store.claim_request(uow.conn, key, action=action, dossier_id=dossier_id)
        if first is None:
            return None
        if first != (action, dossier_id) and not (action == "submit" and first[0] == "submit"):
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used to {first[0]} {first[1]}")
        return Handled(await self._load_for_update(uow, first[1]), replayed=True)

    def _earliest_alarm(self, now: datetime) -> datetime:
        """The soonest an alarm set by a handoff at ``now`` or later can fall due."""
        shortest = self.catalog.soonest_first_alarm()
        if shortest is None:
            return datetime.max.replace(tzinfo=now.tzinfo)  # no step is watched: no alarm ever
        return self.calendar.add_working_time(now, shortest)

    async def watch_deadlines(self) -> None:
        """Fire every passed alarm, forever; the alarms live in Postgres, so a restart loses none."""
        await keep_running("deadline watcher", self._watch_once, retry_seconds=WATCH_INTERVAL_SECONDS)

    async def _watch_once(self) -> None:
        if await self.fire_due_alarms() < ALARM_BATCH:
            await self._sleep_until_clock_moves()

    async def _sleep_until_clock_moves(self) -> None:
        """Wait WATCH_INTERVAL_SECONDS, or less if the clock was moved (a replay, a test).

        A virtual clock jumps: looking again at once lets a replay move on without waiting out
        the interval at every step. The wall clock never jumps, so this is a plain sleep there.
        """
        seen = self.runtime.clock.now()
        for _ in range(WATCH_SLICES):
            await asyncio.sleep(WATCH_INTERVAL_SECONDS / WATCH_SLICES)
            if self.runtime.clock.now() - seen > timedelta(seconds=WATCH_INTERVAL_SECONDS):
                return

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
                    # The letter, if any, is numbered as it is recorded: a warning draws no number.
                    events = dossier.on_alarm(
                        alarm.row, now=uow.now, calendar=self.calendar, agencies=self.catalog.agencies
                    )
                    await _record(uow, store.PostgresDossiers(uow.conn), dossier, events)
            self._count_deadline_events(events)
        return len(due)

    def _count_deadline_events(self, events: list[DossierEvent]) -> None:
        """Overdue steps, apologies and escalations, counted once their transaction committed."""
        for event in events:
            if isinstance(event, StepOverdue):
                self.overdue_steps.labels(event.agency).inc()
            elif isinstance(event, ApologyIssued | FaultApologyIssued):
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
        """An agency's answer (:func:`record_answer`) or report (:func:`record_report`), in the unit."""
        if isinstance(event.data, StepDelayReported | DocumentLossReported):
            events = await record_report(
                uow,
                store.PostgresDossiers(uow.conn),
                event.data,
                calendar=self.calendar,
                agencies=self.catalog.agencies,
            )
            self._count_deadline_events(events)
            return
        assert isinstance(event.data, StepCompleted)
        await record_answer(
            uow,
            store.PostgresDossiers(uow.conn),
            event.data,
            calendar=self.calendar,
            agencies=self.catalog.agencies,
        )


async def record_answer(
    work: Work,
    dossiers: store.Dossiers,
    answer: StepCompleted,
    *,
    calendar: WorkingDayCalendar,
    agencies: Mapping[str, AgencyInfo],
) -> None:
    """An agency finished its step: record it on the slip and hand the dossier on.

    Raises EventRejected (the record is dead-lettered) for a result off its action's contract,
    an unknown dossier or an answer the dossier cannot take. Needs nothing but its ports: a
    unit test runs it on fakes.
    """
    try:
        # The result is kept and passed on to later agencies: one that breaks its action's
        # contract is parked here, with the reason, rather than failing a reader downstream.
        parse_result(answer.action, answer.result, answer.outcome)
    except ResultRejected as exc:
        raise EventRejected(str(exc)) from exc
    dossier = await dossiers.load(answer.dossier_id, for_update=True)
    if dossier is None:
        raise EventRejected(f"no dossier {answer.dossier_id}")
    try:
        events = dossier.on_step_completed(answer, now=work.now, calendar=calendar, agencies=agencies)
    except TransitionRefused as exc:
        raise EventRejected(str(exc)) from exc
    await _record(work, dossiers, dossier, events)


async def record_report(
    work: Work,
    dossiers: store.Dossiers,
    report: StepDelayReported | DocumentLossReported,
    *,
    calendar: WorkingDayCalendar,
    agencies: Mapping[str, AgencyInfo],
) -> list[DossierEvent]:
    """An agency reported its step will be late, or that it lost documents: the letter goes out now.

    Raises EventRejected (dead letter, with the reason) for a report the dossier cannot take: a
    delay after the step was due, for a date within its time, or from an agency not holding it;
    a loss from an agency that had no step of the dossier.
    """
    dossier = await dossiers.load(report.dossier_id, for_update=True)
    if dossier is None:
        raise EventRejected(f"no dossier {report.dossier_id}")
    try:
        if isinstance(report, StepDelayReported):
            events = dossier.on_delay_reported(report, now=work.now, calendar=calendar, agencies=agencies)
        else:
            events = dossier.on_document_loss(report, now=work.now, agencies=agencies)
    except TransitionRefused as exc:
        raise EventRejected(str(exc)) from exc
    return await _record(work, dossiers, dossier, events)


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


async def _record(
    work: Work,
    dossiers: store.Dossiers,
    dossier: Dossier,
    events: list[DossierEvent],
    *,
    trace_context: dict[str, str] | None = None,
) -> list[DossierEvent]:
    """Save the dossier, and publish its events and its new state, all in this unit of work.

    Letters the domain wrote without a number (it does no I/O) are numbered here by the store;
    the events as published are returned.
    """
    state = dossier.progress(work.now)  # before saving: it moves the dossier's progressed_at
    await dossiers.save(dossier, trace_context=trace_context)
    published: list[DossierEvent] = []
    for event in [*events, state]:
        if isinstance(event, ApologyIssued | FaultApologyIssued) and not event.letter_number:
            event = event.model_copy(update={"letter_number": await dossiers.next_letter_number(work.now)})
        published.append(event)
        if isinstance(event, DossierHandedOver):
            await work.publish(event, topic=topics.handoffs(event.to_agency))
        elif isinstance(event, HandoffWithdrawn):
            await work.publish(event, topic=topics.handoffs(event.agency))
        elif isinstance(event, StepDueSoon):
            # The agency must hear it on its own topic; the desk's readers on theirs.
            await work.publish(event, topic=topics.handoffs(event.agency))
            await work.publish(event, topic=topics.desk_topic(StepDueSoon))
        else:
            await work.publish(event, topic=topics.desk_topic(type(event)))
    return published
