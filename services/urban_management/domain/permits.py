"""The office's rules for an individual house: review the design, then issue the building permit.

Plain Python: the handoff comes in, the step's outcome goes out. The limits checked are the
ones every individual-house permit is held to (Law on Construction 2014, art. 93: the design
fits the parcel and the planning); the planning's own figures (building density, storeys) are
the province's, so the ones here are illustrative defaults, stated once below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.events import DossierHandedOver
from contracts.results import (
    ConstructionPermitResult,
    DesignReviewResult,
    NoResult,
    StepResult,
    earlier_result,
)

MAX_STOREYS = 7
"""Above this an individual house needs a design appraised by the construction department
(Decree 175/2024/NĐ-CP): not this office's permit."""
MAX_BUILDING_DENSITY = Decimal("0.8")
"""Illustrative planning limit: the house may cover at most 80 % of its parcel."""
PERMIT_VALIDITY_MONTHS = 12
"""A permit lapses if works have not started within 12 months (Law on Construction art. 99)."""


class UnknownAction(ValueError):
    """The office was asked for a step it does not do."""


class HouseDetails(BaseModel):
    """What the office reads from a construction-permit dossier's details."""

    model_config = ConfigDict(extra="ignore")

    parcel_ref: str = Field(min_length=1)
    parcel_area_m2: Decimal = Field(gt=0)
    built_area_m2: Decimal = Field(gt=0)
    storeys: int = Field(ge=1)
    total_floor_area_m2: Decimal = Field(gt=0)


@dataclass(frozen=True)
class StepOutcome:
    """What the office concluded, for the StepCompleted event."""

    outcome: Literal["done", "rejected"]
    note: str
    typed: StepResult = field(default_factory=NoResult)


def review_design(handover: DossierHandedOver) -> StepOutcome:
    """Check the design against the parcel and the planning limits."""
    try:
        house = HouseDetails.model_validate(handover.details)
    except ValidationError as exc:
        return StepOutcome("rejected", f"hồ sơ thiết kế không đọc được: {exc.error_count()} lỗi")
    density = (house.built_area_m2 / house.parcel_area_m2).quantize(Decimal("0.01"), ROUND_HALF_UP)
    if house.storeys > MAX_STOREYS:
        return StepOutcome(
            "rejected", f"nhà {house.storeys} tầng vượt quá {MAX_STOREYS} tầng của nhà ở riêng lẻ"
        )
    if density > MAX_BUILDING_DENSITY:
        return StepOutcome(
            "rejected", f"mật độ xây dựng {density:.0%} vượt quá {MAX_BUILDING_DENSITY:.0%} theo quy hoạch"
        )
    review = DesignReviewResult(
        parcel_ref=house.parcel_ref,
        built_area_m2=house.built_area_m2,
        storeys=house.storeys,
        total_floor_area_m2=house.total_floor_area_m2,
        building_density=density,
    )
    return StepOutcome("done", f"thiết kế phù hợp quy hoạch, mật độ xây dựng {density:.0%}", review)


def issue_permit(handover: DossierHandedOver, *, permit_number: str, issued_at: datetime) -> StepOutcome:
    """Issue the permit for the design the office reviewed."""
    review = earlier_result(handover.results, "review_design", DesignReviewResult)
    permit = ConstructionPermitResult(
        permit_number=permit_number,
        parcel_ref=review.parcel_ref,
        storeys=review.storeys,
        total_floor_area_m2=review.total_floor_area_m2,
        valid_until=issued_at.replace(year=issued_at.year + PERMIT_VALIDITY_MONTHS // 12).date(),
    )
    return StepOutcome("done", f"đã cấp giấy phép xây dựng số {permit_number}", permit)


def perform(handover: DossierHandedOver, *, permit_number: str, now: datetime) -> StepOutcome:
    """The step a handoff asks for (``UnknownAction`` for one the office does not do)."""
    if handover.action == "review_design":
        return review_design(handover)
    if handover.action == "issue_construction_permit":
        return issue_permit(handover, permit_number=permit_number, issued_at=now)
    raise UnknownAction(f"the urban management office does not {handover.action!r}")
