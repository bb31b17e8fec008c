"""Every event the services exchange, one pydantic model per event version.

Events are facts, so they are named in the past tense and frozen. Each class carries its
CloudEvents type name (``TYPE``), which ends in the major version: a breaking change is a new
class with a new type name, never an edit of an old one.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.agencies import Agency
from contracts.compatibility import CompatibilityMode


class Contract(BaseModel):
    """Base of every payload: frozen, and strict about unknown fields so typos surface."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Applicant(Contract):
    """The citizen (or organisation) who filed the dossier and receives every notice."""

    full_name: str = Field(min_length=1, max_length=200, examples=["Nguyễn Văn An"])
    id_number: str = Field(
        pattern=r"^[0-9]{9}([0-9]{3})?$",
        description="Citizen identity card number (12 digits) or old ID (9 digits).",
        examples=["079088001234"],
    )
    phone: str = Field(pattern=r"^\+?[0-9]{9,12}$", examples=["0912345678"])
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", examples=["an.nguyen@example.vn"])


class DossierEvent(Contract):
    """Common shape: every event is about one dossier, whose id is the Kafka record key."""

    TYPE: ClassVar[str]
    """CloudEvents ``type``: reverse-DNS name ending in the major version."""
    COMPATIBILITY: ClassVar[CompatibilityMode] = CompatibilityMode.BACKWARD_TRANSITIVE
    """How revisions of this version may change (checked by ``make contracts-check``)."""

    dossier_id: str = Field(min_length=1, max_length=64, examples=["HS-2026-000123"])


class DossierReceivedV1(DossierEvent):
    """The one-stop desk accepted a complete dossier (v1, superseded by v2).

    Kept so that records written before v2 stay readable; readers upcast it to v2
    (:func:`contracts.upcasting.upcast`). Writers emit v2 only.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.received.v1"

    procedure_code: str
    procedure_name: str
    level: Literal["city", "ward"]
    applicant: Applicant
    documents: list[str]
    received_at: datetime
    appointment_at: datetime = Field(description="When the result is promised (receipt slip).")
    statutory_limit_days: Decimal
    fees_vnd: int = Field(ge=0)
    return_place: str


class ReceivedDocument(Contract):
    """One document handed in, as the receipt slip lists it."""

    code: str = Field(examples=["TRANSFER_CONTRACT"])
    name: str = Field(examples=["Hợp đồng chuyển nhượng quyền sử dụng đất"])


class FeeLine(Contract):
    """One fee charged at receipt."""

    name: str
    amount_vnd: int = Field(ge=0)


class DossierReceived(DossierEvent):
    """The one-stop desk accepted a complete dossier and issued the receipt slip.

    v2 breaks v1 on purpose: the receipt form lists each document by name and each fee on its
    own line, which v1's ``documents: list[code]`` and ``fees_vnd: int`` could not carry.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.received.v2"

    procedure_code: str
    procedure_name: str
    level: Literal["city", "ward"]
    applicant: Applicant
    documents: list[ReceivedDocument]
    received_at: datetime
    appointment_at: datetime = Field(description="When the result is promised (receipt slip).")
    statutory_limit_days: Decimal
    fees: list[FeeLine]
    return_place: str
    details: dict[str, Any] | None = Field(
        default=None,
        description="The procedure-specific details as filed (see the procedure's details_schema);"
        " with the applicant and documents, everything needed to file the dossier again (replay).",
    )
    lookup_code: str | None = Field(
        default=None,
        description="Printed on the receipt; with the dossier's id it opens the public status look-up"
        " (GET /dossiers/{id}/status). Only on intake.citizens, like the applicant.",
    )

    @property
    def fees_total_vnd(self) -> int:
        """Everything charged at receipt."""
        return sum(fee.amount_vnd for fee in self.fees)


