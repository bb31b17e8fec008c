"""The desk's routing handler on fakes: an agency's answer moves the dossier on, no Kafka, no SQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from contracts import topics
from contracts.events import DossierHandedOver, DossierProgressed, StepCompleted
from contracts.results import AppraisalResult
from services.intake.app import load_catalog
from services.intake.handlers import record_answer
from services.runtime.consumer import EventRejected
from services.runtime.working_days import VIETNAM_TZ, WorkingDayCalendar
from tests.dossier_samples import received_land_transfer
from tests.fakes import FakeWork, InMemoryDossiers

CALENDAR = WorkingDayCalendar()
CATALOG = load_catalog()
MONDAY = datetime(2026, 3, 9, 8, tzinfo=VIETNAM_TZ)


def at_the_land_registry() -> tuple[InMemoryDossiers, DossierHandedOver]:
    dossier, handover = received_land_transfer("HS-FAKE-1", MONDAY)
    return InMemoryDossiers({dossier.id: dossier}), handover


async def answer(dossiers: InMemoryDossiers, done: StepCompleted, now: datetime) -> FakeWork:
    work = FakeWork(now=now)
    await record_answer(work, dossiers, done, calendar=CALENDAR, agencies=CATALOG.agencies)
    return work


def _appraisal() -> AppraisalResult:
    return AppraisalResult(
        parcel_ref="phuong-3/tờ 12/thửa 301",
        area_m2=Decimal(100),
        land_use_code="ODT",
        table_price_vnd_per_m2=12_000_000,
        table_value_vnd=1_200_000_000,
        declared_price_vnd=1_500_000_000,
    )


async def test_an_appraisal_hands_the_dossier_to_tax_and_records_the_slip() -> None:
    dossiers, appraise = at_the_land_registry()
    later = MONDAY + timedelta(days=1)
    appraisal = _appraisal()
    done = StepCompleted.answering(
        appraise, outcome="done", received_at=later, completed_at=later, result=appraisal
    )
    work = await answer(dossiers, done, later)

    assert work.types_on(topics.handoffs("tax")) == ["DossierHandedOver"]
    assert work.types_on(topics.INTAKE_EVENTS) == ["DossierProgressed"]
    stored = dossiers.rows["HS-FAKE-1"]
    assert dossiers.saves == 1
    assert [row.to_agency for row in stored.slip][-2:] == ["land_registry", "tax"]
    assert stored.slip[-2].completed_at == later
    assert stored.results == {"appraise": appraisal.model_dump(mode="json")}


async def test_an_answer_the_dossier_cannot_take_is_rejected_and_changes_nothing() -> None:
    dossiers, appraise = at_the_land_registry()
    off_contract = StepCompleted.answering(
        appraise, outcome="done", received_at=MONDAY, completed_at=MONDAY, result={"table_value_vnd": 1}
    )
    with pytest.raises(EventRejected, match=r"vn\.gov\.result\.appraisal\.v1"):
        await answer(dossiers, off_contract, MONDAY)
    wrong_step = StepCompleted.answering(
        appraise, outcome="rejected", received_at=MONDAY, completed_at=MONDAY
    ).model_copy(update={"step_index": 5, "handoff_row": None})
    with pytest.raises(EventRejected, match="reported step 5"):
        await answer(dossiers, wrong_step, MONDAY)
    unknown = StepCompleted.answering(
        appraise, outcome="rejected", received_at=MONDAY, completed_at=MONDAY
    ).model_copy(update={"dossier_id": "HS-NOBODY"})
    with pytest.raises(EventRejected, match="no dossier HS-NOBODY"):
        await answer(dossiers, unknown, MONDAY)
    assert dossiers.saves == 0


async def test_a_state_published_after_waiting_for_the_lock_is_never_stamped_earlier_than_the_last() -> None:
    # The answer's unit of work took its time, then waited while an alarm committed a later
    # state: its own (newer) state must not look older to the read models, which keep the newest.
    dossiers, appraise = at_the_land_registry()
    later = MONDAY + timedelta(days=1)
    alarm_time = later + timedelta(hours=2)
    dossiers.rows["HS-FAKE-1"].progressed_at = alarm_time
    done = StepCompleted.answering(
        appraise, outcome="done", received_at=later, completed_at=later, result=_appraisal()
    )
    work = await answer(dossiers, done, later)

    (state,) = [e for t, e in work.published if t == topics.INTAKE_EVENTS]
    assert isinstance(state, DossierProgressed)
    assert state.updated_at == alarm_time
    assert state.slip[1].completed_at == later  # the step keeps its own time
    assert dossiers.rows["HS-FAKE-1"].progressed_at == alarm_time

    # Time moving on as usual stamps the next state with its own time.
    assert dossiers.rows["HS-FAKE-1"].progress(
        alarm_time + timedelta(hours=1)
    ).updated_at == alarm_time + timedelta(hours=1)
