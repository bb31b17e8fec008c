"""Kafka delivers at least once; the inbox makes a redelivered event change nothing."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from infra.stack import Stack
from tests.dossier_samples import land_transfer, pay, signed_in, wait_for_status
from tests.kafka_probe import topic_size, wait_group_caught_up

pytestmark = pytest.mark.real

STATE_QUERIES = {
    "intake": "SELECT status, current_step,"
    " (SELECT count(*) FROM intake.handoffs h WHERE h.dossier_id = d.id)"
    " FROM intake.dossiers d WHERE id = $1",
    "land_registry": "SELECT count(*) FROM land_registry.steps_done WHERE dossier_id = $1",
    "tax": "SELECT count(*) FROM tax.assessments WHERE dossier_id = $1",
    "notification": "SELECT count(*) FROM notification.notices WHERE dossier_id = $1",
}


async def snapshot(db: asyncpg.Pool, dossier_id: str) -> dict[str, Any]:
    """Everything each service holds and has published about the dossier.

    Scoped to the dossier: other tests' dossiers may legitimately move meanwhile.
    """
    state: dict[str, Any] = {}
    for service, query in STATE_QUERIES.items():
        state[service] = tuple(await db.fetchrow(query, dossier_id) or ())
        state[f"{service}.outbox"] = await db.fetchval(
            f"SELECT count(*) FROM {service}.outbox WHERE key = $1", dossier_id.encode()
        )
    return state


@pytest.mark.parametrize(
    ("emitter", "event_type", "topic", "group"),
    [
        ("intake", "vn.gov.dossier.handed_over.v1", "handoffs.land_registry", "land_registry.handoffs"),
        ("intake", "vn.gov.dossier.handed_over.v1", "handoffs.tax", "tax.handoffs"),
        (
            "land_registry",
            "vn.gov.dossier.step_completed.v1",
            "land_registry.events",
            "intake.from.land_registry",
        ),
        ("tax", "vn.gov.tax.payment_notice_issued.v1", "tax.events", "notification.tax"),
        ("intake", "vn.gov.dossier.received.v2", "intake.citizens", "notification.citizens"),
    ],
)
async def test_redelivered_event_changes_nothing(
    services: Stack, db: asyncpg.Pool, emitter: str, event_type: str, topic: str, group: str
) -> None:
    async with signed_in(services, "intake") as intake:
        dossier_id = (await intake.post("/dossiers", json=land_transfer(5000))).json()["id"]
        await wait_for_status(intake, dossier_id, "awaiting_payment")
        (await pay(intake, dossier_id)).raise_for_status()
        await wait_for_status(intake, dossier_id, "returned")
    await wait_group_caught_up(services.superuser, group, topic)
    before = await snapshot(db, dossier_id)
    dead_letters = f"{group.split('.')[0]}.dlq"
    dead_before = await topic_size(services.superuser, dead_letters)

    # The exact record as first published (same ce_id), taken from the emitter's outbox.
    rows = await db.fetch(
        f"SELECT key, value, headers FROM {emitter}.outbox"
        " WHERE topic = $1 AND event_type = $2 AND key = $3 ORDER BY position",
        topic,
        event_type,
        dossier_id.encode(),
    )
    assert rows, "the event to redeliver was published"
    producer = AIOKafkaProducer(**services.superuser.client_kwargs())
    await producer.start()
    try:
        for row in rows:
            for _ in range(3):
                await producer.send_and_wait(
                    topic,
                    key=row["key"],
                    value=row["value"],
                    headers=[(n, v.encode()) for n, v in json.loads(row["headers"])],
                )
    finally:
        await producer.stop()

    await wait_group_caught_up(services.superuser, group, topic)
    assert await snapshot(db, dossier_id) == before
    # Recognised as a duplicate, not refused by a unique constraint and dead-lettered.
    assert await topic_size(services.superuser, dead_letters) == dead_before
    consumer = group
    duplicates = await db.fetchval(
        f"SELECT count(*) FROM {group.split('.')[0]}.inbox WHERE consumer = $1 AND event_type = $2",
        consumer,
        event_type,
    )
    assert duplicates >= len(rows)  # handled once each, recorded once each
