"""Officers' work queues on the real system: with the land registry deciding by hand (a fresh
system with ``AGENCY_DECISIONS=catalog``), a dossier waits at appraisal until an officer
completes the task; a task left past due turns red, the desk apologises, and the late
completion lands on the slip; a task completed twice answers once; strangers are refused.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from infra.stack import Stack
from services.runtime.working_days import WorkingDayCalendar
from tests.dossier_samples import eventually_equal, land_transfer, signed_in, wait_for_status
from tests.e2e.test_console import CHROMIUM, CHROMIUM_FLAGS
from tests.letter_signatures import signer_organisation
from tests.systems import fresh_system, set_time

pytestmark = pytest.mark.real

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts" / "work-queues"
SERVICES = ("intake", "land_registry", "tax", "notification")


@pytest.fixture(scope="module")
async def manual(stack: Stack) -> AsyncIterator[Stack]:
    """A fresh system whose land registry leaves manual steps to officers."""
    async with fresh_system(stack, SERVICES, extra_env={"AGENCY_DECISIONS": "catalog"}) as system:
        yield system


def officer(system: Stack, name: str) -> httpx.AsyncClient:
    token = system.token("agency_officer", subject=name, agency="land_registry")
    return httpx.AsyncClient(
        base_url=system.services["land_registry"].url,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )


async def task_of(client: httpx.AsyncClient, dossier_id: str) -> dict[str, Any]:
    """The dossier's task, once the registry has queued it."""
    for _ in range(150):
        response = await client.get("/tasks")
        assert response.status_code == 200, response.text
        found = [t for t in response.json()["tasks"] if t["dossier_id"] == dossier_id]
        if found:
            return dict(found[0])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no task for {dossier_id}")


async def outbox_types(system: Stack, schema: str, dossier_id: str) -> list[str]:
    conn = await asyncpg.connect(system.database_url)
    try:
        rows = await conn.fetch(
            f"SELECT event_type FROM {schema}.outbox WHERE key = $1 ORDER BY position", dossier_id.encode()
        )
    finally:
        await conn.close()
    return [r["event_type"] for r in rows]


async def test_a_late_appraisal_waits_for_an_officer_and_answers_once(manual: Stack) -> None:
    async with (
        signed_in(manual, "intake") as intake,
        officer(manual, "can-bo-a") as a,
        officer(manual, "can-bo-b") as b,
    ):
        filed = await intake.post("/dossiers", json=land_transfer(40_001))
        assert filed.status_code == 201, filed.text
        dossier_id = filed.json()["id"]
        task = await task_of(a, dossier_id)
        assert (task["action"], task["status"], task["colour"]) == ("appraise", "open", "green")
        assert Decimal(task["working_hours_left"]) > 20
        # It waits: nothing answered, the dossier still at the land registry.
        await asyncio.sleep(1)
        assert await outbox_types(manual, "land_registry", dossier_id) == []
        state = (await intake.get(f"/dossiers/{dossier_id}")).json()
        assert state["status"] == "processing"
        assert state["handoffs"][-1]["to"] == "land_registry"
        due = datetime.fromisoformat(task["due_at"])
        assert due == datetime.fromisoformat(state["handoffs"][-1]["due_at"])

        # Past due: red, and the desk's watcher sends the overdue notice and the apology.
        await set_time(manual, due + timedelta(minutes=30))
        late = await task_of(a, dossier_id)
        assert late["colour"] == "red"
        assert Decimal(late["working_hours_left"]) < 0

        async def desk_says() -> list[str]:
            types = await outbox_types(manual, "intake", dossier_id)
            return [t for t in types if "overdue" in t or "apology" in t]

        await eventually_equal(
            desk_says, ["vn.gov.dossier.step_overdue.v1", "vn.gov.dossier.apology_issued.v1"]
        )

        # Officer A takes it; B can neither take nor complete it.
        claimed = await a.post(f"/tasks/{task['id']}/claim")
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["assignee"] == "can-bo-a"
        assert (await b.post(f"/tasks/{task['id']}/claim")).status_code == 409
        assert (await b.post(f"/tasks/{task['id']}/complete", json={"outcome": "done"})).status_code == 409
        # A sets the appraised value; the rule's other values stay.
        decision = {"outcome": "done", "note": "đã thẩm định", "result": {"table_value_vnd": 1_234_000_000}}
        first, retry = await asyncio.gather(
            a.post(f"/tasks/{task['id']}/complete", json=decision, headers={"Idempotency-Key": "k-40001"}),
            a.post(f"/tasks/{task['id']}/complete", json=decision, headers={"Idempotency-Key": "k-40001"}),
        )
        assert (first.status_code, retry.status_code) == (200, 200), (first.text, retry.text)
        assert {first.headers.get("Idempotent-Replayed"), retry.headers.get("Idempotent-Replayed")} == {
            None,
            "true",
        }
        again = await a.post(f"/tasks/{task['id']}/complete", json=decision)
        assert again.status_code == 409
        assert await outbox_types(manual, "land_registry", dossier_id) == ["vn.gov.dossier.step_completed.v1"]

        # The late completion lands on the slip; the dossier goes on to tax.
        moved = await wait_for_status(intake, dossier_id, "awaiting_payment")
        appraisal = next(h for h in moved["handoffs"] if h["action"] == "appraise")
        assert Decimal(appraisal["late_by_days"]) > 0
        assert moved["results"]["appraise"]["table_value_vnd"] == 1_234_000_000
        assert "parcel_ref" in moved["results"]["appraise"]
        done = (await a.get("/tasks", params={"status": "done", "assignee": "can-bo-a"})).json()["tasks"]
        assert [t["dossier_id"] for t in done] == [dossier_id]


