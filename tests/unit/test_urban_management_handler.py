"""The urban management office's use case on fakes: a handoff in, a typed answer out."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from contracts import topics
from contracts.events import Applicant, DossierHandedOver, StepCompleted
from contracts.results import ConstructionPermitResult, DesignReviewResult, parse_result
from services.runtime.consumer import EventRejected
from services.runtime.working_days import VIETNAM_TZ
from services.urban_management.handlers import answer_handoff
from tests.dossier_samples import applicant
from tests.fakes import FakeWork, InMemoryRegister

MONDAY = datetime(2026, 3, 9, 8, tzinfo=VIETNAM_TZ)
OFFICE_EVENTS = topics.agency_events("urban_management")


def handover(
    action: str, *, built_area_m2: float = 72.0, results: dict[str, dict[str, object]] | None = None
) -> DossierHandedOver:
    return DossierHandedOver(
        dossier_id="HS-PERMIT-1",
        procedure_code="CONSTRUCTION-PERMIT",
        step_index=1,
        from_agency="one_stop",
        to_agency="urban_management",
        action=action,
        budget_days=Decimal(10),
        sent_at=MONDAY,
        due_at=MONDAY + timedelta(days=14),
        applicant=Applicant.model_validate(applicant(3)),
        details={
            "parcel_ref": "phuong-3/tờ 12/thửa 403",
            "parcel_area_m2": 90,
            "built_area_m2": built_area_m2,
            "storeys": 3,
            "total_floor_area_m2": built_area_m2 * 3,
        },
        results=results or {},
        handoff_row=1,
    )


def answer_of(work: FakeWork) -> StepCompleted:
    ((topic, answer),) = work.published
    assert topic == OFFICE_EVENTS
    assert isinstance(answer, StepCompleted)
    return answer


async def test_a_design_within_the_limits_is_reviewed_then_permitted() -> None:
    register, work = InMemoryRegister(), FakeWork(now=MONDAY)
    await answer_handoff(work, register, handover("review_design"))
    review = answer_of(work)
    assert review.outcome == "done"
    typed = parse_result("review_design", review.result)
    assert isinstance(typed, DesignReviewResult)
    assert typed.building_density == Decimal("0.80")

    work = FakeWork(now=MONDAY + timedelta(days=3))
    await answer_handoff(
        work, register, handover("issue_construction_permit", results={"review_design": review.result})
    )
    permit = parse_result("issue_construction_permit", answer_of(work).result)
    assert isinstance(permit, ConstructionPermitResult)
    assert permit.permit_number == "GPXD-2026-000001"
    assert str(permit.valid_until) == "2027-03-12"
    assert [s["action"] for s in register.steps] == ["review_design", "issue_construction_permit"]


async def test_too_dense_a_design_is_refused_and_a_permit_without_a_review_is_dead_lettered() -> None:
    register, work = InMemoryRegister(), FakeWork(now=MONDAY)
    await answer_handoff(work, register, handover("review_design", built_area_m2=85.0))
    refused = answer_of(work)
    assert refused.outcome == "rejected"
    assert "mật độ xây dựng 94%" in refused.note
    with pytest.raises(EventRejected, match="review_design"):
        await answer_handoff(FakeWork(now=MONDAY), register, handover("issue_construction_permit"))
    with pytest.raises(EventRejected, match="does not 'appraise'"):
        await answer_handoff(FakeWork(now=MONDAY), register, handover("appraise"))
    assert register.issued == 1, "a number was drawn for the refused permit; the real sequence has gaps too"
