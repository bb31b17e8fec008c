"""The land registry office's rules: appraise a transfer, then issue the new certificate.

Plain Python: the handoff comes in, the step's outcome goes out.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.events import DossierHandedOver
from contracts.results import (
    AppraisalResult,
    AssessmentResult,
    CertificateResult,
    MortgageResult,
    NoResult,
    StepResult,
    earlier_result,
)

PRICE_TABLE_FILE = Path(__file__).parent / "land_prices.toml"


class Parcel(BaseModel):
    """The parcel as the registration form describes it."""

    model_config = ConfigDict(extra="ignore")

    ward: str
    map_sheet: int = Field(ge=1)
    parcel_number: int = Field(ge=1)
    area_m2: Decimal = Field(gt=0)
    land_use_code: str


class Party(BaseModel):
    """The person receiving the land-use right."""

    model_config = ConfigDict(extra="ignore")

    full_name: str = Field(min_length=1)
    id_number: str


class TransferDetails(BaseModel):
    """What the registry reads from a land-transfer dossier's details."""

    model_config = ConfigDict(extra="ignore")

    certificate_number: str
    parcel: Parcel
    transferee: Party
    transfer_price_vnd: int = Field(ge=0)


@dataclass(frozen=True)
class StepOutcome:
    """What the agency concluded, for the StepCompleted event."""

    outcome: Literal["done", "rejected"]
    note: str
    typed: StepResult = field(default_factory=NoResult)
    """The action's result contract (``NoResult`` when refused)."""

    @property
    def result(self) -> dict[str, Any]:
        """The result as it travels and is kept: the contract's JSON object."""
        return self.typed.wire()


@dataclass(frozen=True)
class LandPriceTable:
    """VND per m² by (ward, land-use code), from the province's land price table."""

    prices: dict[tuple[str, str], int]

    @classmethod
    def load(cls, path: Path = PRICE_TABLE_FILE) -> LandPriceTable:
        """Read the table file."""
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return cls(
            prices={
                (ward, code): int(price)
                for ward, by_code in data["prices"].items()
                for code, price in by_code.items()
            }
        )

    def price(self, ward: str, land_use_code: str) -> int | None:
        """The table price, if the table lists that land use in that ward."""
        return self.prices.get((ward, land_use_code))


class UnknownAction(ValueError):
    """The registry was handed a step it does not perform."""


def perform(handover: DossierHandedOver, *, prices: LandPriceTable, certificate_serial: str) -> StepOutcome:
    """Do the registry's step named by the handoff."""
    if handover.action == "appraise":
        return appraise(handover.details, handover.applicant.id_number, prices)
    if handover.action == "issue_certificate":
        return issue_certificate(handover.details, handover.results, certificate_serial)
    if handover.action == "register_mortgage":
        return register_mortgage(handover.details)
    raise UnknownAction(f"the land registry does not {handover.action!r}")


def appraise(details: dict[str, Any], transferor_id: str, prices: LandPriceTable) -> StepOutcome:
    """Check the parcel and the parties, and value the parcel at the table price."""
    try:
        transfer = TransferDetails.model_validate(details)
    except ValidationError as exc:
        return StepOutcome("rejected", f"hồ sơ thiếu hoặc sai thông tin thửa đất: {exc.error_count()} lỗi")
    parcel = transfer.parcel
    if transfer.transferee.id_number == transferor_id:
        return StepOutcome("rejected", "bên nhận chuyển nhượng trùng với bên chuyển nhượng")
    price = prices.price(parcel.ward, parcel.land_use_code)
    if price is None:
        return StepOutcome(
            "rejected",
            f"bảng giá đất không có loại đất {parcel.land_use_code} tại {parcel.ward}",
        )
    table_value = int((parcel.area_m2 * price).quantize(Decimal(1), ROUND_HALF_UP))
    return StepOutcome(
        "done",
        "hồ sơ đủ điều kiện chuyển nhượng",
        AppraisalResult(
            parcel_ref=f"{parcel.ward}/tờ {parcel.map_sheet}/thửa {parcel.parcel_number}",
            area_m2=parcel.area_m2,
            land_use_code=parcel.land_use_code,
            table_price_vnd_per_m2=price,
            table_value_vnd=table_value,
            declared_price_vnd=transfer.transfer_price_vnd,
        ),
    )


def issue_certificate(
    details: dict[str, Any], results: dict[str, dict[str, Any]], serial: str
) -> StepOutcome:
    """Issue the certificate to the transferee once the obligations are paid.

    Raises :class:`contracts.results.ResultRejected` if an earlier result breaks its contract.
    """
    if "appraise" not in results or "assess" not in results:
        return StepOutcome("rejected", "chưa có kết quả thẩm định hoặc nghĩa vụ tài chính")
    appraisal = earlier_result(results, "appraise", AppraisalResult)
    earlier_result(results, "assess", AssessmentResult)  # only its presence matters, but typed
    transfer = TransferDetails.model_validate(details)
    return StepOutcome(
        "done",
        "đã cấp Giấy chứng nhận",
        CertificateResult(
            certificate_serial=serial, holder=transfer.transferee.full_name, parcel_ref=appraisal.parcel_ref
        ),
    )


def register_mortgage(details: dict[str, Any]) -> StepOutcome:
    """Enter the mortgage on the parcel's record (the certificate number names the parcel)."""
    certificate = details.get("certificate_number")
    lender = details.get("lender")
    if not certificate or not lender:
        return StepOutcome("rejected", "thiếu số Giấy chứng nhận hoặc bên nhận thế chấp")
    return StepOutcome(
        "done", "đã đăng ký thế chấp", MortgageResult(certificate_number=certificate, mortgagee=lender)
    )