async def test_an_officer_reports_a_delay_and_the_citizen_hears_at_once_with_the_new_date(
    manual: Stack,
) -> None:
    calendar = WorkingDayCalendar()
    async with signed_in(manual, "intake") as intake, officer(manual, "can-bo-c") as c:
        filed = (await intake.post("/dossiers", json=land_transfer(40_003))).json()
        dossier_id = filed["id"]
        promised = datetime.fromisoformat(filed["appointment_date"])
        task = await task_of(c, dossier_id)
        due = datetime.fromisoformat(task["due_at"])
        reported_at = datetime.fromisoformat((await c.get("/clock")).json()["now"])
        assert calendar.working_time_between(reported_at, due) >= 2
        expected = calendar.add_working_time(due, Decimal(2))
        url = f"/tasks/{task['id']}/delay"
        body = {"reason": "Chờ kết quả đo đạc lại thửa đất", "expected_at": expected.isoformat()}
        within = {**body, "expected_at": due.isoformat()}
        assert (await c.post(url, json=within)).status_code == 422
        async with signed_in(manual, "land_registry", "operator") as operator:
            assert (await operator.post(url, json=body)).status_code == 403
        reported = await c.post(url, json=body)
        assert reported.status_code == 200, reported.text

        # The desk apologises at once: the new date is the one reported, a day or more ahead.
        rescheduled = calendar.add_working_time(promised, Decimal(2))

        async def appointment() -> str:
            return str((await intake.get(f"/dossiers/{dossier_id}")).json()["appointment_date"])

        await eventually_equal(appointment, rescheduled.isoformat())
        letters = [t for t in await outbox_types(manual, "intake", dossier_id) if "apology" in t]
        assert letters == ["vn.gov.dossier.apology_issued.v1"]
        conn = await asyncpg.connect(manual.database_url)
        try:
            notice = await conn.fetchval(
                "SELECT body FROM notification.notices WHERE dossier_id = $1 AND kind = 'apology'", dossier_id
            )
            for _ in range(100):
                if notice is not None:
                    break
                await asyncio.sleep(0.2)
                notice = await conn.fetchval(
                    "SELECT body FROM notification.notices WHERE dossier_id = $1 AND kind = 'apology'",
                    dossier_id,
                )
        finally:
            await conn.close()
        assert notice is not None
        assert "Chờ kết quả đo đạc lại thửa đất" in notice

        # The watcher uses the reported date: past the step's own due time, nothing fires yet.
        await set_time(manual, due + timedelta(minutes=30))
        assert (await c.post(url, json=body)).status_code == 409  # too late to report now
        await asyncio.sleep(2)
        assert "vn.gov.dossier.step_overdue.v1" not in await outbox_types(manual, "intake", dossier_id)
        done = await c.post(f"/tasks/{task['id']}/complete", json={"outcome": "done"})
        assert done.status_code == 200, done.text
        await wait_for_status(intake, dossier_id, "awaiting_payment")


