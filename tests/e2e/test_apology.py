"""Late dossiers on the real system: overdue steps, one apology, escalation, restarts.

The services run on a virtual clock (CLOCK=virtual): the tests move time forward with
PUT /clock, so a route's working days pass in seconds.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from contracts import topics
from infra.stack import Stack
from services.runtime.working_days import WorkingDayCalendar
from tests.dossier_samples import eventually_equal, land_transfer, pay, signed_in, wait_for_status
from tests.kafka_probe import read_topic
from tests.letter_signatures import signer_organisation
from tests.systems import set_time

pytestmark = pytest.mark.real

CALENDAR = WorkingDayCalendar()


async def now_of(stack: Stack) -> datetime:
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(f"{stack.services['intake'].url}/clock")).json()
    assert body["clock"] == "virtual"
    return datetime.fromisoformat(body["now"])


async def intake_events(stack: Stack, dossier_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(ce_type, data) of everything the desk published about a dossier, in the order it wrote them.

    Read from both of the desk's topics (the public lifecycle and the letters to the citizen);
    two topics have no common order, so the desk's outbox positions give it.
    """
    records = [
        r
        for topic in (topics.INTAKE_EVENTS, topics.INTAKE_CITIZENS)
        for r in await read_topic(stack.superuser, topic)
        if r.key == dossier_id.encode()
    ]
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch(
            "SELECT event_id, position FROM intake.outbox WHERE key = $1", dossier_id.encode()
        )
        positions = {row["event_id"]: row["position"] for row in rows}
    finally:
        await conn.close()
    records.sort(key=lambda r: positions[dict(r.headers)["ce_id"].decode()])
    return [(dict(r.headers)["ce_type"].decode(), json.loads(r.value)) for r in records]


async def types_of(stack: Stack, dossier_id: str) -> list[str]:
    """The desk's events about a dossier, without its state snapshots."""
    return [
        t for t, _ in await intake_events(stack, dossier_id) if not t.startswith("vn.gov.dossier.progressed")
    ]


async def file_and_reach_tax(intake: httpx.AsyncClient, n: int) -> dict[str, Any]:
    dossier_id = (await intake.post("/dossiers", json=land_transfer(n))).json()["id"]
    for _ in range(150):
        state = (await intake.get(f"/dossiers/{dossier_id}")).json()
        if state["handoffs"][-1]["to"] == "tax":
            return dict(state)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{dossier_id} never reached tax: {state}")


async def test_tax_overrun_gets_one_apology_then_escalation(services: Stack, db: asyncpg.Pool) -> None:
    services.stop_service("tax")  # the tax office does not act in time
    try:
        async with signed_in(services, "intake") as intake:
            state = await file_and_reach_tax(intake, 10_001)
            dossier_id = state["id"]
            promised = datetime.fromisoformat(state["appointment_date"])
            tax_row = state["handoffs"][-1]
            due = datetime.fromisoformat(tax_row["due_at"])

            await set_time(services, due - timedelta(minutes=1))
            await asyncio.sleep(2)  # the watcher looks twice a second: nothing may fire early
            assert "vn.gov.dossier.apology_issued.v1" not in await types_of(services, dossier_id)

            await set_time(services, due + timedelta(minutes=1))
            await eventually_equal(
                lambda: types_of(services, dossier_id),
                [
                    "vn.gov.dossier.received.v2",
                    "vn.gov.dossier.step_overdue.v1",
                    "vn.gov.dossier.apology_issued.v1",
                ],
            )
            apology = dict(await intake_events(services, dossier_id))["vn.gov.dossier.apology_issued.v1"]
            assert apology["issued_by_agency"] == "tax"
            assert apology["signatory_title"] == "Chi cục trưởng"
            assert datetime.fromisoformat(apology["original_appointment_at"]) == promised
            expected_new = CALENDAR.add_working_time(promised, Decimal("0.5"))
            assert datetime.fromisoformat(apology["new_appointment_at"]) == expected_new
            issued = datetime.fromisoformat(apology["issued_at"])
            assert CALENDAR.working_time_between(issued, promised) >= 1  # the one-working-day rule
            # The letter reaches the citizen: one e-mail, with the PDF, from the notification service.
            assert services.mailbox is not None

            def apology_mails() -> list[Any]:
                assert services.mailbox is not None
                return [
                    m
                    for m in services.mailbox.messages()
                    if dossier_id in str(m["Subject"]) and "xin lỗi" in str(m["Subject"]).lower()
                ]

            async def apology_mail_count() -> int:
                return len(apology_mails())

            await eventually_equal(apology_mail_count, 1)
            (mail,) = apology_mails()
            pdfs = [p for p in mail.iter_attachments() if p.get_content_type() == "application/pdf"]
            assert len(pdfs) == 1
            # Signed by the tax office, the agency at fault, as its CA vouches (PAdES, pyHanko).
            signer = await signer_organisation(pdfs[0].get_content(), services.letter_signing_dir(), "tax")
            assert signer == "Chi cục Thuế thành phố Tân An"
            assert "PHIẾU XIN LỖI" in mail.get_body(preferencelist=("plain",)).get_content()
            async with signed_in(services, "notification", timeout=10) as notes:
                notices = (await notes.get("/notices", params={"dossier_id": dossier_id})).json()
            (letter,) = [n for n in notices if n["kind"] == "apology"]
            assert [d["status"] for d in letter["deliveries"] if d["channel"] == "email"] == ["sent"]
            # Two office hours later the open step shows how late it is so far.
            await set_time(services, CALENDAR.add_working_time(due, Decimal("0.25")))
            rescheduled = (await intake.get(f"/dossiers/{dossier_id}")).json()
            assert datetime.fromisoformat(rescheduled["appointment_date"]) == expected_new
            assert datetime.fromisoformat(rescheduled["original_appointment_date"]) == promised
            assert rescheduled["handoffs"][-1]["overdue_at"] is not None
            assert Decimal(rescheduled["handoffs"][-1]["late_by_days"]) == Decimal("0.25")

            # Still nothing from tax after its second allowance: supervisors, not a second letter.
            await set_time(services, CALENDAR.add_working_time(due, Decimal("0.5")) + timedelta(minutes=1))
            await eventually_equal(
                lambda: types_of(services, dossier_id),
                [
                    "vn.gov.dossier.received.v2",
                    "vn.gov.dossier.step_overdue.v1",
                    "vn.gov.dossier.apology_issued.v1",
                    "vn.gov.dossier.escalated.v1",
                ],
            )
            later = await now_of(services)
        # Tax comes back (its clock set to now) and the dossier completes, late, once.
        services.start_service("tax", extra_env={"VIRTUAL_CLOCK_START": later.isoformat()})
        await asyncio.to_thread(services.wait_healthy, "tax")
        async with signed_in(services, "intake") as intake:
            await wait_for_status(intake, dossier_id, "awaiting_payment")
            await pay(intake, dossier_id)
            final = await wait_for_status(intake, dossier_id, "returned")
        tax_row = next(h for h in final["handoffs"] if h["to"] == "tax")
        assert Decimal(tax_row["late_by_days"]) >= Decimal("0.5")  # past its second allowance
        # On time means by the first promised date: the later steps were quick enough here.
        returned = datetime.fromisoformat(final["returned_at"])
        assert final["on_time"] is (returned <= promised)
        assert datetime.fromisoformat(final["original_appointment_date"]) == promised
        types = await types_of(services, dossier_id)
        assert types.count("vn.gov.dossier.apology_issued.v1") == 1
        assert len(apology_mails()) == 1  # the e-mail arrived once
    finally:
        if services.services["tax"].process is None or services.services["tax"].process.poll() is not None:
            services.start_service(
                "tax", extra_env={"VIRTUAL_CLOCK_START": (await now_of(services)).isoformat()}
            )
            await asyncio.to_thread(services.wait_healthy, "tax")


