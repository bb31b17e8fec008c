"""The one-stop desk's HTTP API: the counter and the online portal use the same endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from contracts.agencies import Agency
from contracts.events import Applicant, SatisfactionScores
from services.intake.domain.catalog import Fee, Procedure, RequiredDocument, Step
from services.intake.domain.dossier import (
    Dossier,
    FaultRefused,
    PaymentRefused,
    SubmissionRefused,
    TransitionRefused,
)
from services.intake.handlers import (
    LOOKUP_ALPHABET,
    LOOKUP_CODE_LENGTH,
    Desk,
    DossierIdTaken,
    DossierNotFound,
    Handled,
    IdempotencyKeyReused,
)
from services.runtime.access import AUTH_RESPONSES, Access, Principal, Role
from services.runtime.working_days import VIETNAM_TZ, WorkingDayCalendar

_NO_SPACE_OR_AT = r"[^@\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
"""Not ``@`` nor white space, spelled out: ``\\s`` means different characters to the JSON Schema
dialect (ECMA 262: no U+0085, but U+FEFF) and to the service's validator (Unicode White_Space)."""


class ApplicantForm(Applicant):
    """The applicant as the API takes it: the contract's, with an e-mail pattern both sides read alike."""

    email: str = Field(
        pattern=f"^{_NO_SPACE_OR_AT}+@{_NO_SPACE_OR_AT}+\\.{_NO_SPACE_OR_AT}+$",
        examples=["an.nguyen@example.vn"],
    )


class SubmitDossier(BaseModel):
    """A dossier as filed by a citizen."""

    model_config = ConfigDict(extra="forbid")

    procedure_code: str = Field(examples=["LAND-TRANSFER"])
    dossier_id: str | None = Field(
        default=None,
        pattern=r"^[A-Z0-9][A-Z0-9.-]{3,63}$",
        description="The number the online portal already gave the dossier; the desk numbers it if absent.",
        examples=["HS-260309-1A2B3C4D5E"],
    )
    applicant: ApplicantForm
    documents: list[str] = Field(description="Codes of the documents handed in")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Procedure-specific; see the procedure's details_schema"
    )
    lookup_code: str | None = Field(
        default=None,
        pattern=f"^[{LOOKUP_ALPHABET}]{{{LOOKUP_CODE_LENGTH}}}$",
        description="The look-up code already printed for this dossier (a replay filing it again keeps"
        " the citizen's receipt valid); the desk draws a random one if absent.",
    )


class ProcedureView(BaseModel):
    """A published procedure, with the JSON Schema a portal builds its form from."""

    code: str
    name: str
    name_en: str
    level: str
    field: str
    statutory_limit_days: Decimal
    legal_basis: str
    return_place: str
    fees: list[Fee]
    required_documents: list[RequiredDocument]
    steps: list[Step]
    details_schema: dict[str, Any]

    @classmethod
    def of(cls, procedure: Procedure) -> ProcedureView:
        """View of a catalog entry."""
        return cls.model_validate(procedure.model_dump())


class _LocalTimes(BaseModel):
    """Datetimes leave the API in Vietnam time (with the offset), whatever the database returns."""

    @field_serializer("*", when_used="json")
    def _local(self, value: Any) -> Any:
        return value.astimezone(VIETNAM_TZ) if isinstance(value, datetime) else value


class HandoffView(_LocalTimes):
    """One row of the process-control slip."""

    model_config = ConfigDict(populate_by_name=True)

    row: int
    step_index: int
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    action: str
    budget_days: Decimal
    sent_at: datetime
    received_at: datetime | None
    completed_at: datetime | None
    due_at: datetime | None
    outcome: str | None
    note: str
    late_by_days: Decimal = Field(description="Working days past due (so far, for an open step).")
    overdue_at: datetime | None


def _status(dossier: Dossier) -> dict[str, Any]:
    """The fields every view of a dossier shows: where it stands and its dates."""
    return {
        "id": dossier.id,
        "procedure_code": dossier.procedure_code,
        "status": dossier.status.value,
        "received_at": dossier.received_at,
        "appointment_date": dossier.appointment_at,
        "original_appointment_date": dossier.original_appointment_at,
        "clock_paused_since": dossier.paused_at,
        "returned_at": dossier.returned_at,
        "on_time": dossier.on_time,
    }


