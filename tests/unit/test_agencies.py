"""The land registry's and the tax authority's rules, with no Kafka and no SQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from contracts.results import AppraisalResult, AssessmentResult, ResultRejected
from services.land_registry.domain.registry import LandPriceTable, appraise, issue_certificate
from services.tax.domain.assessment import AssessmentImpossible, assess
from tests.dossier_samples import land_transfer

PRICES = LandPriceTable.load()


def appraisal_result(declared: int = 1_500_000_000, table_value: int = 1_200_000_000) -> AppraisalResult:
    return AppraisalResult(
        parcel_ref="phuong-3/tờ 12/thửa 301",
        area_m2=Decimal(100),
        land_use_code="ODT",
        table_price_vnd_per_m2=table_value // 100,
        table_value_vnd=table_value,
        declared_price_vnd=declared,
    )


def appraisal(declared: int, table_value: int) -> dict[str, dict[str, Any]]:
    return {"appraise": appraisal_result(declared, table_value).wire()}


def test_tax_on_the_contract_price_when_it_is_above_the_table() -> None:
    a = assess(appraisal(declared=1_500_000_000, table_value=1_206_000_000))
    assert a.taxable_value_vnd == 1_500_000_000
    assert a.registration_fee_vnd == 7_500_000  # 0.5%
    assert a.personal_income_tax_vnd == 30_000_000  # 2%
    assert a.total_vnd == 37_500_000


def test_tax_never_below_the_land_table_value() -> None:
    a = assess(appraisal(declared=100_000_000, table_value=900_000_000))
    assert (a.registration_fee_vnd, a.personal_income_tax_vnd) == (4_500_000, 18_000_000)


def test_registration_fee_is_capped_at_500_million() -> None:
    a = assess(appraisal(declared=200_000_000_000, table_value=0))
    assert a.registration_fee_vnd == 500_000_000
    assert a.personal_income_tax_vnd == 4_000_000_000


def test_rounding_to_the_dong() -> None:
    a = assess(appraisal(declared=1_000_001, table_value=0))
    assert (a.registration_fee_vnd, a.personal_income_tax_vnd) == (5_000, 20_000)  # 5000.005, 20000.02


def test_no_assessment_without_appraisal() -> None:
    with pytest.raises(AssessmentImpossible):
        assess({})


def test_no_assessment_from_an_appraisal_off_its_contract() -> None:
    # The keys tax used to read are there, but the appraisal is not an AppraisalResult.
    with pytest.raises(AssessmentImpossible, match=r"does not match vn\.gov\.result\.appraisal\.v1: parcel"):
        assess({"appraise": {"declared_price_vnd": 1, "table_value_vnd": 1}})


def test_appraisal_values_the_parcel_at_the_table_price() -> None:
    dossier = land_transfer(1, ward="phuong-3", area_m2=100.5, land_use_code="ODT")
    outcome = appraise(dossier["details"], dossier["applicant"]["id_number"], PRICES)
    assert outcome.outcome == "done"
    assert outcome.result["table_price_vnd_per_m2"] == 12_000_000
    assert outcome.result["table_value_vnd"] == 1_206_000_000
    assert outcome.result["parcel_ref"] == "phuong-3/tờ 12/thửa 301"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda d: d["details"]["parcel"].update(land_use_code="LUC", ward="phuong-1"),
            "bảng giá đất không có",
        ),
        (lambda d: d["details"]["transferee"].update(id_number=d["applicant"]["id_number"]), "trùng"),
        (lambda d: d["details"].pop("parcel"), "thiếu hoặc sai"),
    ],
)
def test_appraisal_refuses_what_cannot_be_registered(change: object, reason: str) -> None:
    dossier = land_transfer(2)
    change(dossier)  # type: ignore[operator]
    outcome = appraise(dossier["details"], dossier["applicant"]["id_number"], PRICES)
    assert outcome.outcome == "rejected"
    assert reason in outcome.note


def test_certificate_only_after_appraisal_and_assessment() -> None:
    dossier = land_transfer(3)
    assert issue_certificate(dossier["details"], {}, "TA 000001").outcome == "rejected"
    earlier = {
        "appraise": appraisal_result().wire(),
        "assess": AssessmentResult(notice_number="TB-2026-000001", total_vnd=1).wire(),
    }
    done = issue_certificate(dossier["details"], earlier, "TA 000001")
    assert done.result == {
        "certificate_serial": "TA 000001",
        "holder": "Trần Thị Bình",
        "parcel_ref": "phuong-3/tờ 12/thửa 301",
    }


def test_certificate_refuses_earlier_results_off_their_contract() -> None:
    dossier = land_transfer(3)
    earlier: dict[str, dict[str, Any]] = {"appraise": {"parcel_ref": "p"}, "assess": {"total_vnd": 1}}
    with pytest.raises(ResultRejected, match=r"appraisal\.v1"):
        issue_certificate(dossier["details"], earlier, "TA 000001")
