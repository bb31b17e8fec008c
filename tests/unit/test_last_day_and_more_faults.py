"""The last-working-day warning, the faults an agency or the desk reports, and who signs a refusal.

Domain and use cases on fakes (no Kafka, no SQL); the end-to-end tests run them on the real stack.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import get_args

import pytest

from contracts import topics
from contracts.events import (
    DocumentLossReported,
    DossierReturned,
    FaultApologyIssued,
    FaultKind,
    StepCompleted,
    StepDelayReported,
    StepDueSoon,
    StepOverdue,
)
from contracts.examples import RESULT_EXAMPLES
from services.console.domain.labels import APOLOGY_KINDS
from services.intake.app import load_catalog
from services.intake.domain.dossier import Dossier, DossierStatus, TransitionRefused
from services.intake.domain.faults import FAULT_RULES
from services.intake.handlers import _record, record_answer, record_report
from services.runtime.consumer import EventRejected
from services.runtime.working_days import VIETNAM_TZ, WorkingDayCalendar
from tests.dossier_samples import received_land_transfer
from tests.fakes import FakeWork, InMemoryDossiers

CALENDAR = WorkingDayCalendar()
CATALOG = load_catalog()
MONDAY = datetime(2026, 3, 9, 8, tzinfo=VIETNAM_TZ)
HOUR = timedelta(hours=1)


def fire(dossier: Dossier, at: datetime) -> list[object]:
    """What the deadline watcher does for the registry's row at ``at``."""
    return list(
        dossier.on_alarm(1, now=at, calendar=CALENDAR, agencies=CATALOG.agencies, letter_number="PXL-1")
    )


def test_a_three_day_step_is_warned_when_its_last_working_day_begins_then_watched_to_its_due_time() -> None:
    dossier, _ = received_land_transfer("HS-D-1", MONDAY)
    row = dossier.slip[1]
    assert row.due_at == CALENDAR.add_working_time(MONDAY, Decimal(3))
    last_day = CALENDAR.add_working_time(MONDAY, Decimal(2))
    assert row.alarm_at == last_day

    assert fire(dossier, last_day - HOUR) == []  # not yet
    [warning] = fire(dossier, last_day)
    assert isinstance(warning, StepDueSoon)
    assert (warning.agency, warning.handoff_row, warning.due_at) == ("land_registry", 1, row.due_at)
    assert row.warned_at == last_day
    assert row.alarm_at == row.due_at  # the overdue check is still to come
    assert fire(dossier, last_day + HOUR) == []  # warned once

    overdue = fire(dossier, row.due_at)
    assert [type(e) for e in overdue][:1] == [StepOverdue]
    assert dossier.apologised_at == row.due_at


def test_a_half_day_step_has_no_warning_and_a_delay_reported_first_replaces_it() -> None:
    tax = CATALOG.get("LAND-TRANSFER")
    assert tax is not None
    assess = next(s for s in tax.steps if s.action == "assess")
    assert assess.first_alarm_days == assess.budget_days == Decimal("0.5")  # warned only by its due time
    assert CATALOG.soonest_first_alarm() == Decimal("0.5")  # replays stop no more often than before

    dossier, handover = received_land_transfer("HS-D-2", MONDAY)
    row = dossier.slip[1]
    assert row.due_at is not None
    dossier.on_delay_reported(
        StepDelayReported(
            dossier_id=dossier.id,
            step_index=handover.step_index,
            agency="land_registry",
            action=handover.action,
            handoff_row=row.row,
            reason="chờ đo đạc lại",
            expected_at=row.due_at + timedelta(days=2),
            reported_at=MONDAY + HOUR,
        ),
        now=MONDAY + HOUR,
        calendar=CALENDAR,
        agencies=CATALOG.agencies,
    )
    # The agency knows it is late and said so: no last-day warning, the alarm waits for its date.
    assert fire(dossier, CALENDAR.add_working_time(MONDAY, Decimal(2))) == []
    assert row.warned_at is None


async def test_the_warning_goes_to_the_agency_and_to_the_desks_readers() -> None:
    dossier, _ = received_land_transfer("HS-D-3", MONDAY)
    dossiers = InMemoryDossiers({dossier.id: dossier})
    last_day = CALENDAR.add_working_time(MONDAY, Decimal(2))
    work = FakeWork(now=last_day)

    events = dossier.on_alarm(1, now=last_day, calendar=CALENDAR, agencies=CATALOG.agencies, letter_number="")
    await _record(work, dossiers, dossier, events)
    warned = [topic for topic, event in work.published if isinstance(event, StepDueSoon)]
    assert sorted(warned) == sorted([topics.handoffs("land_registry"), topics.INTAKE_EVENTS])


def loss(dossier_id: str, documents: list[str], *, agency: str = "land_registry") -> DocumentLossReported:
    return DocumentLossReported(
        dossier_id=dossier_id,
        agency=agency,
        documents=documents,
        damaged=True,
        reason="bản chính bị rách khi scan",
        reported_at=MONDAY + HOUR,
    )


