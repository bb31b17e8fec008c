"""The one-stop desk's HTTP API: the counter and the online portal use the same endpoints."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from contracts.events import Applicant
from services.intake.domain.catalog import Fee, Procedure, RequiredDocument, Step
from services.intake.domain.dossier import Dossier, SubmissionRefused, TransitionRefused
from services.intake.handlers import Desk, DossierNotFound


class SubmitDossier(BaseModel):
    """A dossier as filed by a citizen."""

    model_config = ConfigDict(extra="forbid")

    procedure_code: str = Field(examples=["LAND-TRANSFER"])
    applicant: Applicant
    documents: list[str] = Field(description="Codes of the documents handed in")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Procedure-specific; see the procedure's details_schema"
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


LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class _LocalTimes(BaseModel):
    """Datetimes leave the API in Vietnam time (with the offset), whatever the database returns."""

    @field_serializer("*", when_used="json")
    def _local(self, value: Any) -> Any:
        return value.astimezone(LOCAL_TZ) if isinstance(value, datetime) else value


class HandoffView(_LocalTimes):
    """One row of the process-control slip."""

    model_config = ConfigDict(populate_by_name=True)

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


class DossierView(_LocalTimes):
    """A dossier's status and its process-control slip."""

    id: str
    procedure_code: str
    status: str
    received_at: datetime
    appointment_date: datetime
    fees_vnd: int
    current_step: int
    returned_at: datetime | None
    on_time: bool
    results: dict[str, dict[str, Any]]
    handoffs: list[HandoffView]

    @classmethod
    def of(cls, dossier: Dossier) -> DossierView:
        """View of a domain dossier."""
        return cls(
            id=dossier.id,
            procedure_code=dossier.procedure_code,
            status=dossier.status.value,
            received_at=dossier.received_at,
            appointment_date=dossier.appointment_at,
            fees_vnd=dossier.fees_vnd,
            current_step=dossier.current_step,
            returned_at=dossier.returned_at,
            on_time=dossier.on_time,
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
                    }
                )
                for h in dossier.slip
            ],
        )


class Refusal(BaseModel):
    """Why a request was refused, every reason listed."""

    detail: str
    problems: list[str] = Field(default_factory=list)


def build_router(desk: Desk) -> APIRouter:
    """The API routes, bound to the desk's use cases."""
    router = APIRouter()

    @router.get("/procedures", tags=["catalog"], summary="The published procedures")
    async def list_procedures() -> list[ProcedureView]:
        return [ProcedureView.of(p) for p in desk.catalog.procedures]

    @router.post(
        "/dossiers",
        status_code=status.HTTP_201_CREATED,
        tags=["dossiers"],
        summary="File a dossier; returns its id and appointment date",
        response_model=DossierView,
        responses={422: {"model": Refusal}},
    )
    async def submit_dossier(body: SubmitDossier) -> DossierView | JSONResponse:
        try:
            dossier = await desk.submit(
                procedure_code=body.procedure_code,
                applicant=body.applicant,
                documents=body.documents,
                details=body.details,
            )
        except SubmissionRefused as exc:
            refusal = Refusal(detail="dossier refused at the desk", problems=exc.problems)
            return JSONResponse(refusal.model_dump(), status_code=422)
        return DossierView.of(dossier)

    @router.get("/dossiers/{dossier_id}", tags=["dossiers"], summary="Status and slip")
    async def get_dossier(dossier_id: str) -> DossierView:
        try:
            return DossierView.of(await desk.lookup(dossier_id))
        except DossierNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dossier {dossier_id}") from exc

    @router.post(
        "/dossiers/{dossier_id}/payments",
        tags=["dossiers"],
        summary="Record the citizen's payment of the tax notice",
        responses={409: {"model": Refusal}},
    )
    async def record_payment(dossier_id: str) -> DossierView:
        try:
            return DossierView.of(await desk.record_payment(dossier_id))
        except DossierNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dossier {dossier_id}") from exc
        except TransitionRefused as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc

    return router
