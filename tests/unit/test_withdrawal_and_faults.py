"""The desk's rules for withdrawal, refusal and faults in handling, on fakes (no Kafka, no SQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from contracts import topics
from contracts.events import (
    DossierReturned,
    DossierWithdrawn,
    FaultApologyIssued,
    HandoffWithdrawn,
    StepCompleted,
)
from contracts.results import SupplementNeeded
from services.intake.app import load_catalog
from services.intake.domain.dossier import DossierStatus, TransitionRefused
from services.intake.handlers import record_answer
from services.notification.domain.notices import render
from services.runtime.working_days import VIETNAM_TZ, WorkingDayCalendar
from tests.dossier_samples import received_land_transfer
from tests.fakes import FakeWork, InMemoryDossiers

CALENDAR = WorkingDayCalendar()
CATALOG = load_catalog()
MONDAY = datetime(2026, 3, 9, 8, tzinfo=VIETNAM_TZ)
HOUR = timedelta(hours=1)


async def test_a_withdrawal_takes_the_handoff_back_and_the_late_answer_changes_nothing() -> None:
    dossier, handover = received_land_transfer("HS-W-1", MONDAY)
    events = dossier.withdraw(reason="không bán nữa", requested_by="citizen", now=MONDAY + HOUR)

    taken_back, withdrawn = events
    assert isinstance(taken_back, HandoffWithdrawn)
    assert (taken_back.agency, taken_back.handoff_row) == ("land_registry", handover.handoff_row)
    assert isinstance(withdrawn, DossierWithdrawn)
    assert withdrawn.requested_by == "citizen"
    assert dossier.status is DossierStatus.WITHDRAWN
    assert dossier.slip[-1].outcome == "withdrawn"
    assert dossier.slip[-1].alarm_at is None  # no deadline left to watch

    # The registry answers anyway: acknowledged, nothing routed on, not a dead letter.
    dossiers = InMemoryDossiers({dossier.id: dossier})
    later = MONDAY + 2 * HOUR
    work = FakeWork(now=later)
    answer = StepCompleted.answering(handover, outcome="rejected", received_at=later, completed_at=later)
    await record_answer(work, dossiers, answer, calendar=CALENDAR, agencies=CATALOG.agencies)
    assert [type(e).__name__ for _, e in work.published] == ["DossierProgressed"]  # its state, unchanged
    assert dossiers.rows[dossier.id].status is DossierStatus.WITHDRAWN

    with pytest.raises(TransitionRefused):
        dossier.withdraw(reason="again", requested_by="desk", now=later)


def test_the_desk_refuses_a_dossier_with_the_reason_and_the_agency_stops() -> None:
    dossier, _ = received_land_transfer("HS-R-1", MONDAY)
    events = dossier.refuse(reason="Thửa đất đang có tranh chấp", now=MONDAY + HOUR, calendar=CALENDAR)

    assert [type(e) for e in events] == [HandoffWithdrawn, DossierReturned]
    returned = events[-1]
    assert isinstance(returned, DossierReturned)
    assert returned.outcome == "rejected"
    assert "Thửa đất đang có tranh chấp" in returned.summary
    assert dossier.status is DossierStatus.REJECTED


async def test_a_second_supplement_request_owes_one_numbered_letter_from_the_agency_at_fault() -> None:
    dossier, handover = received_land_transfer("HS-F-1", MONDAY)
    dossiers = InMemoryDossiers({dossier.id: dossier})
    now = MONDAY

    async def registry_asks(note: str) -> FakeWork:
        nonlocal now, handover
        now += HOUR
        stored = dossiers.rows[dossier.id]
        handover = handover.model_copy(update={"handoff_row": stored.slip[-1].row})
        asked = StepCompleted.answering(
            handover,
            outcome="needs_supplement",
            received_at=now,
            completed_at=now,
            note=note,
            result=SupplementNeeded(missing_documents=["Bản vẽ sơ đồ thửa đất"]),
        )
        work = FakeWork(now=now)
        await record_answer(work, dossiers, asked, calendar=CALENDAR, agencies=CATALOG.agencies)
        # The citizen supplements at once; the registry gets the dossier back.
        now += HOUR
        again = dossiers.rows[dossier.id]
        again.supplement(documents=[], details=None, now=now, calendar=CALENDAR)
        await dossiers.save(again)
        return work

    first = await registry_asks("thiếu bản vẽ")
    assert first.types_on(topics.INTAKE_CITIZENS) == ["SupplementRequested"]

    second = await registry_asks("bản vẽ chưa ký")
    assert second.types_on(topics.INTAKE_CITIZENS) == ["SupplementRequested", "FaultApologyIssued"]
    (letter,) = [e for _, e in second.published if isinstance(e, FaultApologyIssued)]
    assert letter.letter_number == "PXL-2026-000001"  # numbered by the store, not left empty
    assert letter.issued_by_agency == "land_registry"
    assert letter.fault == "repeat_supplement_request"
    # A fault letter reschedules nothing: the one rescheduling a late dossier may have stays free.
    assert dossiers.rows[dossier.id].apologised_at is None
    assert dossiers.rows[dossier.id].original_appointment_at is None
    assert "Bắc Kạn" in letter.authority

    third = await registry_asks("bản vẽ mờ")
    assert third.types_on(topics.INTAKE_CITIZENS) == ["SupplementRequested"]  # same fault, no letter

    notice = render(letter)
    assert notice is not None
    assert notice.kind == "fault_apology"
    assert letter.letter_number in notice.body
    assert notice.attachment is not None
    assert notice.attachment.data.startswith(b"%PDF")


def test_the_withdrawal_receipt_reaches_the_citizen() -> None:
    dossier, _ = received_land_transfer("HS-W-2", MONDAY)
    withdrawn = dossier.withdraw(reason="đổi ý", requested_by="desk", now=MONDAY + HOUR)[-1]
    notice = render(withdrawn)
    assert notice is not None
    assert notice.kind == "withdrawal"
    assert "XÁC NHẬN RÚT HỒ SƠ" in notice.body
    assert "đổi ý" in notice.body
