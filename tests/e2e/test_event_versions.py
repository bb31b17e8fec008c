"""A stream mixing v1 and v2 events is processed end to end (readers upcast, writers emit v2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.agencies import ONE_STOP, source_uri
from contracts.envelope import CloudEvent
from contracts.events import Applicant, DossierReceivedV1
from infra.stack import Stack
from tests.dossier_samples import applicant, eventually_equal, land_transfer, signed_in, wait_for_status
from tests.kafka_probe import read_topic

pytestmark = pytest.mark.real


async def test_v1_and_v2_receipts_in_one_stream(services: Stack, db: asyncpg.Pool) -> None:
    old_id = f"HS-V1-{uuid.uuid4().hex[:8]}"
    old = CloudEvent.wrap(
        DossierReceivedV1(
            dossier_id=old_id,
            procedure_code="LAND-TRANSFER",
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            level="city",
            applicant=Applicant.model_validate(applicant(8001)),
            documents=["TRANSFER_CONTRACT", "LAND_CERTIFICATE"],
            received_at=datetime(2025, 12, 1, 2, tzinfo=UTC),
            appointment_at=datetime(2025, 12, 11, 2, tzinfo=UTC),
            statutory_limit_days=Decimal(8),
            fees_vnd=500_000,
            return_place="Bộ phận Một cửa",
        ),
        source=source_uri(ONE_STOP),
        time=datetime(2025, 12, 1, 2, tzinfo=UTC),
    )
    producer = AIOKafkaProducer(**services.superuser.client_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.INTAKE_EVENTS,
            key=old.key,
            value=old.value(),
            headers=services.signed_headers(old.headers(), old.value()),
        )
    finally:
        await producer.stop()
    async with signed_in(services, "intake") as intake:
        new_id = (await intake.post("/dossiers", json=land_transfer(8002))).json()["id"]
        await wait_for_status(intake, new_id, "awaiting_payment")

    receipts = "SELECT body FROM notification.notices WHERE dossier_id = $1 AND kind = 'receipt'"
    await eventually_equal(
        lambda: db.fetchval(
            "SELECT count(*) FROM notification.notices"
            " WHERE kind = 'receipt' AND dossier_id = ANY($1::text[])",
            [old_id, new_id],
        ),
        2,
    )
    old_receipt = await db.fetchval(receipts, old_id)
    assert "1. TRANSFER_CONTRACT" in old_receipt  # v1 carried codes only
    assert "Tổng cộng: 500.000 đồng" in old_receipt
    new_receipt = await db.fetchval(receipts, new_id)
    assert "Hợp đồng chuyển nhượng quyền sử dụng đất đã công chứng hoặc chứng thực" in new_receipt

    # The desk writes v2 only.
    written = {
        dict(r.headers)["ce_type"].decode()
        for topic in (topics.INTAKE_EVENTS, topics.INTAKE_CITIZENS)
        for r in await read_topic(services.superuser, topic)
        if r.key == new_id.encode()
    }
    assert written == {"vn.gov.dossier.received.v2", "vn.gov.dossier.progressed.v2"}
