"""The tax authority's rules for a land-use-right transfer: what the citizen owes.

Rates (statutory):
- registration fee (lệ phí trước bạ) on land: 0.5% of the value (Decree 10/2022/NĐ-CP art. 8),
  at most 500 million VND per asset and registration;
- personal income tax on transferring real estate: 2% of the transfer price (Law on Personal
  Income Tax art. 14; Circular 111/2013/TT-BTC art. 12).
Both bases are the contract price, but never less than the provincial land price table value
(Decree 10/2022 art. 7; Circular 92/2015/TT-BTC art. 17), which the land registry appraised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from contracts.events import DossierHandedOver, PaymentNoticeIssued, StepCompleted
from contracts.results import AppraisalResult, AssessmentResult, ResultRejected, earlier_result

REGISTRATION_FEE_RATE = Decimal("0.005")
REGISTRATION_FEE_CAP_VND = 500_000_000
PERSONAL_INCOME_TAX_RATE = Decimal("0.02")
PAYMENT_PERIOD = timedelta(days=30)
"""Citizens have 30 days from the notice to pay (Decree 126/2020/NĐ-CP art. 18)."""


class AssessmentImpossible(ValueError):
    """The handoff lacks what an assessment needs (no appraisal result, or one off its contract)."""


@dataclass(frozen=True)
class Assessment:
    """The financial obligations of one transfer."""

    taxable_value_vnd: int
    registration_fee_vnd: int
    personal_income_tax_vnd: int

    @property
    def total_vnd(self) -> int:
        """Everything the citizen must pay."""
        return self.registration_fee_vnd + self.personal_income_tax_vnd

    def pay_by(self, issued_at: datetime) -> datetime:
        """The deadline printed on the payment notice."""
        return issued_at + PAYMENT_PERIOD


def _vnd(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), ROUND_HALF_UP))


def assess(results: dict[str, dict[str, Any]]) -> Assessment:
    """Assess a transfer from the land registry's appraisal (read as its contract)."""
    if not results.get("appraise"):
        raise AssessmentImpossible("no appraisal from the land registry")
    try:
        appraisal = earlier_result(results, "appraise", AppraisalResult)
    except ResultRejected as exc:
        raise AssessmentImpossible(str(exc)) from exc
    value = max(appraisal.declared_price_vnd, appraisal.table_value_vnd)
    return Assessment(
        taxable_value_vnd=value,
        registration_fee_vnd=min(_vnd(value * REGISTRATION_FEE_RATE), REGISTRATION_FEE_CAP_VND),
        personal_income_tax_vnd=_vnd(value * PERSONAL_INCOME_TAX_RATE),
    )


def notice_and_answer(
    handover: DossierHandedOver, assessment: Assessment, *, notice_number: str, now: datetime
) -> tuple[PaymentNoticeIssued, StepCompleted]:
    """The payment notice for the citizen and the step's answer to the desk, issued ``now``."""
    notice = PaymentNoticeIssued(
        dossier_id=handover.dossier_id,
        notice_number=notice_number,
        applicant=handover.applicant,
        taxable_value_vnd=assessment.taxable_value_vnd,
        registration_fee_vnd=assessment.registration_fee_vnd,
        personal_income_tax_vnd=assessment.personal_income_tax_vnd,
        total_vnd=assessment.total_vnd,
        issued_at=now,
        pay_by=assessment.pay_by(now),
    )
    done = StepCompleted.answering(
        handover,
        outcome="done",
        received_at=now,
        completed_at=now,
        note=f"đã ra thông báo nộp tiền {notice_number}",
        result=AssessmentResult(notice_number=notice_number, total_vnd=assessment.total_vnd),
    )
    return notice, done
