"""A dossier as the one-stop desk sees it: its route, its clock and its process-control slip.

Plain Python: no Kafka, no SQL. Every method takes the time and the calendar it needs and
returns the events to publish; the handler persists the dossier and the events together.

The clock rules (DESIGN §2):
- time limits count working days (the calendar knows holidays and office hours);
- the clock stops while the citizen supplements an incomplete dossier and restarts *in full*
  from the complete supplement; it stops while the citizen pays, and resumes where it was;
- every pause and resume recomputes the appointment (due dates of later steps are set when
  each step starts, so they follow by construction).

The apology rule: a step that overruns makes the dossier late (the budgets of a route add up
to the statutory limit, so there is no slack). The agency at fault apologises at once, which
is at least one working day before the promised date whenever the steps after it need one
working day or more, and gives a new date: the old one plus that step's budget. A dossier is
rescheduled once; a second overrun escalates to supervisors instead. Time the citizen takes
never counts, so it can trigger neither.

A step longer than a working day is looked at once more when its last working day begins: the
agency and the desk are warned (``StepDueSoon``), while a delay can still be reported in time.

Faults in handling (:mod:`services.intake.domain.faults`) owe their own letter, one per fault
and agency, and reschedule nothing. A withdrawn or refused dossier takes its handoff back from
the agency holding it; that agency's late answer is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Literal

from contracts.agencies import CITIZEN, ONE_STOP
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
    FeeLine,
    HandoffWithdrawn,
    PaymentReceived,
    ReceivedDocument,
    SatisfactionScores,
    SlipRow,
    StepCompleted,
    StepDelayReported,
    StepDueSoon,
    StepOverdue,
    SupplementReceived,
    SupplementRequested,
)
from contracts.results import RESULTS, AssessmentResult, SupplementNeeded, parse_result
from services.intake.domain.catalog import AgencyInfo, Procedure, Step
from services.intake.domain.faults import DESK_RECORDED, FAULT_RULES, fault_key
from services.runtime.working_days import WorkingDayCalendar


class DossierStatus(StrEnum):
    """Statuses as provincial one-stop systems show them."""

    RECEIVED = "received"
    PROCESSING = "processing"
    AWAITING_SUPPLEMENT = "awaiting_supplement"
    AWAITING_PAYMENT = "awaiting_payment"
    DONE = "done"
    RETURNED = "returned"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


OPEN_STATUSES = frozenset(
    {DossierStatus.PROCESSING, DossierStatus.AWAITING_SUPPLEMENT, DossierStatus.AWAITING_PAYMENT}
)
"""Statuses in which the dossier can still be withdrawn or refused."""
WITHDRAWN_OUTCOME = "withdrawn"
"""A slip row's outcome when the desk took the handoff back (supplement, withdrawal, refusal)."""


