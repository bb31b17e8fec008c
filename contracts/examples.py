"""One realistic example of every event and step result version, for the catalog and the tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from contracts.events import (
    ApologyIssued,
    Applicant,
    DossierEscalated,
    DossierEvent,
    DossierHandedOver,
    DossierProgressed,
    DossierProgressedV1,
    DossierRated,
    DossierReceived,
    DossierReceivedV1,
    DossierReturned,
    DossierWithdrawn,
    FaultApologyIssued,
    FeeLine,
    HandoffWithdrawn,
    PaymentNoticeIssued,
    PaymentReceived,
    ReceivedDocument,
    SatisfactionScores,
    SlipRow,
    StepCompleted,
    StepDelayReported,
    StepOverdue,
    SupplementReceived,
    SupplementRequested,
)
from contracts.results import (
    AppraisalResult,
    AssessmentResult,
    CertificateResult,
    ConstructionPermitResult,
    DesignReviewResult,
    MortgageResult,
    NoResult,
    StepResult,
    SupplementNeeded,
)

_AT = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
_DOSSIER = "HS-260309-1A2B3C4D5E"
_APPLICANT = Applicant(
    full_name="Nguyễn Văn An", id_number="079088001234", phone="0912345678", email="an.nguyen@example.vn"
)
_DETAILS = {
    "certificate_number": "CS 123456",
    "parcel": {
        "ward": "phuong-3",
        "map_sheet": 12,
        "parcel_number": 345,
        "area_m2": 100.5,
        "land_use_code": "ODT",
    },
    "transferee": {"full_name": "Trần Thị Bình", "id_number": "079090005678"},
    "transfer_price_vnd": 1_500_000_000,
}
_APPRAISAL = AppraisalResult(
    parcel_ref="phuong-3/tờ 12/thửa 345",
    area_m2=Decimal("100.5"),
    land_use_code="ODT",
    table_price_vnd_per_m2=12_000_000,
    table_value_vnd=1_206_000_000,
    declared_price_vnd=1_500_000_000,
)

_PROGRESSED = DossierProgressed(
    dossier_id=_DOSSIER,
    procedure_code="LAND-TRANSFER",
    procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
    level="city",
    status="processing",
    received_at=_AT,
    appointment_at=datetime(2026, 3, 19, 2, 0, tzinfo=UTC),
    original_appointment_at=None,
    clock_paused_since=None,
    returned_at=None,
    on_time=True,
    slip=[
        SlipRow(
            row=1,
            step_index=1,
            from_agency="one_stop",
            to_agency="land_registry",
            action="appraise",
            budget_days=Decimal(3),
            sent_at=_AT,
            due_at=datetime(2026, 3, 12, 2, 0, tzinfo=UTC),
            received_at=None,
            completed_at=None,
            outcome=None,
            late_by_days=Decimal(0),
            overdue_at=None,
            note="",
        )
    ],
    updated_at=_AT,
)


EXAMPLES: dict[str, DossierEvent] = {
    e.TYPE: e
    for e in (
        DossierReceivedV1(
            dossier_id=_DOSSIER,
            procedure_code="LAND-TRANSFER",
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            level="city",
            applicant=_APPLICANT,
            documents=["REGISTRATION_FORM", "TRANSFER_CONTRACT"],
            received_at=_AT,
            appointment_at=datetime(2026, 3, 19, 2, 0, tzinfo=UTC),
            statutory_limit_days=Decimal(8),
            fees_vnd=500_000,
            return_place="Bộ phận Một cửa, UBND thành phố Tân An",
        ),
        DossierReceived(
            dossier_id=_DOSSIER,
            procedure_code="LAND-TRANSFER",
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            level="city",
            applicant=_APPLICANT,
            documents=[
                ReceivedDocument(code="TRANSFER_CONTRACT", name="Hợp đồng chuyển nhượng quyền sử dụng đất"),
            ],
            received_at=_AT,
            appointment_at=datetime(2026, 3, 19, 2, 0, tzinfo=UTC),
            statutory_limit_days=Decimal(8),
            fees=[FeeLine(name="Phí thẩm định hồ sơ", amount_vnd=500_000)],
            return_place="Bộ phận Một cửa, UBND thành phố Tân An",
            details=_DETAILS,
        ),
        DossierHandedOver(
            dossier_id=_DOSSIER,
            procedure_code="LAND-TRANSFER",
            step_index=2,
            from_agency="land_registry",
            to_agency="tax",
            action="assess",
            budget_days=Decimal("0.5"),
            sent_at=_AT,
            due_at=datetime(2026, 3, 9, 6, 0, tzinfo=UTC),
            applicant=_APPLICANT,
            details=_DETAILS,
            results={"appraise": _APPRAISAL.wire()},
        ),
        StepCompleted(
            dossier_id=_DOSSIER,
            step_index=1,
            agency="land_registry",
            action="appraise",
            outcome="done",
            received_at=_AT,
            completed_at=_AT,
            note="hồ sơ đủ điều kiện chuyển nhượng",
            result=_APPRAISAL.wire(),
        ),
        PaymentNoticeIssued(
            dossier_id=_DOSSIER,
            notice_number="TB-2026-000042",
            applicant=_APPLICANT,
            taxable_value_vnd=1_500_000_000,
            registration_fee_vnd=7_500_000,
            personal_income_tax_vnd=30_000_000,
            total_vnd=37_500_000,
            issued_at=_AT,
            pay_by=datetime(2026, 4, 8, 2, 0, tzinfo=UTC),
        ),
        DossierReturned(
            dossier_id=_DOSSIER,
            procedure_code="LAND-TRANSFER",
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            applicant=_APPLICANT,
            outcome="approved",
            returned_at=datetime(2026, 3, 18, 8, 0, tzinfo=UTC),
            appointment_at=datetime(2026, 3, 19, 2, 0, tzinfo=UTC),
            on_time=True,
            summary="Hồ sơ đã giải quyết xong; mời ông/bà nhận kết quả.",
            result={"certificate_serial": "TA 100042", "holder": "Trần Thị Bình"},
        ),
        PaymentReceived(dossier_id=_DOSSIER, received_at=datetime(2026, 3, 13, 3, 0, tzinfo=UTC)),
        SupplementReceived(
            dossier_id=_DOSSIER,
            documents=["LAND_CERTIFICATE"],
            details=None,
            received_at=datetime(2026, 3, 16, 2, 0, tzinfo=UTC),
        ),
        SupplementRequested(
            dossier_id=_DOSSIER,
            requested_by_agency="land_registry",
            requested_by_name="Chi nhánh Văn phòng Đăng ký đất đai thành phố Tân An",
            applicant=_APPLICANT,
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            missing_documents=["Bản vẽ sơ đồ thửa đất có xác nhận"],
            reason="Diện tích trên hợp đồng không khớp với hồ sơ địa chính",
            requested_at=_AT,
        ),
        StepOverdue(
            dossier_id=_DOSSIER,
            step_index=2,
            agency="tax",
            action="assess",
            budget_days=Decimal("0.5"),
            due_at=datetime(2026, 3, 12, 6, 0, tzinfo=UTC),
            detected_at=datetime(2026, 3, 12, 6, 0, tzinfo=UTC),
            appointment_at=datetime(2026, 3, 19, 2, 0, tzinfo=UTC),
        ),
        ApologyIssued(
            dossier_id=_DOSSIER,
            letter_number="PXL-2026-000007",
            issued_by_agency="tax",
            issuer_name="Chi cục Thuế thành phố Tân An",
            signatory_title="Chi cục trưởng",
            applicant=_APPLICANT,
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            received_at=_AT,
            original_appointment_at=datetime(2026, 3, 19, 2, 0, tzinfo=UTC),
            new_appointment_at=datetime(2026, 3, 20, 2, 0, tzinfo=UTC),
            reason="Chi cục Thuế chưa hoàn thành việc xác định nghĩa vụ tài chính đúng hạn",
            issued_at=datetime(2026, 3, 12, 6, 0, tzinfo=UTC),
            working_days_notice=Decimal(4),
        ),
        FaultApologyIssued(
            dossier_id=_DOSSIER,
            letter_number="PXL-2026-000008",
            fault="repeat_supplement_request",
            issued_by_agency="land_registry",
            issuer_name="Văn phòng đăng ký đất đai chi nhánh Tân An",
            signatory_title="Giám đốc",
            applicant=_APPLICANT,
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            received_at=_AT,
            appointment_at=datetime(2026, 3, 19, 2, 0, tzinfo=UTC),
            reason="Hồ sơ đã được yêu cầu bổ sung một lần; yêu cầu bổ sung lần thứ hai là sai sót",
            authority="Quyết định 11/2020/QĐ-UBND tỉnh Bắc Kạn, Điều 3 khoản 2",
            issued_at=datetime(2026, 3, 13, 3, 0, tzinfo=UTC),
        ),
        DossierWithdrawn(
            dossier_id=_DOSSIER,
            applicant=_APPLICANT,
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            received_at=_AT,
            withdrawn_at=datetime(2026, 3, 11, 2, 0, tzinfo=UTC),
            reason="Người nộp hồ sơ đề nghị rút hồ sơ",
            requested_by="citizen",
        ),
        HandoffWithdrawn(
            dossier_id=_DOSSIER,
            step_index=1,
            agency="land_registry",
            handoff_row=1,
            reason="Người nộp hồ sơ đề nghị rút hồ sơ",
            withdrawn_at=datetime(2026, 3, 11, 2, 0, tzinfo=UTC),
        ),
        StepDelayReported(
            dossier_id=_DOSSIER,
            step_index=1,
            agency="land_registry",
            action="appraise",
            handoff_row=1,
            reason="Chờ kết quả đo đạc lại thửa đất",
            expected_at=datetime(2026, 3, 16, 10, 0, tzinfo=UTC),
            reported_at=datetime(2026, 3, 10, 3, 0, tzinfo=UTC),
        ),
        DossierRated(
            dossier_id=_DOSSIER,
            procedure_code="LAND-TRANSFER",
            agencies=["one_stop", "land_registry", "tax"],
            scores=SatisfactionScores(access=5, procedure=4, officials=5, result=5, feedback=4),
            rated_at=datetime(2026, 3, 20, 3, 0, tzinfo=UTC),
        ),
        _PROGRESSED,
        DossierProgressedV1(**_PROGRESSED.model_dump(), applicant=_APPLICANT),
        DossierEscalated(
            dossier_id=_DOSSIER,
            agency="land_registry",
            step_index=5,
            action="issue_certificate",
            reason="hồ sơ đã hẹn lại một lần nhưng tiếp tục trễ hạn",
            appointment_at=datetime(2026, 3, 20, 2, 0, tzinfo=UTC),
            detected_at=datetime(2026, 3, 20, 2, 0, tzinfo=UTC),
        ),
    )
}
"""By CloudEvents type; every type in ``EVENT_TYPES`` has one (a test checks it)."""

RESULT_EXAMPLES: dict[str, StepResult] = {
    r.NAME: r
    for r in (
        _APPRAISAL,
        AssessmentResult(notice_number="TB-2026-000042", total_vnd=37_500_000),
        CertificateResult(
            certificate_serial="TA 100042", holder="Trần Thị Bình", parcel_ref="phuong-3/tờ 12/thửa 345"
        ),
        MortgageResult(certificate_number="CT 654321", mortgagee="Ngân hàng Nông nghiệp"),
        SupplementNeeded(missing_documents=["Bản gốc Giấy chứng nhận đã cấp"]),
        NoResult(),
        DesignReviewResult(
            parcel_ref="phuong-3/tờ 12/thửa 345",
            built_area_m2=Decimal("72"),
            storeys=3,
            total_floor_area_m2=Decimal("216"),
            building_density=Decimal("0.72"),
        ),
        ConstructionPermitResult(
            permit_number="GPXD-2026-000042",
            parcel_ref="phuong-3/tờ 12/thửa 345",
            storeys=3,
            total_floor_area_m2=Decimal("216"),
            valid_until=date(2027, 3, 23),
        ),
    )
}
"""By registry name; every type in ``RESULT_TYPES`` has one (a test checks it)."""