class DossierHandedOver(DossierEvent):
    """The dossier was handed to an agency for one step of its route (one slip row).

    Carries what the receiving agency needs to do its step: the procedure details and the
    results of earlier steps, so no agency has to read another agency's database.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.handed_over.v1"

    procedure_code: str
    step_index: int = Field(ge=0)
    from_agency: Agency
    to_agency: Agency
    action: str
    budget_days: Decimal = Field(ge=0, description="Working days the step may take.")
    sent_at: datetime
    due_at: datetime
    applicant: Applicant
    details: dict[str, Any]
    results: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Outputs of earlier steps, keyed by action."
    )
    handoff_row: int | None = Field(
        default=None, ge=0, description="Row of the process-control slip; answers quote it back."
    )
    mode: Literal["manual", "automatic"] = Field(
        default="automatic",
        description="Who decides the step, as the catalog says: an officer (manual) or the agency's rule.",
    )


class StepCompleted(DossierEvent):
    """An agency finished its step; the one-stop desk routes the dossier on from here."""

    TYPE: ClassVar[str] = "vn.gov.dossier.step_completed.v1"

    step_index: int = Field(ge=0)
    agency: Agency
    action: str
    outcome: Literal["done", "rejected", "needs_supplement"]
    received_at: datetime = Field(description="When the agency took the dossier in.")
    completed_at: datetime
    note: str = ""
    result: dict[str, Any] = Field(
        default_factory=dict,
        description="What the step produced, as the action's result contract in contracts/results.py"
        " (e.g. vn.gov.result.appraisal.v1 for appraise); readers parse it with that contract.",
    )
    handoff_row: int | None = Field(default=None, ge=0, description="The handoff's slip row, quoted back.")

    @classmethod
    def answering(
        cls,
        handover: DossierHandedOver,
        *,
        outcome: Literal["done", "rejected", "needs_supplement"],
        received_at: datetime,
        completed_at: datetime,
        note: str = "",
        result: BaseModel | dict[str, Any] | None = None,
    ) -> StepCompleted:
        """The completion of the step ``handover`` assigned.

        ``result`` is best the action's typed contract (:mod:`contracts.results`); it travels
        as its JSON object, so the event's schema stays the same for every action.
        """
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        return cls(
            dossier_id=handover.dossier_id,
            step_index=handover.step_index,
            agency=handover.to_agency,
            action=handover.action,
            outcome=outcome,
            received_at=received_at,
            completed_at=completed_at,
            note=note,
            result=result or {},
            handoff_row=handover.handoff_row,
        )


class PaymentNoticeIssued(DossierEvent):
    """The tax authority assessed the financial obligations and notified the citizen."""

    TYPE: ClassVar[str] = "vn.gov.tax.payment_notice_issued.v1"

    notice_number: str
    applicant: Applicant
    taxable_value_vnd: int = Field(ge=0)
    registration_fee_vnd: int = Field(ge=0, description="Lệ phí trước bạ, 0.5% of the value.")
    personal_income_tax_vnd: int = Field(ge=0, description="Thuế TNCN, 2% of the price.")
    total_vnd: int = Field(ge=0)
    issued_at: datetime
    pay_by: datetime


class DossierReturned(DossierEvent):
    """The one-stop desk returned the result (or the refusal) to the citizen."""

    TYPE: ClassVar[str] = "vn.gov.dossier.returned.v1"

    procedure_code: str
    procedure_name: str
    applicant: Applicant
    outcome: Literal["approved", "rejected"]
    returned_at: datetime
    appointment_at: datetime
    on_time: bool
    summary: str
    result: dict[str, Any] = Field(default_factory=dict)
    refused_by: Agency | None = Field(
        default=None,
        description="The agency that refused the dossier (it signs the refusal); None if approved.",
    )


class PaymentReceived(DossierEvent):
    """The citizen paid the financial obligations and the desk took the proof; the clock resumes."""

    TYPE: ClassVar[str] = "vn.gov.dossier.payment_received.v1"

    received_at: datetime


class SupplementReceived(DossierEvent):
    """The citizen handed in the complete supplement; the statutory limit restarts in full."""

    TYPE: ClassVar[str] = "vn.gov.dossier.supplement_received.v1"

    documents: list[str] = Field(description="Codes of the documents added.")
    details: dict[str, Any] | None = Field(default=None, description="Corrected details, if any.")
    received_at: datetime


class SupplementRequested(DossierEvent):
    """The dossier is incomplete: the citizen must supplement it; the clock stops until then.

    When the complete supplement arrives the statutory limit restarts in full.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.supplement_requested.v1"

    requested_by_agency: Agency
    requested_by_name: str = Field(description="The agency's name as printed on the request.")
    applicant: Applicant
    procedure_name: str
    missing_documents: list[str] = Field(description="Names of the documents to add or correct.")
    reason: str
    requested_at: datetime


class StepOverdue(DossierEvent):
    """A step passed its due time without being completed (escalated to that agency)."""

    TYPE: ClassVar[str] = "vn.gov.dossier.step_overdue.v1"

    step_index: int = Field(ge=0)
    agency: Agency
    action: str
    budget_days: Decimal
    due_at: datetime
    detected_at: datetime
    appointment_at: datetime


