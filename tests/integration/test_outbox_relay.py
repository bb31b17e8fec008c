"""The outbox relay on real Postgres and Kafka: order per dossier, once, one leader."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from contracts.agencies import source_uri
from contracts.envelope import CloudEvent
from contracts.events import StepCompleted
from infra.stack import Stack
from services.runtime.database import create_pool, migrate
from services.runtime.outbox_relay import OutboxRelay
from services.runtime.provisioning import ensure_topics
from services.runtime.unit_of_work import unit_of_work
from tests.dossier_samples import eventually_equal
from tests.kafka_probe import read_topic

pytestmark = pytest.mark.real

WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


def step(dossier_id: str, n: int) -> StepCompleted:
    return StepCompleted(
        dossier_id=dossier_id,
        step_index=n,
        agency="tax",
        action="assess",
        outcome="done",
        received_at=WHEN,
        completed_at=WHEN,
    )


async def test_two_relays_publish_every_row_once_in_commit_order(stack: Stack) -> None:
    suffix = uuid.uuid4().hex[:8]
    schema, topic = f"relay_{suffix}", f"relay-test-{suffix}"
    pool = await create_pool(stack.database_url, schema=schema, size=6)
    await migrate(pool, schema=schema, migrations=())
    await ensure_topics(stack.superuser, [topic])
    dossiers = [f"HS-R{suffix}-{i}" for i in range(3)]
    signer = stack.secrets.signing_key("tax")

    async def write(dossier_id: str) -> None:
        # One transaction per event, the three dossiers interleaving their commits.
        for n in range(100):
            async with unit_of_work(
                pool, now=WHEN, source=source_uri("tax"), outbox_channel=f"outbox_{schema}", signer=signer
            ) as uow:
                await uow.publish(step(dossier_id, n), topic=topic)

    producers = [
        AIOKafkaProducer(**stack.superuser.client_kwargs(), enable_idempotence=True) for _ in range(2)
    ]
    relays = [
        OutboxRelay(pool=pool, producer=p, schema=schema, channel=f"outbox_{schema}") for p in producers
    ]
    for producer in producers:
        await producer.start()
    for relay in relays:
        await relay.start()  # both try to lead while rows are being written
    try:
        await asyncio.gather(*(write(d) for d in dossiers))
        await eventually_equal(
            lambda: pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"), 0
        )
    finally:
        for relay in relays:
            await relay.stop()
        for producer in producers:
            await producer.stop()
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()

    records = await read_topic(stack.superuser, topic)
    assert len(records) == 300  # each row once, although two relays ran
    assert sorted(r.published_total for r in relays) == [0, 300]  # exactly one led
    for dossier_id in dossiers:
        events = [
            CloudEvent.from_record(key=r.key, value=r.value, headers=r.headers)
            for r in records
            if r.key == dossier_id.encode()
        ]
        assert len({r.partition for r in records if r.key == dossier_id.encode()}) == 1
        assert [e.data.step_index for e in events if isinstance(e.data, StepCompleted)] == list(range(100))
