"""CloudEvents binary mode on Kafka records: what is accepted and how bad records are named."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from contracts.envelope import MAX_EVENT_BYTES, CloudEvent, EnvelopeError
from contracts.events import (
    Applicant,
    DossierReceived,
    DossierReceivedV1,
    FeeLine,
    ReceivedDocument,
    StepCompleted,
)
from contracts.upcasting import upcast
from services.notification.domain.notices import render, vnd

WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
APPLICANT = Applicant(
    full_name="Lê Thị Cúc", id_number="079088001234", phone="0912345678", email="c@example.vn"
)


def received() -> DossierReceived:
    return DossierReceived(
        dossier_id="HS-1",
        procedure_code="LAND-TRANSFER",
        procedure_name="Đăng ký biến động",
        level="city",
        applicant=APPLICANT,
        documents=[ReceivedDocument(code="TRANSFER_CONTRACT", name="Hợp đồng chuyển nhượng")],
        received_at=WHEN,
        appointment_at=datetime(2026, 3, 19, 10, 0, tzinfo=UTC),
        statutory_limit_days=Decimal(8),
        fees=[FeeLine(name="Phí thẩm định", amount_vnd=500_000), FeeLine(name="Phí khác", amount_vnd=25_000)],
        return_place="Bộ phận Một cửa",
    )


def received_v1() -> DossierReceivedV1:
    return DossierReceivedV1(
        dossier_id="HS-1",
        procedure_code="LAND-TRANSFER",
        procedure_name="Đăng ký biến động",
        level="city",
        applicant=APPLICANT,
        documents=["TRANSFER_CONTRACT"],
        received_at=WHEN,
        appointment_at=datetime(2026, 3, 19, 10, 0, tzinfo=UTC),
        statutory_limit_days=Decimal(8),
        fees_vnd=500_000,
        return_place="Bộ phận Một cửa",
    )


def record(event: CloudEvent) -> dict[str, object]:
    return {"key": event.key, "value": event.value(), "headers": event.headers()}


def test_round_trip_keeps_attributes_data_and_trace_context() -> None:
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    event = CloudEvent.wrap(received(), source="/vn/gov/agencies/one_stop", time=WHEN, extra_headers=trace)
    headers = dict(event.headers())
    assert headers["ce_type"] == b"vn.gov.dossier.received.v2"
    assert headers["ce_subject"] == b"HS-1"
    assert headers["content-type"] == b"application/json"
    assert event.key == b"HS-1"
    back = CloudEvent.from_record(**record(event))  # type: ignore[arg-type]
    assert back.data == event.data
    assert (back.id, back.source, back.time) == (event.id, event.source, event.time)
    assert back.extra_headers == trace


def bad(
    reason: str, *, key: bytes | None = b"HS-1", value: bytes | None = None, drop: str = "", **headers: str
) -> None:
    event = CloudEvent.wrap(received(), source="/x", time=WHEN)
    h = {n: v.decode() for n, v in event.headers() if n != drop} | headers
    with pytest.raises(EnvelopeError) as error:
        CloudEvent.from_record(
            key=key,
            value=event.value() if value is None else value,
            headers=[(n, v.encode()) for n, v in h.items()],
        )
    assert error.value.reason == reason, error.value


def test_bad_records_are_named_precisely() -> None:
    bad("oversized", value=b" " * (MAX_EVENT_BYTES + 1))
    bad("schema-invalid", value=b"{not json")
    bad("schema-invalid", value=b'{"dossier_id": "HS-1"}')
    bad("unknown-type", ce_type="vn.gov.dossier.exploded.v1")
    bad("unknown-version", ce_type="vn.gov.dossier.received.v7")
    bad("wrong-specversion", ce_specversion="0.3")
    bad("not-a-cloudevent", drop="ce_id")
    bad("subject-mismatch", key=b"HS-2")
    bad("bad-time", ce_time="yesterday")


def test_step_completed_answers_its_handover() -> None:
    from contracts.events import DossierHandedOver

    handover = DossierHandedOver(
        dossier_id="HS-1",
        procedure_code="P",
        step_index=2,
        from_agency="land_registry",
        to_agency="tax",
        action="assess",
        budget_days=0.5,
        sent_at=WHEN,
        due_at=WHEN,
        applicant=APPLICANT,
        details={},
    )
    done = StepCompleted.answering(handover, outcome="done", received_at=WHEN, completed_at=WHEN)
    assert (done.step_index, done.agency, done.action) == (2, "tax", "assess")


def test_receipt_is_rendered_in_vietnam_time_with_vietnamese_money() -> None:
    notice = render(received())
    assert notice is not None
    assert notice.kind == "receipt"
    assert "Thời gian nhận hồ sơ: 08 giờ 00 phút, ngày 09/03/2026" in notice.body
    assert "Thời gian trả kết quả giải quyết hồ sơ: 17 giờ 00 phút, ngày 19/03/2026" in notice.body
    assert "1. Hợp đồng chuyển nhượng" in notice.body
    assert "- Phí thẩm định: 500.000 đồng" in notice.body
    assert "Tổng cộng: 525.000 đồng" in notice.body
    assert vnd(37_500_000) == "37.500.000 đồng"


def test_v1_records_are_read_and_upcast_to_v2() -> None:
    old = CloudEvent.wrap(received_v1(), source="/vn/gov/agencies/one_stop", time=WHEN)
    assert dict(old.headers())["ce_type"] == b"vn.gov.dossier.received.v1"
    read = CloudEvent.from_record(**record(old))  # type: ignore[arg-type]
    assert isinstance(read.data, DossierReceivedV1)
    new = upcast(read.data)
    assert isinstance(new, DossierReceived)
    assert new.documents == [ReceivedDocument(code="TRANSFER_CONTRACT", name="TRANSFER_CONTRACT")]
    assert new.fees_total_vnd == 500_000
    assert upcast(new) is new  # the newest version is left alone
    notice = render(new)
    assert notice is not None
    assert "Tổng cộng: 500.000 đồng" in notice.body