class ApologyIssued(DossierEvent):
    """The agency at fault apologises and gives a new date (phiếu xin lỗi và hẹn lại).

    Issued no later than one working day before the promised date where the overrun leaves
    that much time; a dossier is rescheduled at most once.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.apology_issued.v1"

    letter_number: str = Field(examples=["PXL-2026-000007"])
    issued_by_agency: Agency = Field(description="The agency whose step overran; it signs the letter.")
    issuer_name: str = Field(examples=["Chi cục Thuế thành phố Tân An"])
    signatory_title: str = Field(examples=["Chi cục trưởng"])
    applicant: Applicant
    procedure_name: str
    received_at: datetime
    original_appointment_at: datetime
    new_appointment_at: datetime
    reason: str
    issued_at: datetime
    working_days_notice: Decimal = Field(
        description="Working days between the letter and the original promised date."
    )


class StepDueSoon(DossierEvent):
    """A step entered its last working day still open: the agency and the desk are warned.

    Sent to the agency (on its handoff topic) while it can still report a delay in time, and
    to the desk's readers (``intake.events``); never to the citizen.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.step_due_soon.v1"

    step_index: int = Field(ge=0)
    agency: Agency
    action: str
    handoff_row: int = Field(ge=0)
    budget_days: Decimal
    due_at: datetime
    warned_at: datetime
    appointment_at: datetime


class DossierEscalated(DossierEvent):
    """A rescheduled dossier slipped again: supervisors are alerted, no second apology."""

    TYPE: ClassVar[str] = "vn.gov.dossier.escalated.v1"

    agency: Agency
    step_index: int = Field(ge=0)
    action: str
    reason: str
    appointment_at: datetime
    detected_at: datetime


class StepDelayReported(DossierEvent):
    """An agency reports, before its step is due, that it will be late, why, and when it expects to finish.

    The desk apologises to the citizen at once with the new date (at least one working day
    ahead when reported in time) and watches the step against the reported date.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.step_delay_reported.v1"

    step_index: int = Field(ge=0)
    agency: Agency
    action: str
    handoff_row: int | None = Field(default=None, ge=0, description="The handoff's slip row, quoted back.")
    reason: str = Field(min_length=1, max_length=1000, examples=["Chờ kết quả đo đạc lại thửa đất"])
    expected_at: datetime = Field(description="When the agency expects to complete the step.")
    reported_at: datetime


class SatisfactionScores(Contract):
    """The citizen's rating of the service, 1 (very dissatisfied) to 5 (very satisfied).

    The five elements of the Ministry of Home Affairs' satisfaction index (SIPAS, Quyết định
    1383/QĐ-BNV): access to the service, the procedure, the officials, the result, and how
    feedback is received and handled.
    """

    access: int = Field(ge=1, le=5, description="Tiếp cận dịch vụ")
    procedure: int = Field(ge=1, le=5, description="Thủ tục hành chính")
    officials: int = Field(ge=1, le=5, description="Công chức trực tiếp giải quyết công việc")
    result: int = Field(ge=1, le=5, description="Kết quả cung ứng dịch vụ")
    feedback: int = Field(ge=1, le=5, description="Tiếp nhận, xử lý góp ý, phản ánh, kiến nghị")


class DossierRated(DossierEvent):
    """The citizen rated the service after the result: once per dossier, no personal data."""

    TYPE: ClassVar[str] = "vn.gov.dossier.rated.v1"

    procedure_code: str
    agencies: list[Agency] = Field(description="Every agency that had a step of the dossier, the desk first.")
    scores: SatisfactionScores
    rated_at: datetime


FaultKind = Literal[
    "repeat_supplement_request", "unlisted_document_requested", "document_lost", "result_corrected"
]
"""The faults in handling (sai sót) owed their own letter (rules: ``services.intake.domain.faults``)."""


class DocumentLossReported(DossierEvent):
    """An agency reports that it lost or damaged documents of the dossier (làm mất, hư hỏng hồ sơ).

    The desk sends the citizen that agency's fault apology; getting the documents again is the
    agency's business (a supplement request, if the citizen must bring them, is not the citizen's fault).
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.document_loss_reported.v1"

    agency: Agency
    documents: list[str] = Field(min_length=1, description="Codes of the documents lost or damaged.")
    damaged: bool = Field(default=False, description="Damaged rather than lost.")
    reason: str = Field(
        min_length=1, max_length=1000, examples=["Bản chính giấy chứng nhận bị rách khi scan"]
    )
    reported_at: datetime


