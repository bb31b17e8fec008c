"""``ServiceRuntime.backlog()`` (``GET /backlog``) on the real broker: what a replay waits on.

Records count as unconsumed until the handler's transaction committed and the offset after it
was committed; a probe added with ``counts_backlog`` is reported beside them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.agencies import ONE_STOP, source_uri
from contracts.envelope import CloudEvent
from contracts.events import Applicant, DossierHandedOver
from infra.stack import Stack
from services.runtime.database import Connection, Migration
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.runtime.unit_of_work import UnitOfWork
from tests.dossier_samples import applicant, eventually_equal

pytestmark = pytest.mark.real

WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


def _handover(n: int) -> CloudEvent:
    return CloudEvent.wrap(
        DossierHandedOver(
            dossier_id=f"HS-BACKLOG-{n}",
            procedure_code="LAND-TRANSFER",
            step_index=1,
            from_agency=ONE_STOP,
            to_agency="land_registry",
            action="appraise",
            budget_days=Decimal(3),
            sent_at=WHEN,
            due_at=WHEN,
            applicant=Applicant.model_validate(applicant(n)),
            details={},
        ),
        source=source_uri(ONE_STOP),
        time=WHEN,
    )


async def test_backlog_counts_records_until_their_work_is_committed(stack: Stack) -> None:
    name = f"backlogtest_{uuid.uuid4().hex[:8]}"
    topic, group = topics.handoffs(name), f"{name}.handoffs"
    runtime = ServiceRuntime(
        settings=ServiceSettings(
            service=name,
            kafka_bootstrap_servers=stack.bootstrap_servers,
            database_url=stack.database_url,
            host="127.0.0.1",
            port=0,
        ),
        agency=name,
        migrations=(Migration(f"{name}-001", "CREATE TABLE handled (event_id text PRIMARY KEY)"),),
        topics_used=[topic],
    )
    release = asyncio.Event()

    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        await release.wait()  # the agency is "busy": nothing commits until the test says so
        await uow.conn.execute("INSERT INTO handled VALUES ($1)", event.id)

    async def owed(conn: Connection, _: datetime) -> int:
        return 7 - int(await conn.fetchval("SELECT count(*) FROM handled"))

    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    runtime.counts_backlog("letters_owed", owed)
    await runtime.start()
    try:
        # No records yet; once the subscriber has its partitions, nothing is unconsumed.
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 0, "outbox": 0, "letters_owed": 7})
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
        await producer.start()
        try:
            for n in range(3):
                event = _handover(n)
                await producer.send_and_wait(
                    topic, key=event.key, value=event.value(), headers=event.headers()
                )
        finally:
            await producer.stop()

        # Fetched (one is in the handler) but none committed: all three still count.
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 3, "outbox": 0, "letters_owed": 7})
        await asyncio.sleep(0.5)
        assert (await runtime.backlog())["unconsumed"] == 3

        release.set()
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 0, "outbox": 0, "letters_owed": 4})
    finally:
        release.set()
        await runtime.stop()
        conn = await asyncpg.connect(stack.database_url)
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        await conn.close()