class DossierView(_LocalTimes):
    """A dossier's status and its process-control slip."""

    id: str
    procedure_code: str
    status: str
    received_at: datetime
    appointment_date: datetime
    original_appointment_date: datetime | None = Field(
        description="The first promised date, when the dossier was rescheduled with an apology."
    )
    clock_paused_since: datetime | None = Field(description="Set while the citizen supplements or pays.")
    fees_vnd: int
    current_step: int
    returned_at: datetime | None
    on_time: bool
    results: dict[str, dict[str, Any]]
    handoffs: list[HandoffView]

    @classmethod
    def of(cls, dossier: Dossier, *, now: datetime, calendar: WorkingDayCalendar) -> DossierView:
        """View of a domain dossier at ``now`` (open steps show how late they are so far)."""
        return cls(
            **_status(dossier),
            fees_vnd=dossier.fees_vnd,
            current_step=dossier.current_step,
            results=dossier.results,
            handoffs=[
                HandoffView.model_validate(
                    {
                        "step_index": h.step_index,
                        "from": h.from_agency,
                        "to": h.to_agency,
                        "action": h.action,
                        "budget_days": h.budget_days,
                        "sent_at": h.sent_at,
                        "received_at": h.received_at,
                        "completed_at": h.completed_at,
                        "due_at": h.due_at,
                        "outcome": h.outcome,
                        "note": h.note,
                        "row": h.row,
                        "late_by_days": h.late_by_days if h.completed_at else h.lateness(now, calendar),
                        "overdue_at": h.overdue_at,
                    }
                )
                for h in dossier.slip
            ],
        )


class FiledDossierView(DossierView):
    """The dossier just filed, with the look-up code printed on its receipt."""

    lookup_code: str = Field(description="With the dossier's id, opens GET /dossiers/{id}/status.")


class PublicStepView(_LocalTimes):
    """One step of the route as the public sees it: which agency, when, how late; nothing personal."""

    agency: str
    action: str
    sent_at: datetime
    due_at: datetime | None
    completed_at: datetime | None
    late_by_days: Decimal


class PublicStatusView(_LocalTimes):
    """What anyone holding the receipt may see (tra cứu hồ sơ): status and timing, never the applicant."""

    id: str
    procedure_code: str
    status: str
    received_at: datetime
    appointment_date: datetime
    original_appointment_date: datetime | None
    clock_paused_since: datetime | None
    returned_at: datetime | None
    on_time: bool
    steps: list[PublicStepView]

    @classmethod
    def of(cls, dossier: Dossier, *, now: datetime, calendar: WorkingDayCalendar) -> PublicStatusView:
        """The public part of a dossier at ``now``."""
        return cls(
            **_status(dossier),
            steps=[
                PublicStepView(
                    agency=h.to_agency,
                    action=h.action,
                    sent_at=h.sent_at,
                    due_at=h.due_at,
                    completed_at=h.completed_at,
                    late_by_days=h.late_by_days if h.completed_at else h.lateness(now, calendar),
                )
                for h in dossier.slip
            ],
        )


class PaymentConfirmation(BaseModel):
    """The treasury's (or payment gateway's) confirmation that a tax notice was paid."""

    model_config = ConfigDict(extra="forbid")

    notice_number: str = Field(min_length=1, max_length=64, examples=["TB-2026-000123"])
    amount_vnd: int = Field(ge=0, description="What was paid; it must be the notice's total.")


class SupplementRequest(BaseModel):
    """What the citizen must add or correct, and why."""

    model_config = ConfigDict(extra="forbid")

    missing_documents: list[str] = Field(min_length=1, examples=[["Bản vẽ sơ đồ thửa đất"]])
    reason: str = Field(min_length=1)


class Supplement(BaseModel):
    """The citizen's supplement: documents added, and corrected details if any."""

    model_config = ConfigDict(extra="forbid")

    documents: list[str] = Field(default_factory=list)
    details: dict[str, Any] | None = None


