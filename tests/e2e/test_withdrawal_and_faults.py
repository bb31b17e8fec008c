"""Withdrawal, refusal by the desk and apologies for faulty handling, on the real system.

What the citizen gets is read from the development mailbox; what the agencies and the
notification service did, from their own tables.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import pytest

from infra.stack import Stack
from tests.dossier_samples import (
    certified_copy,
    eventually_equal,
    land_transfer,
    pay,
    signed_in,
    wait_for_status,
)
from tests.e2e.test_apology import now_of
from tests.kafka_probe import read_topic
from tests.systems import set_time

pytestmark = pytest.mark.real


def mails_about(services: Stack, dossier_id: str) -> list[EmailMessage]:
    """Every e-mail whose subject names the dossier, oldest first."""
    assert services.mailbox is not None
    return [m for m in services.mailbox.messages() if dossier_id in str(m["Subject"])]


def fault_letters(services: Stack, dossier_id: str) -> list[EmailMessage]:
    """The letters apologising for faulty handling (thư xin lỗi) about the dossier."""
    return [m for m in mails_about(services, dossier_id) if str(m["Subject"]).startswith("Thư xin lỗi")]


def plain_text(mail: EmailMessage) -> str:
    """The message's plain-text body."""
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def delivery_statuses(db: asyncpg.Pool, dossier_id: str) -> dict[str, str]:
    """Each notice kind of the dossier with its e-mail delivery's status."""
    rows = await db.fetch(
        "SELECT n.kind, d.status FROM notification.notices n JOIN notification.deliveries d"
        " ON d.notice_id = n.id WHERE n.dossier_id = $1 AND d.channel = 'email'",
        dossier_id,
    )
    return {r["kind"]: r["status"] for r in rows}