async def test_the_last_day_is_warned_a_lost_document_apologised_for_and_a_refusal_signed_by_the_registry(
    manual: Stack,
) -> None:
    calendar = WorkingDayCalendar()
    assert manual.mailbox is not None
    async with signed_in(manual, "intake") as intake, officer(manual, "can-bo-d") as d:
        dossier_id = (await intake.post("/dossiers", json=land_transfer(40_004))).json()["id"]
        task = await task_of(d, dossier_id)
        assert task["warned_at"] is None
        received = datetime.fromisoformat(task["received_at"])
        last_day = calendar.add_working_time(received, Decimal(2))  # a 3-day step: its third day

        # The last working day begins: the registry's task and the desk's readers are told.
        await set_time(manual, last_day + timedelta(minutes=1))

        async def warned() -> bool:
            return (await task_of(d, dossier_id))["warned_at"] is not None

        await eventually_equal(warned, True)
        types = await outbox_types(manual, "intake", dossier_id)
        assert types.count("vn.gov.dossier.step_due_soon.v1") == 2  # the registry's topic, intake.events
        assert "vn.gov.dossier.step_overdue.v1" not in types

        # The registry lost the original certificate: one letter from it, however often reported.
        url = f"/tasks/{task['id']}/lost-documents"
        body = {"documents": ["LAND_CERTIFICATE"], "damaged": True, "reason": "Bản chính bị rách khi scan"}
        async with signed_in(manual, "land_registry", "operator") as operator:
            assert (await operator.post(url, json=body)).status_code == 403
        for _ in range(2):
            reported = await d.post(url, json=body)
            assert reported.status_code == 200, reported.text

        async def fault_letters() -> list[str]:
            return [t for t in await outbox_types(manual, "intake", dossier_id) if "fault_apology" in t]

        await eventually_equal(fault_letters, ["vn.gov.dossier.fault_apology_issued.v1"])
        reports = await outbox_types(manual, "land_registry", dossier_id)
        assert reports.count("vn.gov.dossier.document_loss_reported.v1") == 2

        # The registry refuses the transfer: the refusal is its own letter, signed by it.
        refused = await d.post(
            f"/tasks/{task['id']}/complete", json={"outcome": "rejected", "note": "Thửa đất đang tranh chấp"}
        )
        assert refused.status_code == 200, refused.text
        await wait_for_status(intake, dossier_id, "rejected")

        def mails(subject: str) -> list[Any]:
            assert manual.mailbox is not None
            return [
                m
                for m in manual.mailbox.messages()
                if dossier_id in str(m["Subject"]) and str(m["Subject"]).startswith(subject)
            ]

        async def letters_mailed() -> tuple[int, int]:
            return len(mails("Kết quả")), len(
                [m for m in mails("") if "xin lỗi" in str(m["Subject"]).lower()]
            )

        await eventually_equal(letters_mailed, (1, 1))
        (result,) = mails("Kết quả")
        (pdf,) = [p for p in result.iter_attachments() if p.get_content_type() == "application/pdf"]
        signer = await signer_organisation(pdf.get_content(), manual.letter_signing_dir(), "land_registry")
        assert signer == "Chi nhánh Văn phòng Đăng ký đất đai thành phố Tân An"


