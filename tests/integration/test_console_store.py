"""The console's read model on real Postgres: newest snapshot wins, and the SQL late filter agrees
with the domain's rule."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from contracts.events import (
    ApologyIssued,
    Applicant,
    DossierEscalated,
    DossierProgressed,
    SlipRow,
    StepDueSoon,
    StepOverdue,
)
from infra.stack import Stack
from services.console import store
from services.console.domain.dossiers import fold, lateness
from services.console.domain.on_time import Period
from services.runtime.database import create_pool, migrate

pytestmark = pytest.mark.real

T0 = datetime(2026, 3, 9, 1, 30, tzinfo=UTC)
PROMISED = T0 + timedelta(days=10)
NOW = T0 + timedelta(days=5)


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    schema = f"console_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(stack.database_url, schema=schema, size=2)
    await migrate(pool, schema=schema, migrations=store.MIGRATIONS)
    yield pool
    await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await pool.close()


def row(n: int, *, completed: datetime | None, overdue: datetime | None = None) -> SlipRow:
    return SlipRow(
        row=n,
        step_index=n,
        from_agency="one_stop",
        to_agency="land_registry",
        action="appraise",
        budget_days=Decimal("3"),
        sent_at=T0,
        due_at=T0 + timedelta(days=3),
        received_at=T0 if completed else None,
        completed_at=completed,
        outcome="done" if completed else None,
        late_by_days=Decimal(0),
        overdue_at=overdue,
        note="",
    )


def snapshot(
    dossier_id: str,
    *,
    status: str = "processing",
    updated: datetime = T0,
    slip: list[SlipRow] | None = None,
    returned: datetime | None = None,
    original: datetime | None = None,
    appointment: datetime = PROMISED,
) -> DossierProgressed:
    return DossierProgressed(
        dossier_id=dossier_id,
        procedure_code="LAND-TRANSFER",
        procedure_name="Đăng ký biến động",
        level="city",
        status=status,
        received_at=T0,
        appointment_at=appointment,
        original_appointment_at=original,
        clock_paused_since=None,
        returned_at=returned,
        on_time=returned is None or returned <= (original or appointment),
        slip=slip if slip is not None else [row(0, completed=None)],
        updated_at=updated,
    )


async def test_the_newest_snapshot_wins_whatever_the_arrival_order(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        newer = snapshot(
            "HS-1",
            status="awaiting_payment",
            updated=T0 + timedelta(hours=2),
            slip=[
                row(0, completed=T0 + timedelta(hours=1)),
                row(1, completed=None),
            ],
        )
        assert await store.save_progress(conn, newer)
        older = snapshot("HS-1", status="processing", updated=T0 + timedelta(hours=1))
        assert not await store.save_progress(conn, older)
        kept = await store.dossier(conn, "HS-1")
        assert kept is not None
        assert kept["status"] == "awaiting_payment"
        assert [r["row"] for r in kept["slip"]] == [0, 1]
        # The same time again (two snapshots of one transaction): the later record wins.
        same_time = snapshot(
            "HS-1",
            status="returned",
            updated=T0 + timedelta(hours=2),
            slip=[
                row(0, completed=T0 + timedelta(hours=1)),
            ],
        )
        assert await store.save_progress(conn, same_time)
        kept = await store.dossier(conn, "HS-1")
        assert kept is not None
        assert kept["status"] == "returned"
        assert [r["row"] for r in kept["slip"]] == [0]


async def test_the_late_filter_in_sql_is_the_domain_rule(pool: asyncpg.Pool) -> None:
    cases = {
        "HS-ON-TIME": snapshot("HS-ON-TIME", returned=PROMISED - timedelta(days=1), status="returned"),
        "HS-LATE": snapshot("HS-LATE", returned=PROMISED + timedelta(hours=1), status="returned"),
        "HS-RESCHEDULED": snapshot(
            "HS-RESCHEDULED",
            returned=PROMISED + timedelta(hours=1),
            appointment=PROMISED + timedelta(days=1),
            original=PROMISED,
            status="returned",
        ),
        "HS-IN-TIME": snapshot("HS-IN-TIME"),
        "HS-OVERDUE-STEP": snapshot(
            "HS-OVERDUE-STEP", slip=[row(0, completed=None, overdue=T0 + timedelta(days=3))]
        ),
        "HS-OVERDUE-DONE": snapshot(
            "HS-OVERDUE-DONE", slip=[row(0, completed=T0 + timedelta(days=4), overdue=T0 + timedelta(days=3))]
        ),
        "HS-PAST-DATE": snapshot("HS-PAST-DATE", appointment=NOW - timedelta(minutes=1)),
    }
    async with pool.acquire() as conn:
        for event in cases.values():
            await store.save_progress(conn, event)
        late = {d["id"] for d in await store.list_dossiers(conn, now=NOW, late=True)}
        not_late = {d["id"] for d in await store.list_dossiers(conn, now=NOW, late=False)}
        everything = await store.list_dossiers(conn, now=NOW)
    expected = {
        d["id"]
        for d in everything
        if lateness(
            first_promised_at=d["first_promised_at"],
            returned_at=d["returned_at"],
            overdue_open=d["overdue_open"],
            now=NOW,
        ).is_late
    }
    assert late == expected == {"HS-LATE", "HS-RESCHEDULED", "HS-OVERDUE-STEP", "HS-PAST-DATE"}
    assert not_late == set(cases) - late


def person(name: str) -> Applicant:
    return Applicant(full_name=name, id_number="079088001234", phone="0912345678", email="a@b.vn")


async def test_search_by_id_name_or_id_number_without_diacritics(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await store.save_progress(conn, snapshot("HS-260309-AAA"))
        await store.save_applicant(conn, "HS-260309-AAA", person("Nguyễn Văn Đức"))
        # The receipt (with the name) may come before the first snapshot: joined all the same.
        await store.save_applicant(conn, "HS-260309-BBB", person("Trần Thị Bình"))
        await store.save_progress(conn, snapshot("HS-260309-BBB"))

        async def found(text: str) -> list[str]:
            return [d["id"] for d in await store.list_dossiers(conn, now=NOW, folded_query=fold(text))]

        assert await found("nguyen van duc") == ["HS-260309-AAA"]
        assert await found("BÌNH") == ["HS-260309-BBB"]
        assert await found("hs-260309-b") == ["HS-260309-BBB"]
        assert sorted(await found("001234")) == ["HS-260309-AAA", "HS-260309-BBB"]
        assert await found("100%") == []  # a LIKE wildcard is searched for, not obeyed
        assert await found("_") == []


async def test_on_time_inputs_come_from_returned_dossiers_and_timed_steps(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await store.save_progress(
            conn,
            snapshot(
                "HS-R",
                status="returned",
                returned=PROMISED,
                slip=[row(0, completed=T0 + timedelta(days=1)), row(1, completed=T0 + timedelta(days=4))],
            ),
        )
        await store.save_progress(conn, snapshot("HS-OPEN"))
        settled = await store.settled_dossiers(conn, Period())
        steps = await store.completed_steps(conn, Period())
    assert [(d.procedure_code, d.returned_at, d.first_promised_at) for d in settled] == [
        ("LAND-TRANSFER", PROMISED, PROMISED)
    ]
    assert sorted(s.on_time for s in steps) == [False, True]


async def test_overdue_steps_apologies_and_escalations(pool: asyncpg.Pool) -> None:
    applicant = Applicant(
        full_name="Trần Thị Bình", id_number="079090005678", phone="0912345678", email="b@b.vn"
    )
    due = T0 + timedelta(days=3)
    overdue = StepOverdue(
        dossier_id="HS-LATE",
        step_index=0,
        agency="land_registry",
        action="appraise",
        budget_days=Decimal(3),
        due_at=due,
        detected_at=due + timedelta(minutes=1),
        appointment_at=PROMISED,
    )
    apology = ApologyIssued(
        dossier_id="HS-LATE",
        letter_number="PXL-2026-000001",
        issued_by_agency="land_registry",
        issuer_name="Chi nhánh Văn phòng Đăng ký đất đai",
        signatory_title="Giám đốc",
        applicant=applicant,
        procedure_name="Đăng ký biến động",
        received_at=T0,
        original_appointment_at=PROMISED,
        new_appointment_at=PROMISED + timedelta(days=3),
        reason="thẩm định quá hạn",
        issued_at=due + timedelta(minutes=1),
        working_days_notice=Decimal(5),
    )
    escalated = DossierEscalated(
        dossier_id="HS-LATE",
        agency="land_registry",
        step_index=0,
        action="appraise",
        reason="trễ lần hai",
        appointment_at=PROMISED + timedelta(days=3),
        detected_at=due + timedelta(days=3),
    )
    async with pool.acquire() as conn:
        await store.save_progress(conn, snapshot("HS-LATE", slip=[row(0, completed=None, overdue=due)]))
        await store.save_applicant(conn, "HS-LATE", applicant)
        await store.save_step_alert(conn, "ev-1", overdue)
        await store.save_step_alert(conn, "ev-1", overdue)  # the same event again changes nothing
        # Warned the day before: listed apart from the overdue steps.
        warned = StepDueSoon(
            dossier_id="HS-LATE",
            step_index=0,
            agency="land_registry",
            action="appraise",
            handoff_row=0,
            budget_days=Decimal(3),
            due_at=due,
            warned_at=due - timedelta(days=1),
            appointment_at=PROMISED,
        )
        await store.save_step_alert(conn, "ev-0", warned)
        [soon] = await store.overdue_steps(conn, due_soon=True, open_only=True)
        assert (soon["dossier_id"], soon["detected_at"]) == ("HS-LATE", due - timedelta(days=1))
        await store.save_apology(conn, "ev-2", apology)
        await store.save_escalation(conn, "ev-3", escalated)

        [step] = await store.overdue_steps(conn)
        assert (step["dossier_id"], step["agency"], step["completed_at"]) == (
            "HS-LATE",
            "land_registry",
            None,
        )
        assert step["applicant_name"] == "Trần Thị Bình"
        assert len(await store.overdue_steps(conn, open_only=True)) == 1

        # The step completes later: still listed, no longer open.
        done = due + timedelta(days=1)
        await store.save_progress(
            conn,
            snapshot("HS-LATE", updated=T0 + timedelta(days=4), slip=[row(0, completed=done, overdue=due)]),
        )
        [step] = await store.overdue_steps(conn)
        assert step["completed_at"] == done
        assert await store.overdue_steps(conn, open_only=True) == []
        assert await store.overdue_steps(conn, open_only=True, due_soon=True) == []

        [letter] = await store.apologies(conn)
        assert (letter["letter_number"], letter["issued_by_agency"]) == ("PXL-2026-000001", "land_registry")
        assert letter["applicant"]["full_name"] == "Trần Thị Bình"
        assert await store.apologies(conn, agency="tax") == []
        [alert] = await store.escalations(conn, dossier_id="HS-LATE")
        assert alert["reason"] == "trễ lần hai"