async def test_a_lost_document_owes_one_letter_per_loss_from_the_agency_that_lost_it() -> None:
    dossier, _ = received_land_transfer("HS-L-1", MONDAY)
    dossiers = InMemoryDossiers({dossier.id: dossier})

    async def report(event: DocumentLossReported) -> list[FaultApologyIssued]:
        work = FakeWork(now=MONDAY + 2 * HOUR)
        published = await record_report(work, dossiers, event, calendar=CALENDAR, agencies=CATALOG.agencies)
        return [e for e in published if isinstance(e, FaultApologyIssued)]

    [letter] = await report(loss(dossier.id, ["LAND_CERTIFICATE"]))
    assert (letter.fault, letter.issued_by_agency) == ("document_lost", "land_registry")
    assert letter.letter_number  # numbered by the desk as it records it
    assert "hư hỏng: LAND_CERTIFICATE" in letter.reason
    assert "Nghị định 61/2018/NĐ-CP, Điều 21 khoản 2" in letter.authority
    assert await report(loss(dossier.id, ["LAND_CERTIFICATE"])) == []  # the same loss again: no letter
    [second] = await report(loss(dossier.id, ["TRANSFER_CONTRACT"]))  # another document: another fault
    assert second.letter_number != letter.letter_number

    # Tax never had the dossier: its report is a dead letter, with the reason.
    with pytest.raises(EventRejected, match="tax had no step"):
        await report(loss(dossier.id, ["LAND_CERTIFICATE"], agency="tax"))


def returned_land_transfer(dossier_id: str) -> Dossier:
    """A land transfer the registry refused at once (returned, so a result exists)."""
    dossier, handover = received_land_transfer(dossier_id, MONDAY)
    answer = StepCompleted.answering(
        handover, outcome="rejected", received_at=MONDAY, completed_at=MONDAY + HOUR, note="tranh chấp"
    )
    dossier.on_step_completed(answer, now=MONDAY + HOUR, calendar=CALENDAR, agencies=CATALOG.agencies)
    return dossier


def test_an_agency_refusal_names_the_agency_and_a_desk_refusal_the_desk() -> None:
    dossier, handover = received_land_transfer("HS-R-2", MONDAY)
    answer = StepCompleted.answering(
        handover, outcome="rejected", received_at=MONDAY, completed_at=MONDAY + HOUR, note="tranh chấp"
    )
    [returned] = dossier.on_step_completed(
        answer, now=MONDAY + HOUR, calendar=CALENDAR, agencies=CATALOG.agencies
    )
    assert isinstance(returned, DossierReturned)
    assert (returned.outcome, returned.refused_by) == ("rejected", "land_registry")

    desk, _ = received_land_transfer("HS-R-3", MONDAY)
    refused = desk.refuse(reason="hồ sơ giả mạo", now=MONDAY + HOUR, calendar=CALENDAR)[-1]
    assert isinstance(refused, DossierReturned)
    assert refused.refused_by == "one_stop"


def test_a_corrected_result_owes_a_letter_only_once_a_result_was_issued() -> None:
    dossier, _ = received_land_transfer("HS-C-1", MONDAY)
    with pytest.raises(TransitionRefused, match="no result was issued"):
        dossier.record_fault(
            "result_corrected",
            "land_registry",
            detail="diện tích",
            subject="diện tích",
            now=MONDAY,
            agencies=CATALOG.agencies,
        )
    with pytest.raises(TransitionRefused, match="detected by the desk itself"):
        dossier.record_fault(
            "repeat_supplement_request",
            "land_registry",
            detail="x",
            subject="x",
            now=MONDAY,
            agencies=CATALOG.agencies,
        )

    # A returned dossier (refused here, for brevity) whose result the registry corrects.
    returned = returned_land_transfer("HS-C-2")
    assert returned.status is DossierStatus.REJECTED
    returned.status = DossierStatus.RETURNED
    correction = "Diện tích ghi trên giấy chứng nhận là 120,5 m², không phải 125,0 m²"
    [letter] = returned.record_fault(
        "result_corrected",
        "land_registry",
        detail=correction,
        subject=correction,
        now=MONDAY + 3 * HOUR,
        agencies=CATALOG.agencies,
    )
    assert isinstance(letter, FaultApologyIssued)
    assert letter.fault == "result_corrected"
    assert correction in letter.reason
    again = returned.record_fault(
        "result_corrected",
        "land_registry",
        detail=correction,
        subject=correction,
        now=MONDAY + 4 * HOUR,
        agencies=CATALOG.agencies,
    )
    assert again == []


def test_every_fault_kind_has_a_rule_and_a_console_label() -> None:
    kinds = set(get_args(FaultKind))
    assert set(FAULT_RULES) == kinds
    assert kinds <= set(APOLOGY_KINDS)
    for rule in FAULT_RULES.values():
        assert rule.authority
        assert "{agency}" in rule.reason


async def test_an_agency_answer_after_the_warning_completes_the_step_on_time() -> None:
    dossier, handover = received_land_transfer("HS-D-4", MONDAY)
    dossiers = InMemoryDossiers({dossier.id: dossier})
    last_day = CALENDAR.add_working_time(MONDAY, Decimal(2))
    fire(dossier, last_day)
    done = last_day + HOUR
    answer = StepCompleted.answering(
        handover,
        outcome="done",
        received_at=MONDAY,
        completed_at=done,
        result=RESULT_EXAMPLES["vn.gov.result.appraisal.v1"].model_dump(mode="json"),
    )
    await record_answer(FakeWork(now=done), dossiers, answer, calendar=CALENDAR, agencies=CATALOG.agencies)
    stored = dossiers.rows[dossier.id]
    assert stored.slip[1].late_by_days == 0
    assert stored.slip[1].alarm_at is None
    assert stored.apologised_at is None