async def test_strangers_and_wrong_roles_are_refused(manual: Stack) -> None:
    url = manual.services["land_registry"].url
    async with httpx.AsyncClient(base_url=url, timeout=10) as anonymous:
        assert (await anonymous.get("/tasks")).status_code == 401
        assert (await anonymous.post("/tasks/1/complete", json={"outcome": "done"})).status_code == 401
        forged = {"Authorization": "Bearer not.a.token"}
        assert (await anonymous.get("/tasks", headers=forged)).status_code == 401
    async with signed_in(manual, "land_registry", "citizen") as citizen:
        assert (await citizen.get("/tasks")).status_code == 403
    # An officer of another agency, or of none, is not the land registry's officer.
    for agency in ("tax", None):
        token = manual.token("agency_officer", subject="can-bo-thue", agency=agency)
        async with httpx.AsyncClient(
            base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        ) as outsider:
            assert (await outsider.get("/tasks")).status_code == 403, agency
            assert (await outsider.post("/tasks/1/claim")).status_code == 403, agency
            assert (await outsider.post("/tasks/1/complete", json={"outcome": "done"})).status_code == 403
    async with signed_in(manual, "land_registry", "operator") as operator:
        assert (await operator.get("/tasks")).status_code == 200  # operators may read
        assert (await operator.post("/tasks/1/claim")).status_code == 403
        assert (await operator.post("/tasks/1/complete", json={"outcome": "done"})).status_code == 403
        assert (await operator.post("/tasks/1/release")).status_code == 403


async def test_the_officers_page_completes_a_task_in_headless_chromium(manual: Stack) -> None:
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` for the browser test")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with signed_in(manual, "intake") as intake, officer(manual, "can-bo-c") as c:
        dossier_id = (await intake.post("/dossiers", json=land_transfer(40_002))).json()["id"]
        task = await task_of(c, dossier_id)
        url = manual.services["land_registry"].url
        token = manual.token("agency_officer", subject="can-bo-c", agency="land_registry")
        profile = Path(tempfile.mkdtemp(prefix="officer-chromium-"))
        errors: list[str] = []
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1400, "height": 800},
                locale="vi-VN",
            )
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{url}/officer")
            # A wrong token shows the refusal in Vietnamese, and no queue.
            await page.fill("#token", "sai")
            await page.click("#signin button[type=submit]")
            await page.wait_for_selector("#error:has-text('không hợp lệ')")
            await page.fill("#token", token)
            await page.click("#signin button[type=submit]")
            row = page.locator(f'tr[data-task="{task["id"]}"]')
            await row.wait_for()
            assert "Thẩm định hồ sơ" in await row.inner_text()
            assert await row.get_attribute("class") in ("green", "yellow", "red")
            await page.screenshot(path=SCREENSHOTS / "queue.png", full_page=True)
            await row.locator("input[name=note]").fill("hồ sơ hợp lệ")
            await row.locator("button[type=submit]").click()
            await page.wait_for_selector(f'tr[data-task="{task["id"]}"] >> text=Đạt')
            await page.screenshot(path=SCREENSHOTS / "completed.png", full_page=True)
            await context.close()
        assert errors == []
        await wait_for_status(intake, dossier_id, "awaiting_payment")
        assert await outbox_types(manual, "land_registry", dossier_id) == ["vn.gov.dossier.step_completed.v1"]


async def test_the_officer_bot_decides_a_task_after_its_delay(stack: Stack) -> None:
    bot = {"AGENCY_DECISIONS": "catalog", "OFFICER_BOT": "on", "OFFICER_BOT_DELAY_HOURS": "6,6"}
    async with (
        fresh_system(stack, SERVICES, extra_env=bot) as office,
        signed_in(office, "intake") as intake,
        officer(office, "truong-phong") as reader,
    ):
        filed = await intake.post("/dossiers", json=land_transfer(40_003))
        assert filed.status_code == 201, filed.text
        dossier_id = filed.json()["id"]
        task = await task_of(reader, dossier_id)
        await asyncio.sleep(2)  # the bot looks every second: six working hours have not passed
        assert (await task_of(reader, dossier_id))["status"] == "open"

        # Six working hours later the bot has appraised it (the rule's result) and tax assessed it.
        received = datetime.fromisoformat(task["received_at"])
        await set_time(office, received + timedelta(days=1))
        moved = await wait_for_status(intake, dossier_id, "awaiting_payment")
        appraisal = next(h for h in moved["handoffs"] if h["action"] == "appraise")
        assert appraisal["outcome"] == "done"
        done = (await reader.get("/tasks", params={"status": "done", "assignee": "officer-bot"})).json()
        assert [t["dossier_id"] for t in done["tasks"]] == [dossier_id]
