"""The desk's routing rules, driven from the catalog, with no Kafka and no SQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts.events import (
    DossierHandedOver,
    DossierReceived,
    DossierReturned,
    StepCompleted,
)
from services.intake.app import load_catalog
from services.intake.domain.catalog import Catalog, CatalogError, Procedure
from services.intake.domain.dossier import (
    Dossier,
    DossierStatus,
    PaymentRefused,
    SubmissionRefused,
    TransitionRefused,
)
from services.runtime.working_days import WorkingDayCalendar
from tests.dossier_samples import applicant, land_transfer

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = WorkingDayCalendar()
CATALOG = load_catalog()
AGENCIES = CATALOG.agencies


def receive(procedure: Procedure | None, filed: dict[str, Any], now: datetime) -> tuple[Dossier, list[Any]]:
    from contracts.events import Applicant

    return Dossier.receive(
        dossier_id="HS-TEST-1",
        procedure=procedure,
        procedure_code=filed["procedure_code"],
        applicant=Applicant.model_validate(filed["applicant"]),
        documents=filed["documents"],
        details=filed["details"],
        now=now,
        calendar=CALENDAR,
    )


def complete(handover: DossierHandedOver, now: datetime, **result: Any) -> StepCompleted:
    return StepCompleted.answering(handover, outcome="done", received_at=now, completed_at=now, result=result)


def test_catalog_routes_land_transfer_through_registry_and_tax() -> None:
    land = CATALOG.get("LAND-TRANSFER")
    assert land is not None
    assert [(s.agency, s.action) for s in land.steps] == [
        ("one_stop", "receive"),
        ("land_registry", "appraise"),
        ("tax", "assess"),
        ("citizen", "pay"),
        ("one_stop", "receive_payment_proof"),
        ("land_registry", "issue_certificate"),
        ("one_stop", "return_result"),
    ]
    assert {"land_registry", "tax"} <= CATALOG.consumers()
    ward = CATALOG.get("CERTIFIED-COPY")
    assert ward is not None
    assert ward.level == "ward"
    assert {s.agency for s in ward.steps} == {"one_stop"}


def test_received_just_before_tet_2026_is_promised_after_the_break() -> None:
    # Thu 12 Feb 2026 09:00. Tết Bính Ngọ closes offices Sat 14 - Sun 22 Feb. Eight working
    # days: Fri 13, Mon 23, Tue 24, Wed 25, Thu 26, Fri 27, Mon 2 Mar, Tue 3 Mar -> 09:00.
    dossier, events = receive(
        CATALOG.get("LAND-TRANSFER"), land_transfer(1), datetime(2026, 2, 12, 9, tzinfo=VN)
    )
    assert dossier.appointment_at == datetime(2026, 3, 3, 9, tzinfo=VN)
    received = events[0]
    assert isinstance(received, DossierReceived)
    assert received.appointment_at == datetime(2026, 3, 3, 9, tzinfo=VN)
    # The appraisal (3 working days) handed over the same morning is due Wed 24 Feb 09:00.
    handover = events[1]
    assert isinstance(handover, DossierHandedOver)
    assert (handover.to_agency, handover.action) == ("land_registry", "appraise")
    assert handover.due_at == datetime(2026, 2, 24, 9, tzinfo=VN)


def test_a_land_transfer_walks_its_whole_route() -> None:
    t = datetime(2026, 3, 9, 8, tzinfo=VN)
    dossier, events = receive(CATALOG.get("LAND-TRANSFER"), land_transfer(2), t)
    assert dossier.status is DossierStatus.PROCESSING
    appraise = events[-1]
    assert isinstance(appraise, DossierHandedOver)

    t += timedelta(days=1)
    (assess,) = dossier.on_step_completed(
        complete(appraise, t, table_value_vnd=1), now=t, calendar=CALENDAR, agencies=AGENCIES
    )
    assert isinstance(assess, DossierHandedOver)
    assert (assess.from_agency, assess.to_agency) == ("land_registry", "tax")
    assert assess.results == {"appraise": {"table_value_vnd": 1}}

    t += timedelta(hours=2)
    assert (
        dossier.on_step_completed(
            complete(assess, t, notice_number="TB-2026-000005", total_vnd=5),
            now=t,
            calendar=CALENDAR,
            agencies=AGENCIES,
        )
        == []
    )
    assert str(dossier.status) == "awaiting_payment"
    assert dossier.slip[-1].due_at is None  # the citizen's paying time is not counted

    t += timedelta(days=5)
    # The treasury's confirmation must name the notice and its amount.
    with pytest.raises(PaymentRefused, match="not 4 VND"):
        dossier.record_payment(notice_number="TB-2026-000005", amount_vnd=4, now=t, calendar=CALENDAR)
    with pytest.raises(PaymentRefused, match="was not issued"):
        dossier.record_payment(notice_number="TB-2026-000006", amount_vnd=5, now=t, calendar=CALENDAR)
    assert str(dossier.status) == "awaiting_payment"
    _, certificate = dossier.record_payment(
        notice_number="TB-2026-000005", amount_vnd=5, now=t, calendar=CALENDAR
    )
    assert isinstance(certificate, DossierHandedOver)
    assert (certificate.to_agency, certificate.action) == ("land_registry", "issue_certificate")
    assert [h.action for h in dossier.slip] == [
        "receive",
        "appraise",
        "assess",
        "pay",
        "receive_payment_proof",
        "issue_certificate",
    ]

    t += timedelta(days=1)
    (returned,) = dossier.on_step_completed(
        complete(certificate, t, certificate_serial="TA 1"), now=t, calendar=CALENDAR, agencies=AGENCIES
    )
    assert isinstance(returned, DossierReturned)
    assert returned.outcome == "approved"
    assert str(dossier.status) == "returned"
    assert all(h.completed_at is not None for h in dossier.slip)


def test_refusal_by_an_agency_returns_the_dossier_as_rejected() -> None:
    t = datetime(2026, 3, 9, 8, tzinfo=VN)
    dossier, events = receive(CATALOG.get("LAND-TRANSFER"), land_transfer(3), t)
    refusal = StepCompleted.answering(
        events[-1], outcome="rejected", received_at=t, completed_at=t, note="thửa đất đang tranh chấp"
    )
    (returned,) = dossier.on_step_completed(refusal, now=t, calendar=CALENDAR, agencies=AGENCIES)
    assert isinstance(returned, DossierReturned)
    assert returned.outcome == "rejected"
    assert "thửa đất đang tranh chấp" in returned.summary
    assert dossier.status is DossierStatus.REJECTED
    assert dossier.slip[-1].action == "return_result"


def test_out_of_turn_events_are_refused() -> None:
    t = datetime(2026, 3, 9, 8, tzinfo=VN)
    dossier, events = receive(CATALOG.get("LAND-TRANSFER"), land_transfer(4), t)
    wrong_step = complete(events[-1], t).model_copy(update={"step_index": 5})
    with pytest.raises(TransitionRefused):
        dossier.on_step_completed(wrong_step, now=t, calendar=CALENDAR, agencies=AGENCIES)
    with pytest.raises(TransitionRefused, match="not awaiting payment"):
        dossier.record_payment(notice_number="TB-1", amount_vnd=1, now=t, calendar=CALENDAR)


def test_submission_lists_every_problem() -> None:
    filed = land_transfer(5)
    filed["documents"] = ["REGISTRATION_FORM"]
    filed["details"]["transfer_price_vnd"] = -1
    with pytest.raises(SubmissionRefused) as refused:
        receive(CATALOG.get("LAND-TRANSFER"), filed, datetime(2026, 3, 9, 8, tzinfo=VN))
    assert len(refused.value.problems) == 5  # four documents and one detail
    with pytest.raises(SubmissionRefused, match="unknown procedure"):
        receive(None, filed | {"procedure_code": "X"}, datetime(2026, 3, 9, 8, tzinfo=VN))


def test_a_new_agency_is_a_catalog_change_only() -> None:
    data = CATALOG.model_dump(mode="json")
    construction = dict(data["procedures"][1])  # the ward procedure, re-routed
    construction |= {
        "code": "BUILDING-PERMIT",
        "statutory_limit_days": "15",
        "steps": [
            {"agency": "one_stop", "action": "receive", "budget_days": "0.5"},
            {"agency": "construction", "action": "inspect_site", "budget_days": "14.5"},
            {"agency": "one_stop", "action": "return_result", "budget_days": "0"},
        ],
        "fees": [],
    }
    agencies = data["agencies"] | {
        "construction": {"name": "Phòng Quản lý đô thị", "head_title": "Trưởng phòng"}
    }
    actions = data["actions"] | {"inspect_site": "Kiểm tra hiện trạng"}
    catalog = Catalog.from_mapping(
        data | {"agencies": agencies, "actions": actions, "procedures": [*data["procedures"], construction]}
    )
    assert "construction" in catalog.consumers()
    assert catalog.agencies["construction"].display_name == "Phòng Quản lý đô thị"
    with pytest.raises(CatalogError, match=r"actions \['inspect_site'\] are routed but not named"):
        Catalog.from_mapping(data | {"agencies": agencies, "procedures": [*data["procedures"], construction]})
    filed = {
        "procedure_code": "BUILDING-PERMIT",
        "applicant": applicant(6),
        "documents": ["ORIGINAL_DOCUMENT", "COPY_TO_CERTIFY"],
        "details": {"document_title": "Bản vẽ", "pages": 2},
    }
    _, events = receive(catalog.get("BUILDING-PERMIT"), filed, datetime(2026, 3, 9, 8, tzinfo=VN))
    assert isinstance(events[-1], DossierHandedOver)
    assert events[-1].to_agency == "construction"
    assert events[-1].budget_days == Decimal("14.5")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(statutory_limit_days="9"), "add up to 8"),
        (lambda p: p["steps"].insert(0, p["steps"].pop(1)), "starts with the one-stop desk"),
        (lambda p: p["steps"].pop(), "ends with the one-stop desk"),
        (lambda p: p["steps"][1].update(agency="one_stop"), "cannot 'appraise'"),
        (lambda p: p.update(details_schema={"type": "no-such-type"}), "no-such-type"),
    ],
)
def test_an_inconsistent_catalog_is_refused_with_the_reason(change: Any, message: str) -> None:
    data = CATALOG.model_dump(mode="json")
    change(data["procedures"][0])
    with pytest.raises(CatalogError, match=message):
        Catalog.from_mapping(data)


def test_fees_per_page() -> None:
    ward = CATALOG.get("CERTIFIED-COPY")
    assert ward is not None
    assert ward.fee_total({"pages": 7, "document_title": "x"}) == 14_000
