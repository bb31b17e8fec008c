"""A dossier as the one-stop desk sees it: its route, its status and its process-control slip.

Plain Python: no Kafka, no SQL. Every method takes the time and the calendar it needs and
returns the events to publish; the handler persists the dossier and the events together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from contracts.agencies import CITIZEN, ONE_STOP
from contracts.events import (
    Applicant,
    DossierEvent,
    DossierHandedOver,
    DossierReceived,
    DossierReturned,
    FeeLine,
    ReceivedDocument,
    StepCompleted,
)
from services.intake.domain.catalog import Procedure, Step
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


class SubmissionRefused(ValueError):
    """The desk cannot accept the dossier; ``problems`` lists every reason for the citizen."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class TransitionRefused(ValueError):
    """The dossier is not in a state where this can happen (e.g. paying twice)."""


@dataclass
class Handoff:
    """One row of the process-control slip (phiếu kiểm soát quá trình)."""

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

    def complete(
        self, *, received_at: datetime, completed_at: datetime, outcome: str, note: str = ""
    ) -> None:
        """Record that the receiving side took the dossier in and finished its step."""
        self.received_at = received_at
        self.completed_at = completed_at
        self.outcome = outcome
        self.note = note


@dataclass
class Dossier:
    """A dossier (hồ sơ) from receipt to return."""

    id: str
    procedure_code: str
    procedure_name: str
    level: str
    return_place: str
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
            route=procedure.steps,
            applicant=applicant,
            documents=documents,
            details=details,
            fees_vnd=procedure.fee_total(details),
            received_at=now,
            appointment_at=calendar.add_working_time(now, procedure.statutory_limit_days),
        )
        first = procedure.steps[0]
        receipt = Handoff(
            step_index=0,
            from_agency=CITIZEN,
            to_agency=ONE_STOP,
            action=first.action,
            budget_days=first.budget_days,
            counts=first.counts,
            sent_at=now,
            due_at=calendar.add_working_time(now, first.budget_days),
        )
        receipt.complete(received_at=now, completed_at=now, outcome="done")
        dossier.slip.append(receipt)
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
            )
        ]
        events += dossier._advance(now=now, calendar=calendar)
        return dossier, events

    def on_step_completed(
        self, event: StepCompleted, *, now: datetime, calendar: WorkingDayCalendar
    ) -> list[DossierEvent]:
        """An agency reports its step done (or the dossier refused): route on."""
        row = self.slip[-1]
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
        )
        self.results[event.action] = event.result
        if event.outcome == "rejected":
            return self._return_result(now=now, calendar=calendar, refused_by=event.agency, reason=event.note)
        return self._advance(now=now, calendar=calendar)

    def record_payment(self, *, now: datetime, calendar: WorkingDayCalendar) -> list[DossierEvent]:
        """The citizen paid the tax notice; the desk takes the proof and routes on."""
        if self.status is not DossierStatus.AWAITING_PAYMENT:
            raise TransitionRefused(f"dossier {self.id} is {self.status}, not awaiting payment")
        self.slip[-1].complete(received_at=now, completed_at=now, outcome="done")
        return self._advance(now=now, calendar=calendar)

    @property
    def on_time(self) -> bool:
        """Whether the result was (or, while open, can still be) returned by the appointment."""
        return self.returned_at is None or self.returned_at <= self.appointment_at

    def _advance(self, *, now: datetime, calendar: WorkingDayCalendar) -> list[DossierEvent]:
        """Hand the dossier to the next step; the desk's own steps are done on the spot."""
        while True:
            self.current_step += 1
            step = self.route[self.current_step]
            if step.action == "return_result":
                return self._return_result(now=now, calendar=calendar)
            row = self._hand_to(step, now=now, calendar=calendar)
            if step.agency == ONE_STOP:
                row.complete(received_at=now, completed_at=now, outcome="done")
                continue
            if step.agency == CITIZEN:
                self.status = DossierStatus.AWAITING_PAYMENT
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
                )
            ]

    def _hand_to(self, step: Step, *, now: datetime, calendar: WorkingDayCalendar) -> Handoff:
        row = Handoff(
            step_index=self.current_step,
            from_agency=self.slip[-1].to_agency,
            to_agency=step.agency,
            action=step.action,
            budget_days=step.budget_days,
            counts=step.counts,
            sent_at=now,
            # Time the citizen takes to pay is not counted, so it has no due time.
            due_at=calendar.add_working_time(now, step.budget_days) if step.counts else None,
        )
        self.slip.append(row)
        return row

    def _return_result(
        self,
        *,
        now: datetime,
        calendar: WorkingDayCalendar,
        refused_by: str | None = None,
        reason: str = "",
    ) -> list[DossierEvent]:
        self.current_step = len(self.route) - 1
        row = self._hand_to(self.route[-1], now=now, calendar=calendar)
        row.complete(received_at=now, completed_at=now, outcome="done")
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
            )
        ]