async def until(check: Any, *, timeout: float = 90) -> None:
    """Poll the coroutine function ``check`` until it returns true."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{check.__name__} never held"
        await asyncio.sleep(0.3)


async def test_a_withdrawal_voids_queued_notices_and_only_its_receipt_is_mailed(
    services: Stack, db: asyncpg.Pool
) -> None:
    assert services.mailbox is not None
    async with signed_in(services, "intake") as intake:
        # With the mail server down, the receipt and the tax notice stay queued (pending).
        services.mailbox.stop()
        try:
            dossier_id = (await intake.post("/dossiers", json=land_transfer(21_001))).json()["id"]
            await wait_for_status(intake, dossier_id, "awaiting_payment")

            async def both_queued() -> bool:
                return await delivery_statuses(db, dossier_id) == {
                    "receipt": "pending",
                    "tax_notice": "pending",
                }

            await until(both_queued)
            withdrawn = await intake.post(
                f"/dossiers/{dossier_id}/withdrawal", json={"reason": "Hai bên thỏa thuận hủy hợp đồng"}
            )
            assert withdrawn.status_code == 200, withdrawn.text
            assert withdrawn.json()["status"] == "withdrawn"

            async def voided() -> bool:
                return await delivery_statuses(db, dossier_id) == {
                    "receipt": "voided",
                    "tax_notice": "voided",
                    "withdrawal": "pending",
                }

            await until(voided)
        finally:
            services.start_mailbox()

        # The receipt of the withdrawal goes out when the server is back, at its next attempt:
        # the services' clocks are virtual, so the retry delay passes when the test moves them.
        await set_time(services, await now_of(services) + timedelta(hours=2))

        async def withdrawal_mailed() -> bool:
            return await delivery_statuses(db, dossier_id) == {
                "receipt": "voided",
                "tax_notice": "voided",
                "withdrawal": "sent",
            }

        await until(withdrawal_mailed, timeout=120)
        (mail,) = mails_about(services, dossier_id)
        assert str(mail["Subject"]) == f"Xác nhận rút hồ sơ {dossier_id}"
        assert "Hai bên thỏa thuận hủy hợp đồng" in plain_text(mail)
        # Nothing can happen to it any more: paying is refused, so is a second withdrawal.
        paid = await intake.post(
            f"/dossiers/{dossier_id}/payments", json={"notice_number": "TB-2026-000001", "amount_vnd": 1}
        )
        assert paid.status_code == 409
        again = await intake.post(f"/dossiers/{dossier_id}/withdrawal", json={"reason": "lần nữa"})
        assert again.status_code == 409


async def test_an_agency_holding_a_withdrawn_dossier_stops_and_its_late_answer_is_ignored(
    services: Stack, db: asyncpg.Pool
) -> None:
    async with signed_in(services, "intake") as intake:
        services.stop_service("land_registry")
        try:
            filed = (await intake.post("/dossiers", json=land_transfer(21_002))).json()
            dossier_id = filed["id"]
            # Only the receipt's holder may withdraw as a citizen: a stranger, a wrong code and
            # an agency officer are refused; the right code is enough.
            url = f"/dossiers/{dossier_id}/withdrawal"
            body = {"reason": "Tôi không bán nữa"}
            async with httpx.AsyncClient(base_url=services.services["intake"].url, timeout=30) as anonymous:
                assert (await anonymous.post(url, json=body)).status_code == 401
            async with signed_in(services, "intake", "citizen") as citizen:
                wrong = "A" * 8 if filed["lookup_code"] != "A" * 8 else "B" * 8
                assert (await citizen.post(url, json={**body, "lookup_code": wrong})).status_code == 404
                assert (await citizen.post(url, json=body)).status_code == 404
                async with signed_in(services, "intake", "agency_officer") as officer:
                    assert (await officer.post(url, json=body)).status_code == 403
                assert (await intake.get(f"/dossiers/{dossier_id}")).json()["status"] == "processing"
                done = await citizen.post(url, json={**body, "lookup_code": filed["lookup_code"]})
                assert done.status_code == 200, done.text
        finally:
            services.start_service("land_registry")
            await asyncio.to_thread(services.wait_healthy, "land_registry")

        # The registry (deciding at once in the tests) answers the handoff it finds first, then
        # reads that the desk took it back; the desk ignores the answer, no dead letter either.
        async def registry_answered() -> bool:
            done = await db.fetchval(
                "SELECT count(*) FROM land_registry.steps_done WHERE dossier_id = $1", dossier_id
            )
            return bool(done)

        async def desk_idle() -> bool:
            backlog = (await intake.get("/backlog")).json()
            return all(n == 0 for n in backlog.values())

        await until(registry_answered)
        await until(desk_idle)
        state = await wait_for_status(intake, dossier_id, "withdrawn")
        assert [h["to"] for h in state["handoffs"]] == ["one_stop", "land_registry"]
        assert state["handoffs"][-1]["outcome"] == "withdrawn"
        parked = await read_topic(services.superuser, "intake.dlq")
        assert [r for r in parked if r.key == dossier_id.encode()] == []


async def test_the_desk_refuses_a_dossier_and_the_citizen_gets_the_reason(services: Stack) -> None:
    async with signed_in(services, "intake") as intake:
        dossier_id = (await intake.post("/dossiers", json=land_transfer(21_004))).json()["id"]
        await wait_for_status(intake, dossier_id, "awaiting_payment")
        refused = await intake.post(
            f"/dossiers/{dossier_id}/refusal", json={"reason": "Thửa đất đang có tranh chấp"}
        )
        assert refused.status_code == 200, refused.text
        assert refused.json()["status"] == "rejected"
        async with signed_in(services, "intake", "citizen") as citizen:
            forbidden = await citizen.post(f"/dossiers/{dossier_id}/refusal", json={"reason": "x"})
            assert forbidden.status_code == 403

        def results() -> list[EmailMessage]:
            return [m for m in mails_about(services, dossier_id) if str(m["Subject"]).startswith("Kết quả")]

        async def result_count() -> int:
            return len(results())

        await eventually_equal(result_count, 1)
        text = plain_text(results()[0])
        assert "KHÔNG ĐƯỢC GIẢI QUYẾT" in text
        assert "Thửa đất đang có tranh chấp" in text


async def test_a_second_supplement_request_owes_one_fault_apology(services: Stack) -> None:
    async with signed_in(services, "intake") as intake:
        services.stop_service("land_registry")  # the dossier stays at the desk's reach
        try:
            dossier_id = (await intake.post("/dossiers", json=land_transfer(21_003))).json()["id"]

            async def ask(reason: str) -> None:
                asked = await intake.post(
                    f"/dossiers/{dossier_id}/supplement-requests",
                    json={"missing_documents": ["Bản vẽ sơ đồ thửa đất"], "reason": reason},
                )
                assert asked.status_code == 200, asked.text
                given = await intake.post(f"/dossiers/{dossier_id}/supplements", json={"documents": []})
                assert given.status_code == 200, given.text

            await ask("thiếu bản vẽ")  # the first request is the desk's right
            await ask("bản vẽ chưa có chữ ký")  # the second is a fault: one letter
            await ask("bản vẽ mờ")  # the same fault again: no second letter

            async def fault_letter_count() -> int:
                return len(fault_letters(services, dossier_id))

            await eventually_equal(fault_letter_count, 1)
            await asyncio.sleep(2)  # a doubled letter would have arrived by now
            (letter,) = fault_letters(services, dossier_id)
            text = plain_text(letter)
            assert "THƯ XIN LỖI" in text
            assert "yêu cầu bổ sung lần nữa" in text
            assert "Bắc Kạn" in text  # the rule's authority is quoted
        finally:
            services.start_service("land_registry")
            await asyncio.to_thread(services.wait_healthy, "land_registry")

    # Operators see it on the console, by kind.
    token = services.env()["CONSOLE_TOKEN"]
    console = services.services["console"].url
    async with httpx.AsyncClient(base_url=console, headers={"Authorization": f"Bearer {token}"}) as client:

        async def listed() -> list[dict[str, Any]]:
            response = await client.get("/api/apologies", params={"kind": "repeat_supplement_request"})
            return [a for a in response.json() if a["dossier_id"] == dossier_id]

        await until(_non_empty(listed))
        (entry,) = await listed()
        assert entry["issued_by_agency"] == "one_stop"
        late = await client.get("/api/apologies", params={"kind": "late"})
        assert all(a["dossier_id"] != dossier_id for a in late.json())


async def test_the_desk_records_an_unlisted_request_and_a_corrected_result_for_the_agency_at_fault(
    services: Stack,
) -> None:
    async with signed_in(services, "intake") as intake:
        dossier_id = (await intake.post("/dossiers", json=land_transfer(21_007))).json()["id"]
        await wait_for_status(intake, dossier_id, "awaiting_payment")
        url = f"/dossiers/{dossier_id}/faults"
        unlisted = {
            "kind": "unlisted_document_requested",
            "agency": "land_registry",
            "detail": "Văn phòng đăng ký yêu cầu nộp thêm bản vẽ sơ đồ thửa đất",
            "documents": ["Bản vẽ sơ đồ thửa đất"],
        }
        # A listed document is no fault; a result not yet issued cannot have been corrected; an
        # agency without a step of the dossier cannot be at fault.
        listed = await intake.post(url, json={**unlisted, "documents": ["LAND_CERTIFICATE"]})
        assert listed.status_code == 422, listed.text
        early = await intake.post(url, json={**unlisted, "kind": "result_corrected"})
        assert early.status_code == 409, early.text
        stranger = await intake.post(url, json={**unlisted, "agency": "urban_management"})
        assert stranger.status_code == 409, stranger.text
        async with signed_in(services, "intake", "agency_officer") as officer:
            assert (await officer.post(url, json=unlisted)).status_code == 403
        for _ in range(2):  # the same fault twice: one letter
            recorded = await intake.post(url, json=unlisted)
            assert recorded.status_code == 200, recorded.text

        async def fault_letter_count() -> int:
            return len(fault_letters(services, dossier_id))

        await eventually_equal(fault_letter_count, 1)
        text = plain_text(fault_letters(services, dossier_id)[0])
        assert "không có trong thành phần hồ sơ" in text
        assert "Bản vẽ sơ đồ thửa đất" in text

        # Paid and returned, then the registry's certificate turns out wrong and is corrected.
        paid = await pay(intake, dossier_id)
        assert paid.status_code == 200, paid.text
        await wait_for_status(intake, dossier_id, "returned")
        corrected = await intake.post(
            url,
            json={
                "kind": "result_corrected",
                "agency": "land_registry",
                "detail": "Diện tích ghi trên giấy chứng nhận là 120,5 m², không phải 125,0 m²",
            },
        )
        assert corrected.status_code == 200, corrected.text
        await eventually_equal(fault_letter_count, 2)
        assert any("đính chính" in plain_text(m) for m in fault_letters(services, dossier_id))

    token = services.env()["CONSOLE_TOKEN"]
    console = services.services["console"].url
    async with httpx.AsyncClient(base_url=console, headers={"Authorization": f"Bearer {token}"}) as client:

        async def kinds() -> list[str]:
            response = await client.get("/api/apologies")
            return sorted(a["kind"] for a in response.json() if a["dossier_id"] == dossier_id)

        await eventually_equal(kinds, ["result_corrected", "unlisted_document_requested"])


def _non_empty(read: Any) -> Any:
    async def non_empty() -> bool:
        return bool(await read())

    return non_empty


async def test_the_citizen_rates_the_service_once_after_the_result_and_the_console_shows_it(
    services: Stack,
) -> None:
    scores = {"access": 5, "procedure": 4, "officials": 5, "result": 5, "feedback": 3}
    async with signed_in(services, "intake") as intake:
        filed = (await intake.post("/dossiers", json=certified_copy(21_005))).json()
        await wait_for_status(intake, filed["id"], "returned")
        pending = (await intake.post("/dossiers", json=land_transfer(21_006))).json()
        await wait_for_status(intake, pending["id"], "awaiting_payment")
    async with httpx.AsyncClient(base_url=services.services["intake"].url, timeout=30) as citizen:
        url = f"/dossiers/{filed['id']}/rating"
        wrong = "A" * 8 if filed["lookup_code"] != "A" * 8 else "B" * 8
        assert (await citizen.post(url, json={"lookup_code": wrong, "scores": scores})).status_code == 404
        too_high = {"lookup_code": filed["lookup_code"], "scores": {**scores, "access": 6}}
        assert (await citizen.post(url, json=too_high)).status_code == 422
        early = {"lookup_code": pending["lookup_code"], "scores": scores}
        assert (await citizen.post(f"/dossiers/{pending['id']}/rating", json=early)).status_code == 409
        rated = await citizen.post(url, json={"lookup_code": filed["lookup_code"], "scores": scores})
        assert rated.status_code == 200, rated.text
        again = await citizen.post(url, json={"lookup_code": filed["lookup_code"], "scores": scores})
        assert again.status_code == 409  # once per dossier

    token = services.env()["CONSOLE_TOKEN"]
    console = services.services["console"].url
    async with httpx.AsyncClient(base_url=console, headers={"Authorization": f"Bearer {token}"}) as client:

        async def certified_copies_rated() -> list[dict[str, Any]]:
            rows = (await client.get("/api/satisfaction", params={"by": "procedure"})).json()
            return [r for r in rows if r["key"] == "CERTIFIED-COPY"]

        await until(_non_empty(certified_copies_rated))
        (row,) = await certified_copies_rated()
        assert row["ratings"] >= 1
        by_agency = (await client.get("/api/satisfaction", params={"by": "agency"})).json()
        assert "one_stop" in {r["key"] for r in by_agency}
        page = await client.get("/on-time")
        assert page.status_code == 200
        assert 'id="satisfaction-procedure"' in page.text
