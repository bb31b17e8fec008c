"""Clock rules, overdue steps and the apology rule, in the domain alone (no Kafka, no SQL)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from contracts.events import (
    ApologyIssued,
    DossierEscalated,
    DossierHandedOver,
    StepCompleted,
    StepOverdue,
    SupplementRequested,
)
from services.intake.app import load_catalog
from services.intake.domain.dossier import Dossier, DossierStatus
from services.runtime.working_days import WorkingDayCalendar
from tests.dossier_samples import received_land_transfer

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = WorkingDayCalendar()
CATALOG = load_catalog()
AGENCIES = CATALOG.agencies
MONDAY = datetime(2026, 3, 9, 8, 0, tzinfo=VN)  # no holiday in sight


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=VN)


def received() -> tuple[Dossier, DossierHandedOver]:
    return received_land_transfer("HS-T-1", MONDAY)


def done(handover: DossierHandedOver, when: datetime, **result: Any) -> StepCompleted:
    return StepCompleted.answering(
        handover, outcome="done", received_at=when, completed_at=when, result=result
    )


def alarm(dossier: Dossier, now: datetime, number: str = "PXL-2026-000001") -> list[Any]:
    row = dossier.slip[-1].row
    return dossier.on_alarm(row, now=now, calendar=CALENDAR, agencies=AGENCIES, letter_number=number)


def at_tax() -> tuple[Dossier, DossierHandedOver]:
    """A dossier whose appraisal finished Tuesday 09:00, now with the tax authority."""
    dossier, appraise = received()
    (assess,) = dossier.on_step_completed(
        done(appraise, at(10, 9)), now=at(10, 9), calendar=CALENDAR, agencies=AGENCIES
    )
    assert isinstance(assess, DossierHandedOver)
    return dossier, assess


def test_appointment_and_due_times_follow_the_working_day_calendar() -> None:
    dossier, appraise = received()
    # 8 working days from Monday 08:00, office hours 07:30-11:30 and 13:00-17:00.
    assert dossier.appointment_at == at(19, 8)
    assert appraise.due_at == at(12, 8)  # 3 working days
    _, assess = at_tax()
    # Half a day (4 office hours) from Tuesday 09:00: 2.5 h before lunch, 1.5 h after.
    assert assess.due_at == at(10, 14, 30)


def test_tax_overrun_gives_one_apology_from_tax_a_working_day_ahead() -> None:
    dossier, _ = at_tax()
    assert alarm(dossier, at(10, 14)) == []  # not due yet
    overdue, apology = alarm(dossier, at(10, 14, 30))
    assert isinstance(overdue, StepOverdue)
    assert (overdue.agency, overdue.action, overdue.due_at) == ("tax", "assess", at(10, 14, 30))
    assert isinstance(apology, ApologyIssued)
    assert apology.issued_by_agency == "tax"
    assert apology.issuer_name == "Chi cục Thuế thành phố Tân An"
    assert apology.signatory_title == "Chi cục trưởng"
    assert apology.original_appointment_at == at(19, 8)
    # The new date gives tax its half day again: Thursday 08:00 + 4 office hours.
    assert apology.new_appointment_at == at(19, 13, 30)
    assert apology.working_days_notice >= 1
    assert apology.working_days_notice == Decimal("6.38")
    assert "assess" in apology.reason
    assert dossier.appointment_at == at(19, 13, 30)
    assert dossier.original_appointment_at == at(19, 8)
    # The same alarm does not fire twice.
    assert alarm(dossier, at(10, 15)) == []


def test_a_second_overrun_escalates_and_sends_no_second_apology() -> None:
    dossier, assess = at_tax()
    alarm(dossier, at(10, 14, 30))
    # Still not assessed after a second half day (Wednesday 09:00): supervisors are alerted.
    events = alarm(dossier, at(11, 9))
    assert [type(e) for e in events] == [DossierEscalated]
    assert events[0].agency == "tax"
    assert alarm(dossier, at(12, 9)) == []  # nothing left to watch on this step
    # Tax finally answers; the lateness is on the slip.
    dossier.on_step_completed(
        done(assess, at(11, 10), total_vnd=1), now=at(11, 10), calendar=CALENDAR, agencies=AGENCIES
    )
    assert dossier.slip[2].late_by_days == Decimal("0.63")  # 14:30-17:00 and 07:30-10:00: 5 of 8 h
    assert str(dossier.status) == "awaiting_payment"


def test_an_overrun_after_the_apology_escalates_too() -> None:
    dossier, assess = at_tax()
    alarm(dossier, at(10, 14, 30))
    dossier.on_step_completed(
        done(assess, at(10, 15), notice_number="TB-1", total_vnd=1),
        now=at(10, 15),
        calendar=CALENDAR,
        agencies=AGENCIES,
    )
    _, certificate = dossier.record_payment(
        notice_number="TB-1", amount_vnd=1, now=at(11, 8), calendar=CALENDAR
    )
    assert isinstance(certificate, DossierHandedOver)
    events = alarm(dossier, certificate.due_at)
    assert [type(e) for e in events] == [StepOverdue, DossierEscalated]
    assert events[1].agency == "land_registry"


def test_paying_stops_the_clock_and_the_appointment_moves_by_the_time_taken() -> None:
    dossier, assess = at_tax()
    dossier.on_step_completed(
        done(assess, at(10, 11), notice_number="TB-1", total_vnd=1),
        now=at(10, 11),
        calendar=CALENDAR,
        agencies=AGENCIES,
    )
    before = dossier.appointment_at
    assert dossier.paused_at == at(10, 11)
    paid = at(17, 10)  # a week later
    dossier.record_payment(notice_number="TB-1", amount_vnd=1, now=paid, calendar=CALENDAR)
    assert dossier.paused_at is None
    # Exactly the working time the citizen took is added.
    assert CALENDAR.working_time_between(before, dossier.appointment_at) == CALENDAR.working_time_between(
        at(10, 11), paid
    )
    assert dossier.on_time  # the citizen's time never makes the desk late


def test_a_supplement_pauses_everything_and_restarts_the_limit_in_full() -> None:
    dossier, appraise = received()
    needs = StepCompleted.answering(
        appraise,
        outcome="needs_supplement",
        received_at=at(10, 9),
        completed_at=at(10, 9),
        note="Diện tích không khớp hồ sơ địa chính",
        result={"missing_documents": ["Bản vẽ sơ đồ thửa đất"]},
    )
    (request,) = dossier.on_step_completed(needs, now=at(10, 9), calendar=CALENDAR, agencies=AGENCIES)
    assert isinstance(request, SupplementRequested)
    assert request.requested_by_agency == "land_registry"
    assert request.missing_documents == ["Bản vẽ sơ đồ thửa đất"]
    assert dossier.status is DossierStatus.AWAITING_SUPPLEMENT
    # While the citizen takes their time, the old deadline passes: nothing fires.
    assert dossier.on_alarm(1, now=at(13, 9), calendar=CALENDAR, agencies=AGENCIES, letter_number="x") == []
    assert all(row.alarm_at is None for row in dossier.slip)
    _, again = dossier.supplement(documents=["SITE_PLAN"], details=None, now=at(23, 8), calendar=CALENDAR)
    assert isinstance(again, DossierHandedOver)
    assert (again.to_agency, again.action, again.step_index) == ("land_registry", "appraise", 1)
    assert again.handoff_row == 3  # a new row on the slip: the step is redone
    assert dossier.appointment_at == CALENDAR.add_working_time(at(23, 8), Decimal(8))
    assert "SITE_PLAN" in dossier.documents
    assert [(r.to_agency, r.action, r.outcome) for r in dossier.slip] == [
        ("one_stop", "receive", "done"),
        ("land_registry", "appraise", "needs_supplement"),
        ("citizen", "supplement", "done"),
        ("land_registry", "appraise", None),
    ]


def test_the_desk_can_ask_for_a_supplement_and_a_late_answer_to_the_withdrawn_handoff_is_ignored() -> None:
    dossier, appraise = received()
    (request,) = dossier.request_supplement(
        missing=["CCCD"], reason="thiếu giấy tờ", now=at(9, 9), agencies=AGENCIES
    )
    assert isinstance(request, SupplementRequested)
    assert request.requested_by_agency == "one_stop"
    _, again = dossier.supplement(documents=[], details=None, now=at(10, 8), calendar=CALENDAR)
    assert isinstance(again, DossierHandedOver)
    # The registry's answer to the first, withdrawn, handoff changes nothing.
    late = done(appraise, at(10, 9), table_value_vnd=1)
    assert dossier.on_step_completed(late, now=at(10, 9), calendar=CALENDAR, agencies=AGENCIES) == []
    assert dossier.slip[-1].completed_at is None
