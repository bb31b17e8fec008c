"""An agency reports its step will be late: the desk apologises at once, on fakes (no Kafka, no SQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from contracts.events import ApologyIssued, DossierEscalated, StepDelayReported, StepOverdue
from services.intake.app import load_catalog
from services.intake.handlers import record_report
from services.runtime.consumer import EventRejected
from services.runtime.working_days import VIETNAM_TZ, WorkingDayCalendar
from tests.dossier_samples import received_land_transfer
from tests.fakes import FakeWork, InMemoryDossiers

CALENDAR = WorkingDayCalendar()
CATALOG = load_catalog()
MONDAY = datetime(2026, 3, 9, 8, tzinfo=VIETNAM_TZ)


def report(handover_row: int, *, expected_at: datetime, reported_at: datetime) -> StepDelayReported:
    return StepDelayReported(
        dossier_id="HS-D-1",
        step_index=1,
        agency="land_registry",
        action="appraise",
        handoff_row=handover_row,
        reason="Chờ kết quả đo đạc lại thửa đất",
        expected_at=expected_at,
        reported_at=reported_at,
    )


async def test_a_delay_reported_two_days_ahead_gets_its_letter_a_day_ahead_and_the_reported_date() -> None:
    dossier, handover = received_land_transfer("HS-D-1", MONDAY)
    row = dossier.slip[-1]
    assert row.due_at is not None
    promised = dossier.appointment_at
    dossiers = InMemoryDossiers({dossier.id: dossier})
    two_days_before = CALENDAR.add_working_time(MONDAY, Decimal(1))
    assert CALENDAR.working_time_between(two_days_before, row.due_at) == 2
    expected = CALENDAR.add_working_time(row.due_at, Decimal(2))
    assert handover.handoff_row is not None

    work = FakeWork(now=two_days_before)
    published = await record_report(
        work,
        dossiers,
        report(handover.handoff_row, expected_at=expected, reported_at=two_days_before),
        calendar=CALENDAR,
        agencies=CATALOG.agencies,
    )
    (letter,) = [e for e in published if isinstance(e, ApologyIssued)]
    assert letter.letter_number == "PXL-2026-000001"
    assert letter.issued_by_agency == "land_registry"
    assert letter.reason == "Chờ kết quả đo đạc lại thửa đất"
    assert letter.original_appointment_at == promised
    assert letter.new_appointment_at == CALENDAR.add_working_time(promised, Decimal(2))  # what was asked for
    assert letter.working_days_notice >= 1  # the one-working-day rule holds
    stored = dossiers.rows[dossier.id]
    assert stored.slip[-1].alarm_at == expected  # the watcher uses the reported date

    # Still open at the reported date: overdue and escalated, no second letter.
    events = stored.on_alarm(
        stored.slip[-1].row, now=expected, calendar=CALENDAR, agencies=CATALOG.agencies, letter_number=""
    )
    assert [type(e) for e in events] == [StepOverdue, DossierEscalated]


async def test_a_second_report_escalates_and_a_report_after_the_due_time_is_refused() -> None:
    dossier, handover = received_land_transfer("HS-D-1", MONDAY)
    row = dossier.slip[-1]
    assert row.due_at is not None
    assert handover.handoff_row is not None
    dossiers = InMemoryDossiers({dossier.id: dossier})
    early = MONDAY + timedelta(hours=1)
    expected = CALENDAR.add_working_time(row.due_at, Decimal(1))
    await record_report(
        FakeWork(now=early),
        dossiers,
        report(handover.handoff_row, expected_at=expected, reported_at=early),
        calendar=CALENDAR,
        agencies=CATALOG.agencies,
    )
    again = await record_report(
        FakeWork(now=early),
        dossiers,
        report(handover.handoff_row, expected_at=expected + timedelta(days=1), reported_at=early),
        calendar=CALENDAR,
        agencies=CATALOG.agencies,
    )
    assert [type(e).__name__ for e in again] == ["DossierEscalated", "DossierProgressed"]

    fresh, _ = received_land_transfer("HS-D-1", MONDAY)
    late = InMemoryDossiers({fresh.id: fresh})
    with pytest.raises(EventRejected, match="too late"):
        await record_report(
            FakeWork(now=row.due_at),
            late,
            report(handover.handoff_row, expected_at=expected, reported_at=row.due_at),
            calendar=CALENDAR,
            agencies=CATALOG.agencies,
        )
    with pytest.raises(EventRejected, match="no delay"):
        await record_report(
            FakeWork(now=early),
            late,
            report(handover.handoff_row, expected_at=row.due_at, reported_at=early),
            calendar=CALENDAR,
            agencies=CATALOG.agencies,
        )