class Withdrawal(BaseModel):
    """The citizen withdraws the dossier (the desk may file it for them)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, examples=["Không còn nhu cầu chuyển nhượng"])
    lookup_code: str | None = Field(
        default=None,
        min_length=LOOKUP_CODE_LENGTH,
        max_length=LOOKUP_CODE_LENGTH,
        pattern=f"^[{LOOKUP_ALPHABET}]+$",
        description="The code on the receipt: a citizen must give it; a desk officer need not.",
    )


class Rating(BaseModel):
    """The citizen's rating after the result, opened by the receipt's code (no account needed)."""

    model_config = ConfigDict(extra="forbid")

    lookup_code: str = Field(
        min_length=LOOKUP_CODE_LENGTH,
        max_length=LOOKUP_CODE_LENGTH,
        pattern=f"^[{LOOKUP_ALPHABET}]+$",
        description="The code printed on the receipt.",
    )
    scores: SatisfactionScores


class DeskRefusal(BaseModel):
    """The desk refuses to settle the dossier (từ chối giải quyết), with the reason for the citizen."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)


class FaultReport(BaseModel):
    """A fault in an agency's handling, recorded by the desk; the agency at fault apologises."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["unlisted_document_requested", "document_lost", "result_corrected"] = Field(
        description="unlisted_document_requested: the agency asked for a paper the procedure does not"
        " list; document_lost: it lost or damaged documents; result_corrected: its result was wrong"
        " and has been corrected (only once the result was returned)."
    )
    agency: Agency = Field(description="The agency at fault: it must have had a step of the dossier.")
    detail: str = Field(
        min_length=1,
        max_length=1000,
        description="What happened, for the letter (the correction made, the paper asked for...).",
        examples=["Diện tích ghi trên giấy chứng nhận là 120,5 m², không phải 125,0 m²"],
    )
    documents: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="The papers concerned (asked for, lost): a paper the procedure lists is no"
        " unlisted request (422). The same papers, or the same detail, make the same fault.",
    )


class Refusal(BaseModel):
    """Why a request was refused, every reason listed."""

    detail: str
    problems: list[str] = Field(default_factory=list)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Makes the request safe to repeat: a second request with the same key changes"
        " nothing and returns the dossier as it is (200 with `Idempotent-Replayed: true`).",
    ),
]


Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Refusal, "description": "No such dossier"}}
CONFLICT: Responses = {
    409: {"model": Refusal, "description": "The dossier is not at a step where this can be done"}
}
UNPROCESSABLE: Responses = {422: {"model": Refusal, "description": "The request is invalid or refused"}}


def build_router(desk: Desk, access: Access) -> APIRouter:
    """The API routes, bound to the desk's use cases; ``access`` checks the callers' tokens."""
    router = APIRouter()

    def view(dossier: Dossier) -> DossierView:
        return DossierView.of(dossier, now=desk.runtime.clock.now(), calendar=desk.calendar)

    def answer(handled: Handled, response: Response) -> DossierView:
        if handled.replayed:
            # RFC 9110 has no code for "already done"; 200 and a header, as payment APIs do.
            response.status_code = status.HTTP_200_OK
            response.headers["Idempotent-Replayed"] = "true"
        return view(handled.dossier)

    @router.get("/procedures", tags=["catalog"], summary="The published procedures (open to all)")
    async def list_procedures() -> list[ProcedureView]:
        return [ProcedureView.of(p) for p in desk.catalog.procedures]

    @router.post(
        "/dossiers",
        status_code=status.HTTP_201_CREATED,
        tags=["dossiers"],
        summary="File a dossier (a citizen online, a desk officer at the counter)",
        response_model=FiledDossierView,
        responses={**AUTH_RESPONSES, 409: {"model": Refusal}, **UNPROCESSABLE},
        dependencies=[access.requires(Role.CITIZEN, Role.DESK_OFFICER)],
    )
    async def submit_dossier(
        body: SubmitDossier, response: Response, idempotency_key: IdempotencyKey = None
    ) -> FiledDossierView | JSONResponse:
        try:
            handled = await desk.submit(
                procedure_code=body.procedure_code,
                applicant=Applicant.model_validate(body.applicant.model_dump()),
                documents=body.documents,
                details=body.details,
                dossier_id=body.dossier_id,
                lookup_code=body.lookup_code,
                idempotency_key=idempotency_key,
            )
        except SubmissionRefused as exc:
            refusal = Refusal(detail="dossier refused at the desk", problems=exc.problems)
            return JSONResponse(refusal.model_dump(), status_code=422)
        except DossierIdTaken as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, f"dossier id {exc} is already used") from exc
        except IdempotencyKeyReused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
        filed = answer(handled, response)
        return FiledDossierView(**filed.model_dump(by_alias=True), lookup_code=handled.dossier.lookup_code)

    @router.get(
        "/dossiers/{dossier_id}",
        tags=["dossiers"],
        summary="Status, slip and results (desk and agency officers, operators)",
        responses={**AUTH_RESPONSES, **NOT_FOUND},
        dependencies=[access.requires(Role.DESK_OFFICER, Role.AGENCY_OFFICER, Role.OPERATOR)],
    )
    async def get_dossier(dossier_id: str) -> DossierView:
        try:
            return view(await desk.lookup(dossier_id))
        except DossierNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dossier {dossier_id}") from exc

    @router.get(
        "/dossiers/{dossier_id}/status",
        tags=["dossiers"],
        summary="The citizen's look-up (tra cứu hồ sơ): status and timing, open to whoever holds the receipt",
        responses=NOT_FOUND,
    )
    async def public_status(
        dossier_id: str,
        lookup_code: str = Query(
            min_length=LOOKUP_CODE_LENGTH,
            max_length=LOOKUP_CODE_LENGTH,
            pattern=f"^[{LOOKUP_ALPHABET}]+$",
            description="The code printed on the receipt.",
        ),
    ) -> PublicStatusView:
        # One answer for "no such dossier" and "wrong code": the look-up says nothing to a guesser.
        dossier = await holder_of_receipt(dossier_id, lookup_code)
        return PublicStatusView.of(dossier, now=desk.runtime.clock.now(), calendar=desk.calendar)

    @router.post(
        "/dossiers/{dossier_id}/payments",
        tags=["dossiers"],
        summary="The treasury confirms the tax notice paid (number and amount must match the notice)",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT, **UNPROCESSABLE},
        dependencies=[access.requires(Role.PAYMENT_GATEWAY)],
    )
    async def record_payment(
        dossier_id: str, body: PaymentConfirmation, response: Response, idempotency_key: IdempotencyKey = None
    ) -> DossierView:
        with refusals(dossier_id):
            handled = await desk.record_payment(
                dossier_id,
                notice_number=body.notice_number,
                amount_vnd=body.amount_vnd,
                idempotency_key=idempotency_key,
            )
        return answer(handled, response)

    @router.post(
        "/dossiers/{dossier_id}/supplement-requests",
        tags=["dossiers"],
        summary="The desk asks the citizen to supplement the dossier (the clock stops)",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT, **UNPROCESSABLE},
        dependencies=[access.requires(Role.DESK_OFFICER)],
    )
    async def request_supplement(
        dossier_id: str, body: SupplementRequest, response: Response, idempotency_key: IdempotencyKey = None
    ) -> DossierView:
        with refusals(dossier_id):
            handled = await desk.request_supplement(
                dossier_id,
                missing=body.missing_documents,
                reason=body.reason,
                idempotency_key=idempotency_key,
            )
        return answer(handled, response)

    @router.post(
        "/dossiers/{dossier_id}/supplements",
        tags=["dossiers"],
        summary="The desk takes the citizen's complete supplement (the limit restarts in full)",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT, **UNPROCESSABLE},
        dependencies=[access.requires(Role.DESK_OFFICER)],
    )
    async def supplement(
        dossier_id: str, body: Supplement, response: Response, idempotency_key: IdempotencyKey = None
    ) -> DossierView:
        with refusals(dossier_id):
            handled = await desk.supplement(
                dossier_id, documents=body.documents, details=body.details, idempotency_key=idempotency_key
            )
        return answer(handled, response)

    @router.post(
        "/dossiers/{dossier_id}/withdrawal",
        tags=["dossiers"],
        summary="The citizen withdraws the dossier (with the receipt's code) or the desk does for them",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT, **UNPROCESSABLE},
        dependencies=[access.requires(Role.CITIZEN, Role.DESK_OFFICER)],
    )
    async def withdraw(
        dossier_id: str,
        body: Withdrawal,
        request: Request,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> DossierView:
        # Set by the access check the route depends on, which runs before the handler.
        caller: Principal = request.state.principal
        by_citizen = Role.DESK_OFFICER not in caller.roles
        if by_citizen:
            # A citizen's token says who they are, not which dossiers are theirs: the receipt's
            # code does, and a wrong one gets the look-up's answer so it tells a guesser nothing.
            await holder_of_receipt(dossier_id, body.lookup_code)
        with refusals(dossier_id):
            handled = await desk.withdraw(
                dossier_id,
                reason=body.reason,
                requested_by="citizen" if by_citizen else "desk",
                idempotency_key=idempotency_key,
            )
        return answer(handled, response)

    @router.post(
        "/dossiers/{dossier_id}/rating",
        tags=["dossiers"],
        summary="The citizen rates the service once the result is returned (with the receipt's code)",
        responses={**NOT_FOUND, **CONFLICT, **UNPROCESSABLE},
    )
    async def rate(
        dossier_id: str, body: Rating, response: Response, idempotency_key: IdempotencyKey = None
    ) -> PublicStatusView:
        await holder_of_receipt(dossier_id, body.lookup_code)
        with refusals(dossier_id):
            handled = await desk.rate(dossier_id, body.scores, idempotency_key=idempotency_key)
        if handled.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return PublicStatusView.of(handled.dossier, now=desk.runtime.clock.now(), calendar=desk.calendar)

    async def holder_of_receipt(dossier_id: str, lookup_code: str | None) -> Dossier:
        """The dossier, if ``lookup_code`` is its receipt's; else the look-up's one 404 for all."""
        try:
            dossier: Dossier | None = await desk.lookup(dossier_id)
        except DossierNotFound:
            dossier = None
        code = (lookup_code or "").encode()
        if dossier is None or not hmac.compare_digest(dossier.lookup_code.encode(), code):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no dossier with that id and look-up code")
        return dossier

    @router.post(
        "/dossiers/{dossier_id}/refusal",
        tags=["dossiers"],
        summary="The desk refuses to settle the dossier; the citizen gets the refusal and its reason",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT, **UNPROCESSABLE},
        dependencies=[access.requires(Role.DESK_OFFICER)],
    )
    async def refuse(
        dossier_id: str, body: DeskRefusal, response: Response, idempotency_key: IdempotencyKey = None
    ) -> DossierView:
        with refusals(dossier_id):
            handled = await desk.refuse(dossier_id, reason=body.reason, idempotency_key=idempotency_key)
        return answer(handled, response)

    @router.post(
        "/dossiers/{dossier_id}/faults",
        tags=["dossiers"],
        summary="The desk records a fault in an agency's handling; that agency's apology goes out",
        description="One letter per fault: the same fault recorded again changes nothing. A"
        " repeated supplement request needs no report, the desk detects it itself.",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT, **UNPROCESSABLE},
        dependencies=[access.requires(Role.DESK_OFFICER)],
    )
    async def record_fault(
        dossier_id: str, body: FaultReport, response: Response, idempotency_key: IdempotencyKey = None
    ) -> DossierView:
        with refusals(dossier_id):
            handled = await desk.record_fault(
                dossier_id,
                kind=body.kind,
                agency=body.agency,
                detail=body.detail,
                documents=body.documents,
                idempotency_key=idempotency_key,
            )
        return answer(handled, response)

    return router


@contextmanager
def refusals(dossier_id: str) -> Iterator[None]:
    """The desk's refusals of a request on a dossier, as HTTP errors."""
    try:
        yield
    except DossierNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dossier {dossier_id}") from exc
    except TransitionRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except (IdempotencyKeyReused, PaymentRefused, FaultRefused) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