class FaultApologyIssued(DossierEvent):
    """The agency at fault apologises for faulty handling (thư xin lỗi vì sai sót), not lateness.

    One letter per fault of an agency on a dossier; the appointment is unchanged (a fault
    apology reschedules nothing, so the one rescheduling a late dossier may have stays free).
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.fault_apology_issued.v1"

    letter_number: str = Field(examples=["PXL-2026-000008"])
    fault: FaultKind
    issued_by_agency: Agency = Field(description="The agency at fault; it signs the letter.")
    issuer_name: str = Field(examples=["Văn phòng đăng ký đất đai chi nhánh Tân An"])
    signatory_title: str = Field(examples=["Giám đốc"])
    applicant: Applicant
    procedure_name: str
    received_at: datetime
    appointment_at: datetime = Field(description="The promised date, unchanged by the fault.")
    reason: str = Field(description="What went wrong, in the citizen's words (Vietnamese).")
    authority: str = Field(description="The rule that makes this a fault owed an apology.")
    issued_at: datetime


class DossierWithdrawn(DossierEvent):
    """The citizen withdrew the dossier (rút hồ sơ): nothing more is done or sent on it.

    The citizen receives a withdrawal receipt; notices still queued for the dossier are voided.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.withdrawn.v1"

    applicant: Applicant
    procedure_name: str
    received_at: datetime
    withdrawn_at: datetime
    reason: str
    requested_by: Literal["citizen", "desk"]


class HandoffWithdrawn(DossierEvent):
    """The desk takes a handoff back (the dossier was withdrawn or refused): stop work on it.

    Goes on the holding agency's handoff topic after its ``dossier.handed_over``; an answer
    the agency sends anyway is ignored by the desk.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.handoff_withdrawn.v1"

    step_index: int = Field(ge=0)
    agency: Agency
    handoff_row: int = Field(ge=0)
    reason: str
    withdrawn_at: datetime


class SlipRow(Contract):
    """One row of the process-control slip, as the desk keeps it."""

    row: int = Field(ge=0)
    step_index: int = Field(ge=0)
    from_agency: str
    to_agency: str
    action: str
    budget_days: Decimal
    sent_at: datetime
    due_at: datetime | None
    received_at: datetime | None
    completed_at: datetime | None
    outcome: str | None
    late_by_days: Decimal = Field(description="Working days past due when completed (0 if on time).")
    overdue_at: datetime | None
    note: str


class DossierProgressedV1(DossierEvent):
    """The desk's whole view of a dossier after any change (v1, superseded by v2).

    Kept so that records written before v2 stay readable; readers upcast it to v2, which drops
    the applicant. Writers emit v2 only.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.progressed.v1"

    procedure_code: str
    procedure_name: str
    level: Literal["city", "ward"]
    applicant: Applicant
    status: str = Field(examples=["processing", "awaiting_payment", "returned"])
    received_at: datetime
    appointment_at: datetime
    original_appointment_at: datetime | None
    clock_paused_since: datetime | None
    returned_at: datetime | None
    on_time: bool
    slip: list[SlipRow]
    updated_at: datetime


class DossierProgressed(DossierEvent):
    """The desk's whole view of a dossier after any change: status, dates and the slip.

    For read models (the operator console, an agency's dashboard): one event carries the
    state, so a reader needs no other source and no ordering logic beyond the partition's.

    v2 breaks v1 on purpose: it travels on the public ``intake.events``, and v1 named the
    applicant (name, id number, phone, e-mail) to every reader of it. Who the applicant is goes
    only to readers entitled to it, on ``intake.citizens``.
    """

    TYPE: ClassVar[str] = "vn.gov.dossier.progressed.v2"

    procedure_code: str
    procedure_name: str
    level: Literal["city", "ward"]
    status: str = Field(examples=["processing", "awaiting_payment", "returned"])
    received_at: datetime
    appointment_at: datetime
    original_appointment_at: datetime | None
    clock_paused_since: datetime | None
    returned_at: datetime | None
    on_time: bool
    slip: list[SlipRow]
    updated_at: datetime


EVENT_TYPES: dict[str, type[DossierEvent]] = {
    cls.TYPE: cls
    for cls in (
        DossierReceivedV1,
        DossierReceived,
        DossierHandedOver,
        StepCompleted,
        PaymentNoticeIssued,
        DossierReturned,
        PaymentReceived,
        SupplementReceived,
        SupplementRequested,
        StepOverdue,
        ApologyIssued,
        DossierEscalated,
        FaultApologyIssued,
        DossierWithdrawn,
        HandoffWithdrawn,
        StepDelayReported,
        StepDueSoon,
        DocumentLossReported,
        DossierRated,
        DossierProgressedV1,
        DossierProgressed,
    )
}
"""Every event type a reader may meet, by CloudEvents type name."""