class SubmissionRefused(ValueError):
    """The desk cannot accept the dossier; ``problems`` lists every reason for the citizen."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class PaymentRefused(ValueError):
    """A payment confirmation that does not match the tax notice (number or amount)."""


class FaultRefused(ValueError):
    """What the desk recorded as a fault is none by the procedure (e.g. the paper is listed)."""


class TransitionRefused(ValueError):
    """The dossier is not in a state where this can happen (e.g. paying twice)."""


@dataclass
class Handoff:
    """One row of the process-control slip (phiếu kiểm soát quá trình)."""

    row: int
    step_index: int
    from_agency: str
    to_agency: str
    action: str
    budget_days: Decimal
    counts: bool
    sent_at: datetime
    due_at: datetime | None
    received_at: datetime | None = None
    completed_at: datetime | None = None
    outcome: str | None = None
    note: str = ""
    late_by_days: Decimal = Decimal(0)
    alarm_at: datetime | None = None
    """When the deadline watcher must next look at this row (None: nothing to watch)."""
    overdue_at: datetime | None = None
    warned_at: datetime | None = None
    """When the agency and the desk were told the step entered its last working day."""

    def complete(
        self,
        *,
        received_at: datetime,
        completed_at: datetime,
        outcome: str,
        calendar: WorkingDayCalendar,
        note: str = "",
    ) -> None:
        """Record that the receiving side took the dossier in and finished its step."""
        self.received_at = received_at
        self.completed_at = completed_at
        self.outcome = outcome
        self.note = note
        self.alarm_at = None
        self.late_by_days = self.lateness(completed_at, calendar)

    def lateness(self, at: datetime, calendar: WorkingDayCalendar) -> Decimal:
        """Working days past the due time at ``at`` (0 when on time or not timed)."""
        if self.due_at is None or at <= self.due_at:
            return Decimal(0)
        return calendar.working_time_between(self.due_at, at).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass
class Dossier:
    """A dossier (hồ sơ) from receipt to return."""

    id: str
    procedure_code: str
    procedure_name: str
    level: str
    return_place: str
    statutory_limit_days: Decimal
    route: tuple[Step, ...]
    applicant: Applicant
    documents: list[str]
    details: dict[str, Any]
    fees_vnd: int
    received_at: datetime
    appointment_at: datetime
    status: DossierStatus = DossierStatus.RECEIVED
    current_step: int = 0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    slip: list[Handoff] = field(default_factory=list)
    returned_at: datetime | None = None
    paused_at: datetime | None = None
    """When the clock stopped (payment or supplement); None while it runs."""
    original_appointment_at: datetime | None = None
    """The first promised date, once the dossier was rescheduled."""
    apologised_at: datetime | None = None
    lookup_code: str = ""
    """Printed on the receipt: with the dossier's id, it opens the public status look-up."""
    progressed_at: datetime | None = None
    """The time of the last state published (:meth:`progress`); the next is never earlier."""
    rated_at: datetime | None = None
    """When the citizen rated the service (once, after the result)."""
    faults: list[str] = field(default_factory=list)
    """Faults already apologised for (:func:`fault_key`): the same fault owes no second letter."""

    @classmethod
    def receive(
        cls,
        *,
        dossier_id: str,
        procedure: Procedure | None,
        procedure_code: str,
        applicant: Applicant,
        documents: list[str],
        details: dict[str, Any],
        now: datetime,
        calendar: WorkingDayCalendar,
        lookup_code: str = "",
    ) -> tuple[Dossier, list[DossierEvent]]:
        """Check the dossier at the desk, issue the receipt and send it on its route."""
        if procedure is None:
            raise SubmissionRefused([f"unknown procedure {procedure_code!r}; see GET /procedures"])
        problems = [f"missing required document {code}" for code in procedure.missing_documents(documents)]
        problems += procedure.details_errors(details)
        if problems:
            raise SubmissionRefused(problems)
        dossier = cls(
            id=dossier_id,
            procedure_code=procedure.code,
            procedure_name=procedure.name,
            level=procedure.level,
            return_place=procedure.return_place,
            statutory_limit_days=procedure.statutory_limit_days,
            route=procedure.steps,
            applicant=applicant,
            documents=documents,
            details=details,
            fees_vnd=procedure.fee_total(details),
            received_at=now,
            appointment_at=calendar.add_working_time(now, procedure.statutory_limit_days),
            lookup_code=lookup_code,
        )
        first = procedure.steps[0]
        receipt = dossier._open_row(first, from_agency=CITIZEN, now=now, calendar=calendar)
        receipt.complete(received_at=now, completed_at=now, outcome="done", calendar=calendar)
        events: list[DossierEvent] = [
            DossierReceived(
                dossier_id=dossier.id,
                procedure_code=procedure.code,
                procedure_name=procedure.name,
                level=procedure.level,
                applicant=applicant,
                documents=[ReceivedDocument(code=c, name=procedure.document_name(c)) for c in documents],
                received_at=now,
                appointment_at=dossier.appointment_at,
                statutory_limit_days=procedure.statutory_limit_days,
                fees=[FeeLine(name=name, amount_vnd=amount) for name, amount in procedure.fee_lines(details)],
                return_place=procedure.return_place,
                details=details,
                lookup_code=lookup_code or None,
            )
        ]
        events += dossier._advance(now=now, calendar=calendar)
        return dossier, events

    # --- what happens to a dossier -------------------------------------------------------

    def on_step_completed(
        self,
        event: StepCompleted,
        *,
        now: datetime,
        calendar: WorkingDayCalendar,
        agencies: Mapping[str, AgencyInfo],
    ) -> list[DossierEvent]:
        """An agency reports its step done, the dossier refused, or a supplement needed."""
        row = self.slip[-1]
        if event.handoff_row is not None and event.handoff_row != row.row:
            # The answer to a handoff that was since withdrawn (a supplement was requested
            # meanwhile): the step will be redone from the new handoff, so this one is moot.
            return []
        if row.outcome == WITHDRAWN_OUTCOME or self.status is DossierStatus.WITHDRAWN:
            return []  # the dossier was withdrawn or refused while the agency worked: moot too
        if (
            self.status is not DossierStatus.PROCESSING
            or event.step_index != self.current_step
            or event.agency != row.to_agency
        ):
            raise TransitionRefused(
                f"dossier {self.id} is {self.status} at step {self.current_step}"
                f" ({row.to_agency}); {event.agency} reported step {event.step_index}"
            )
        row.complete(
            received_at=event.received_at,
            completed_at=event.completed_at,
            outcome=event.outcome,
            note=event.note,
            calendar=calendar,
        )
        if event.outcome == "needs_supplement":
            asked = parse_result(event.action, event.result, event.outcome)
            missing = asked.missing_documents if isinstance(asked, SupplementNeeded) else []
            self.current_step -= 1  # the agency redoes its step after the supplement
            return self._ask_for_supplement(
                agency=event.agency, missing=missing, reason=event.note, now=now, agencies=agencies
            )
        self.results[event.action] = event.result
        if event.outcome == "rejected":
            return self._return_result(now=now, calendar=calendar, refused_by=event.agency, reason=event.note)
        return self._advance(now=now, calendar=calendar)

    def on_delay_reported(
        self,
        event: StepDelayReported,
        *,
        now: datetime,
        calendar: WorkingDayCalendar,
        agencies: Mapping[str, AgencyInfo],
    ) -> list[DossierEvent]:
        """An agency says, before its step is due, that it will be late: apologise now, watch the new date.

        The new appointment moves by the working time the agency expects to overrun; the step's
        alarm moves to the reported date (its due time stays, so the step still counts late).
        A dossier already rescheduled gets no second letter: supervisors hear instead.
        """
        row = self.slip[-1]
        if event.handoff_row is not None and event.handoff_row != row.row:
            return []  # about a handoff since taken back (a supplement was requested): moot
        if row.outcome == WITHDRAWN_OUTCOME or self.status is DossierStatus.WITHDRAWN:
            return []
        if self.status is not DossierStatus.PROCESSING or event.agency != row.to_agency or row.due_at is None:
            raise TransitionRefused(
                f"dossier {self.id} is {self.status} at {row.to_agency}; {event.agency} cannot report a delay"
            )
        if now >= row.due_at:
            raise TransitionRefused(
                f"the step was due at {row.due_at.isoformat()}: too late to report a delay"
            )
        if event.expected_at <= row.due_at:
            raise TransitionRefused(f"{event.expected_at.isoformat()} is within the step's time: no delay")
        row.alarm_at = event.expected_at
        if self.apologised_at is not None:
            return [
                DossierEscalated(
                    dossier_id=self.id,
                    agency=row.to_agency,
                    step_index=row.step_index,
                    action=row.action,
                    reason=f"hồ sơ đã được hẹn lại một lần; {row.to_agency} báo trễ hạn: {event.reason}",
                    appointment_at=self.appointment_at,
                    detected_at=now,
                )
            ]
        overrun = calendar.working_time_between(row.due_at, event.expected_at)
        return [
            self._apologise(
                row,
                now=now,
                calendar=calendar,
                agencies=agencies,
                number="",
                overrun=overrun,
                reason=event.reason,
            )
        ]

    def on_document_loss(
        self, event: DocumentLossReported, *, now: datetime, agencies: Mapping[str, AgencyInfo]
    ) -> list[DossierEvent]:
        """An agency lost or damaged documents of the dossier: its fault letter, once per loss."""
        names = ", ".join(event.documents)
        what = "hư hỏng" if event.damaged else "mất, thất lạc"
        return self.record_fault(
            "document_lost",
            event.agency,
            detail=f"{what}: {names}; {event.reason}",
            subject=",".join(sorted(event.documents)),
            now=now,
            agencies=agencies,
        )

    def record_fault(
        self,
        kind: FaultKind,
        agency: str,
        *,
        detail: str,
        subject: str,
        now: datetime,
        agencies: Mapping[str, AgencyInfo],
    ) -> list[DossierEvent]:
        """A fault found in an agency's handling: its letter, or none if it was apologised for.

        Only an agency that had a step of the dossier can be at fault; a result can only be
        corrected once it was returned, by an agency that worked on it.
        """
        if kind not in DESK_RECORDED:
            raise TransitionRefused(f"{kind} is detected by the desk itself, not recorded")
        if agency not in {h.to_agency for h in self.slip} - {CITIZEN}:
            raise TransitionRefused(f"{agency} had no step of dossier {self.id}")
        if kind == "result_corrected" and self.status is not DossierStatus.RETURNED:
            raise TransitionRefused(f"dossier {self.id} is {self.status}: no result was issued to correct")
        return self._fault(kind, agency, detail=detail, subject=subject, now=now, agencies=agencies)

    def request_supplement(
        self, *, missing: list[str], reason: str, now: datetime, agencies: Mapping[str, AgencyInfo]
    ) -> list[DossierEvent]:
        """The desk finds the dossier incomplete after receipt (e.g. on closer reading)."""
        if self.status is not DossierStatus.PROCESSING:
            raise TransitionRefused(f"dossier {self.id} is {self.status}; only a dossier in progress can")
        row = self.slip[-1]
        # The agency's handoff is withdrawn (its answer, if it comes, is ignored) and the clock
        # stops; the step is redone after the supplement, by the same agency, with a fresh budget.
        self._take_back(row, note=f"tạm dừng: chờ bổ sung ({reason})", now=now)
        self.current_step -= 1
        return self._ask_for_supplement(
            agency=ONE_STOP, missing=missing, reason=reason, now=now, agencies=agencies
        )

    def supplement(
        self,
        *,
        documents: list[str],
        details: dict[str, Any] | None,
        now: datetime,
        calendar: WorkingDayCalendar,
    ) -> list[DossierEvent]:
        """The complete supplement arrived: the limit restarts in full and the step is redone."""
        if self.status is not DossierStatus.AWAITING_SUPPLEMENT:
            raise TransitionRefused(f"dossier {self.id} is {self.status}, not awaiting a supplement")
        self.documents = sorted(set(self.documents) | set(documents))
        if details is not None:
            self.details = details
        self.slip[-1].complete(received_at=now, completed_at=now, outcome="done", calendar=calendar)
        self.paused_at = None
        self.appointment_at = calendar.add_working_time(now, self.statutory_limit_days)
        received = SupplementReceived(
            dossier_id=self.id, documents=documents, details=details, received_at=now
        )
        return [received, *self._advance(now=now, calendar=calendar)]

    def record_payment(
        self, *, notice_number: str, amount_vnd: int, now: datetime, calendar: WorkingDayCalendar
    ) -> list[DossierEvent]:
        """The treasury confirms the tax notice paid; the desk checks it against the notice and routes on."""
        if self.status is not DossierStatus.AWAITING_PAYMENT:
            raise TransitionRefused(f"dossier {self.id} is {self.status}, not awaiting payment")
        notices = {notice.notice_number: notice.total_vnd for notice in self.tax_notices()}
        if notice_number not in notices:
            raise PaymentRefused(f"notice {notice_number!r} was not issued for dossier {self.id}")
        if amount_vnd != notices[notice_number]:
            raise PaymentRefused(
                f"notice {notice_number} is for {notices[notice_number]} VND, not {amount_vnd} VND"
            )
        self.slip[-1].complete(received_at=now, completed_at=now, outcome="done", calendar=calendar)
        self._resume_clock(now=now, calendar=calendar)
        return [
            PaymentReceived(dossier_id=self.id, received_at=now),
            *self._advance(now=now, calendar=calendar),
        ]

    def withdraw(
        self, *, reason: str, requested_by: Literal["citizen", "desk"], now: datetime
    ) -> list[DossierEvent]:
        """The citizen withdraws the dossier (rút hồ sơ): work on it stops, a receipt is sent."""
        if self.status not in OPEN_STATUSES:
            raise TransitionRefused(f"dossier {self.id} is {self.status}; only an open one can be withdrawn")
        events = self._stop(reason=f"rút hồ sơ: {reason}", now=now)
        self.status = DossierStatus.WITHDRAWN
        return [
            *events,
            DossierWithdrawn(
                dossier_id=self.id,
                applicant=self.applicant,
                procedure_name=self.procedure_name,
                received_at=self.received_at,
                withdrawn_at=now,
                reason=reason,
                requested_by=requested_by,
            ),
        ]

    def refuse(self, *, reason: str, now: datetime, calendar: WorkingDayCalendar) -> list[DossierEvent]:
        """The desk refuses to settle the dossier (từ chối giải quyết); the citizen gets the reason."""
        if self.status not in OPEN_STATUSES:
            raise TransitionRefused(f"dossier {self.id} is {self.status}; only an open one can be refused")
        events = self._stop(reason=f"từ chối giải quyết: {reason}", now=now)
        return [*events, *self._return_result(now=now, calendar=calendar, refused_by=ONE_STOP, reason=reason)]

    def _stop(self, *, reason: str, now: datetime) -> list[DossierEvent]:
        """Close the open row; an agency holding the dossier is told to stop (its answer is moot)."""
        self.paused_at = None
        row = self.slip[-1]
        if row.completed_at is not None:
            return []
        self._take_back(row, note=reason, now=now)
        if row.to_agency in (ONE_STOP, CITIZEN):
            return []
        return [
            HandoffWithdrawn(
                dossier_id=self.id,
                step_index=row.step_index,
                agency=row.to_agency,
                handoff_row=row.row,
                reason=reason,
                withdrawn_at=now,
            )
        ]

    @staticmethod
    def _take_back(row: Handoff, *, note: str, now: datetime) -> None:
        row.received_at = row.received_at or now
        row.completed_at = now
        row.outcome = WITHDRAWN_OUTCOME
        row.note = note
        row.alarm_at = None

    def rate(self, scores: SatisfactionScores, *, now: datetime) -> list[DossierEvent]:
        """The citizen rates the service once the result (or the refusal) is returned; once."""
        if self.status not in (DossierStatus.RETURNED, DossierStatus.REJECTED):
            raise TransitionRefused(f"dossier {self.id} is {self.status}: it is rated after its result")
        if self.rated_at is not None:
            raise TransitionRefused(f"dossier {self.id} was rated on {self.rated_at.isoformat()}")
        self.rated_at = now
        agencies = dict.fromkeys(h.to_agency for h in self.slip if h.to_agency != CITIZEN)
        return [
            DossierRated(
                dossier_id=self.id,
                procedure_code=self.procedure_code,
                agencies=list(agencies),
                scores=scores,
                rated_at=now,
            )
        ]

    def tax_notices(self) -> list[AssessmentResult]:
        """The payment notices issued for this dossier, read from the assessment results' contract."""
        # Whichever action produced it: the contract, not the action's name, says it is a notice.
        return [
            notice
            for action, data in self.results.items()
            if RESULTS.get(action) is AssessmentResult
            and isinstance(notice := parse_result(action, data), AssessmentResult)
        ]

    def on_alarm(
        self,
        row_index: int,
        *,
        now: datetime,
        calendar: WorkingDayCalendar,
        agencies: Mapping[str, AgencyInfo],
        letter_number: str = "",
    ) -> list[DossierEvent]:
        """The step entered its last working day (a warning), or its deadline passed (overdue, apology)."""
        row = self.slip[row_index]
        if row.completed_at is not None or row.alarm_at is None or now < row.alarm_at:
            return []  # finished, paused or re-timed since the alarm was set: nothing to do
        assert row.due_at is not None
        if now < row.due_at:
            # The step's last working day began: the agency can still report a delay in time.
            row.warned_at = now
            row.alarm_at = row.due_at
            return [
                StepDueSoon(
                    dossier_id=self.id,
                    step_index=row.step_index,
                    agency=row.to_agency,
                    action=row.action,
                    handoff_row=row.row,
                    budget_days=row.budget_days,
                    due_at=row.due_at,
                    warned_at=now,
                    appointment_at=self.appointment_at,
                )
            ]
        first_time = row.overdue_at is None
        row.overdue_at = row.overdue_at or now
        events: list[DossierEvent] = []
        if first_time:
            events.append(
                StepOverdue(
                    dossier_id=self.id,
                    step_index=row.step_index,
                    agency=row.to_agency,
                    action=row.action,
                    budget_days=row.budget_days,
                    due_at=row.due_at,
                    detected_at=now,
                    appointment_at=self.appointment_at,
                )
            )
        if self.apologised_at is None:
            events.append(
                self._apologise(row, now=now, calendar=calendar, agencies=agencies, number=letter_number)
            )
            # The agency's second allowance: if the step is still open then, supervisors hear.
            row.alarm_at = calendar.add_working_time(row.due_at, row.budget_days)
            return events
        row.alarm_at = None
        events.append(
            DossierEscalated(
                dossier_id=self.id,
                agency=row.to_agency,
                step_index=row.step_index,
                action=row.action,
                reason="hồ sơ đã được hẹn lại một lần nhưng tiếp tục trễ hạn"
                f" ({row.action}, hạn {row.due_at.isoformat()})",
                appointment_at=self.appointment_at,
                detected_at=now,
            )
        )
        return events

    def progress(self, now: datetime) -> DossierProgressed:
        """The dossier's state as an event, for read models, stamped no earlier than the last.

        Read models keep the newest ``updated_at``. A unit of work takes its time when it
        starts, and may then wait for the dossier's lock while another one commits a later
        time: stamped with its own, the newer state would look older and be dropped (``make
        chaos`` saw a returned dossier left "processing" on the console).
        """
        if self.progressed_at is not None and self.progressed_at > now:
            now = self.progressed_at
        self.progressed_at = now
        return DossierProgressed(
            dossier_id=self.id,
            procedure_code=self.procedure_code,
            procedure_name=self.procedure_name,
            level="ward" if self.level == "ward" else "city",
            status=self.status.value,
            received_at=self.received_at,
            appointment_at=self.appointment_at,
            original_appointment_at=self.original_appointment_at,
            clock_paused_since=self.paused_at,
            returned_at=self.returned_at,
            on_time=self.on_time,
            slip=[
                SlipRow(
                    row=h.row,
                    step_index=h.step_index,
                    from_agency=h.from_agency,
                    to_agency=h.to_agency,
                    action=h.action,
                    budget_days=h.budget_days,
                    sent_at=h.sent_at,
                    due_at=h.due_at,
                    received_at=h.received_at,
                    completed_at=h.completed_at,
                    outcome=h.outcome,
                    late_by_days=h.late_by_days,
                    overdue_at=h.overdue_at,
                    note=h.note,
                )
                for h in self.slip
            ],
            updated_at=now,
        )

    @property
    def on_time(self) -> bool:
        """Whether the result was (or can still be) returned by the first promised date."""
        promised = self.original_appointment_at or self.appointment_at
        return self.returned_at is None or self.returned_at <= promised

    # --- the route ---------------------------------------------------------------------------

    def _advance(self, *, now: datetime, calendar: WorkingDayCalendar) -> list[DossierEvent]:
        """Hand the dossier to the next step; the desk's own steps are done on the spot."""
        while True:
            self.current_step += 1
            step = self.route[self.current_step]
            if step.action == "return_result":
                return self._return_result(now=now, calendar=calendar)
            row = self._open_row(step, from_agency=self.slip[-1].to_agency, now=now, calendar=calendar)
            if step.agency == ONE_STOP:
                row.complete(received_at=now, completed_at=now, outcome="done", calendar=calendar)
                continue
            if step.agency == CITIZEN:
                self.status = DossierStatus.AWAITING_PAYMENT
                self.paused_at = now
                return []
            self.status = DossierStatus.PROCESSING
            assert row.due_at is not None  # counted steps always have a due time
            return [
                DossierHandedOver(
                    dossier_id=self.id,
                    procedure_code=self.procedure_code,
                    step_index=self.current_step,
                    from_agency=row.from_agency,
                    to_agency=step.agency,
                    action=step.action,
                    budget_days=step.budget_days,
                    sent_at=now,
                    due_at=row.due_at,
                    applicant=self.applicant,
                    details=self.details,
                    results=self.results,
                    handoff_row=row.row,
                    mode=step.mode,
                )
            ]

    def _open_row(
        self, step: Step, *, from_agency: str, now: datetime, calendar: WorkingDayCalendar
    ) -> Handoff:
        # Time the citizen takes (paying) is not counted, so it has no due time and no alarm.
        due = calendar.add_working_time(now, step.budget_days) if step.counts else None
        alarm: datetime | None = None
        if step.watched:
            # A step longer than a working day is first looked at when its last day begins.
            alarm = calendar.add_working_time(now, step.first_alarm_days)
        row = Handoff(
            row=len(self.slip),
            step_index=self.current_step,
            from_agency=from_agency,
            to_agency=step.agency,
            action=step.action,
            budget_days=step.budget_days,
            counts=step.counts,
            sent_at=now,
            due_at=due,
            alarm_at=alarm,
        )
        self.slip.append(row)
        return row

    def _resume_clock(self, *, now: datetime, calendar: WorkingDayCalendar) -> None:
        """Restart a paused clock: the working time left before the pause is left again now."""
        if self.paused_at is None:
            return
        left = calendar.working_time_between(self.paused_at, self.appointment_at)
        self.appointment_at = calendar.add_working_time(now, max(left, Decimal(0)))
        self.paused_at = None

    def _ask_for_supplement(
        self,
        *,
        agency: str,
        missing: list[str],
        reason: str,
        now: datetime,
        agencies: Mapping[str, AgencyInfo],
    ) -> list[DossierEvent]:
        self.status = DossierStatus.AWAITING_SUPPLEMENT
        self.paused_at = now
        asked_before = sum(1 for h in self.slip if h.to_agency == CITIZEN and h.action == "supplement")
        wait = Handoff(
            row=len(self.slip),
            step_index=self.current_step,
            from_agency=agency,
            to_agency=CITIZEN,
            action="supplement",
            budget_days=Decimal(0),
            counts=False,
            sent_at=now,
            due_at=None,
        )
        self.slip.append(wait)
        events: list[DossierEvent] = [
            SupplementRequested(
                dossier_id=self.id,
                requested_by_agency=agency,
                requested_by_name=_agency(agencies, agency).name,
                applicant=self.applicant,
                procedure_name=self.procedure_name,
                missing_documents=missing,
                reason=reason,
                requested_at=now,
            )
        ]
        if asked_before:
            detail = f"lần {asked_before + 1}: {', '.join(missing) or reason}"
            events += self._fault(
                "repeat_supplement_request", agency, detail=detail, now=now, agencies=agencies
            )
        return events

    def _fault(
        self,
        kind: FaultKind,
        agency: str,
        *,
        detail: str,
        now: datetime,
        agencies: Mapping[str, AgencyInfo],
        subject: str = "",
    ) -> list[DossierEvent]:
        """The letter a fault owes, or none if this agency already apologised for this fault.

        The letter's number is left empty: the desk numbers letters as it records them.
        """
        key = fault_key(kind, agency, subject)
        if key in self.faults:
            return []
        self.faults.append(key)
        info = _agency(agencies, agency)
        rule = FAULT_RULES[kind]
        return [
            FaultApologyIssued(
                dossier_id=self.id,
                letter_number="",
                fault=kind,
                issued_by_agency=agency,
                issuer_name=info.name,
                signatory_title=info.head_title,
                applicant=self.applicant,
                procedure_name=self.procedure_name,
                received_at=self.received_at,
                appointment_at=self.appointment_at,
                reason=rule.reason.format(agency=info.name, detail=detail),
                authority=rule.authority,
                issued_at=now,
            )
        ]

    def _apologise(
        self,
        row: Handoff,
        *,
        now: datetime,
        calendar: WorkingDayCalendar,
        agencies: Mapping[str, AgencyInfo],
        number: str,
        overrun: Decimal | None = None,
        reason: str | None = None,
    ) -> ApologyIssued:
        """The late agency's letter and the new date.

        By default (an overrun the alarm found) the new date gives the agency its step's budget
        once more; a delay it reported gives the time it asked for.
        """
        original = self.appointment_at
        new = calendar.add_working_time(original, row.budget_days if overrun is None else overrun)
        self.original_appointment_at = original
        self.appointment_at = new
        self.apologised_at = now
        agency = _agency(agencies, row.to_agency)
        return ApologyIssued(
            dossier_id=self.id,
            letter_number=number,
            issued_by_agency=row.to_agency,
            issuer_name=agency.name,
            signatory_title=agency.head_title,
            applicant=self.applicant,
            procedure_name=self.procedure_name,
            received_at=self.received_at,
            original_appointment_at=original,
            new_appointment_at=new,
            reason=reason
            or f"{agency.name} chưa hoàn thành bước {row.action} trong thời hạn"
            f" {row.budget_days.normalize()} ngày làm việc",
            issued_at=now,
            working_days_notice=max(calendar.working_time_between(now, original), Decimal(0)).quantize(
                Decimal("0.01"), ROUND_HALF_UP
            ),
        )

    def _return_result(
        self,
        *,
        now: datetime,
        calendar: WorkingDayCalendar,
        refused_by: str | None = None,
        reason: str = "",
    ) -> list[DossierEvent]:
        self.current_step = len(self.route) - 1
        row = self._open_row(self.route[-1], from_agency=self.slip[-1].to_agency, now=now, calendar=calendar)
        row.complete(received_at=now, completed_at=now, outcome="done", calendar=calendar)
        self.returned_at = now
        if refused_by is None:
            self.status = DossierStatus.RETURNED
            summary = "Hồ sơ đã giải quyết xong; mời ông/bà nhận kết quả."
        else:
            self.status = DossierStatus.REJECTED
            summary = f"Hồ sơ bị từ chối ({refused_by}): {reason}"
        return [
            DossierReturned(
                dossier_id=self.id,
                procedure_code=self.procedure_code,
                procedure_name=self.procedure_name,
                applicant=self.applicant,
                outcome="approved" if refused_by is None else "rejected",
                returned_at=now,
                appointment_at=self.appointment_at,
                on_time=self.on_time,
                summary=summary,
                result={k: v for result in self.results.values() for k, v in result.items()},
                refused_by=refused_by,
            )
        ]


def _agency(agencies: Mapping[str, AgencyInfo], agency: str) -> AgencyInfo:
    """How an agency is named and who signs for it; a catalog without it gets a generic signatory."""
    return agencies.get(agency, AgencyInfo(name=agency, head_title="Thủ trưởng cơ quan"))