async def test_supplement_pause_sends_no_apology(services: Stack) -> None:
    async with signed_in(services, "intake") as intake:
        # The desk asks for a supplement while the land registry has the dossier.
        services.stop_service("land_registry")
        try:
            other = (await intake.post("/dossiers", json=land_transfer(10_003))).json()
            response = await intake.post(
                f"/dossiers/{other['id']}/supplement-requests",
                json={"missing_documents": ["Bản vẽ sơ đồ thửa đất"], "reason": "thiếu bản vẽ"},
            )
            assert response.status_code == 200, response.text
            paused = response.json()
            assert paused["status"] == "awaiting_supplement"
            assert paused["clock_paused_since"] is not None
            # Weeks pass while the citizen gathers the document: no deadline counts.
            now = await now_of(services)
            await set_time(services, now + timedelta(days=21))
            await asyncio.sleep(2)
            assert await types_of(services, other["id"]) == [
                "vn.gov.dossier.received.v2",
                "vn.gov.dossier.supplement_requested.v1",
            ]
            supplemented = await intake.post(
                f"/dossiers/{other['id']}/supplements", json={"documents": ["SITE_PLAN"]}
            )
            assert supplemented.status_code == 200, supplemented.text
            restarted = supplemented.json()
            resumed_at = await now_of(services)
            # The limit restarts in full from the supplement.
            assert datetime.fromisoformat(restarted["appointment_date"]) == CALENDAR.add_working_time(
                resumed_at, Decimal(8)
            )
        finally:
            services.start_service(
                "land_registry", extra_env={"VIRTUAL_CLOCK_START": (await now_of(services)).isoformat()}
            )
            await asyncio.to_thread(services.wait_healthy, "land_registry")
        await wait_for_status(intake, other["id"], "awaiting_payment")
        assert "vn.gov.dossier.apology_issued.v1" not in await types_of(services, other["id"])


async def test_pending_deadlines_fire_once_after_the_watcher_restarts(services: Stack) -> None:
    services.stop_service("tax")
    try:
        async with signed_in(services, "intake") as intake:
            states = [await file_and_reach_tax(intake, 10_100 + n) for n in range(3)]
        latest_due = max(datetime.fromisoformat(s["handoffs"][-1]["due_at"]) for s in states)
        # The service holding the deadlines dies while they are pending...
        services.stop_service("intake", sig=signal.SIGKILL)
        await set_time(services, latest_due + timedelta(minutes=5))
        # ...and comes back after they passed.
        services.start_service(
            "intake", extra_env={"VIRTUAL_CLOCK_START": (latest_due + timedelta(minutes=5)).isoformat()}
        )
        await asyncio.to_thread(services.wait_healthy, "intake")
        for state in states:
            await eventually_equal(
                functools.partial(types_of, services, state["id"]),
                [
                    "vn.gov.dossier.received.v2",
                    "vn.gov.dossier.step_overdue.v1",
                    "vn.gov.dossier.apology_issued.v1",
                ],
            )
        await asyncio.sleep(2)  # a few more watcher passes: still once each
        for state in states:
            types = await types_of(services, state["id"])
            assert types.count("vn.gov.dossier.apology_issued.v1") == 1
            assert types.count("vn.gov.dossier.step_overdue.v1") == 1
    finally:
        services.start_service("tax", extra_env={"VIRTUAL_CLOCK_START": (await now_of(services)).isoformat()})
        await asyncio.to_thread(services.wait_healthy, "tax")
