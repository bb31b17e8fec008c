"""``GET /backlog`` and the consumers' health on the real broker, from the groups' offsets.

Records count as unconsumed until the handler's transaction committed and the offset after it
was committed; a probe added with ``counts_backlog`` is reported beside them. A subscription
with records waiting and no commit for ``consumer_stall_seconds`` turns ``/health`` red.
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


def _runtime(stack: Stack, *, stall_seconds: float = 120) -> tuple[ServiceRuntime, str]:
    """A service of its own (schema, topic, group) whose one subscription reads ``topic``."""
    name = f"backlogtest_{uuid.uuid4().hex[:8]}"
    topic = topics.handoffs(name)
    runtime = ServiceRuntime(
        settings=ServiceSettings(
            service=name,
            kafka_bootstrap_servers=stack.bootstrap_servers,
            database_url=stack.database_url,
            host="127.0.0.1",
            port=0,
            consumer_stall_seconds=stall_seconds,
        ),
        agency=name,
        migrations=(Migration(f"{name}-001", "CREATE TABLE handled (event_id text PRIMARY KEY)"),),
        topics_used=[topic],
    )
    return runtime, topic


async def _publish(stack: Stack, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        for n in range(count):
            event = _handover(n)
            await producer.send_and_wait(topic, key=event.key, value=event.value(), headers=event.headers())
    finally:
        await producer.stop()


async def _drop(stack: Stack, runtime: ServiceRuntime) -> None:
    await runtime.stop()
    conn = await asyncpg.connect(stack.database_url)
    await conn.execute(f'DROP SCHEMA "{runtime.name}" CASCADE')
    await conn.close()


async def test_backlog_counts_records_until_their_work_is_committed(stack: Stack) -> None:
    runtime, topic = _runtime(stack)
    group = f"{runtime.name}.handoffs"
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
        await _publish(stack, topic, 3)

        # Fetched (one is in the handler) but none committed: all three still count.
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 3, "outbox": 0, "letters_owed": 7})
        await asyncio.sleep(0.5)
        assert (await runtime.backlog())["unconsumed"] == 3

        release.set()
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 0, "outbox": 0, "letters_owed": 4})
    finally:
        release.set()
        await _drop(stack, runtime)


async def test_a_consumer_that_commits_nothing_while_records_wait_turns_health_red(stack: Stack) -> None:
    runtime, topic = _runtime(stack, stall_seconds=1.0)
    release = asyncio.Event()

    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        await release.wait()  # stuck, as a consumer that stopped fetching looks from outside
        await uow.conn.execute("INSERT INTO handled VALUES ($1)", event.id)

    group = f"{runtime.name}.handoffs"
    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    await runtime.start()
    try:
        # Idle, with nothing waiting: healthy however long nothing is committed.
        assert (await runtime.health())["consumers"] is True
        await asyncio.sleep(1.2)
        assert (await runtime.health())["consumers"] is True

        await _publish(stack, topic, 2)
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 2, "outbox": 0})
        assert (await runtime.health())["consumers"] is True  # waiting, but not for long yet
        await asyncio.sleep(1.2)
        checks = await runtime.health()
        assert checks["consumers"] is False
        assert (checks["postgres"], checks["kafka"]) == (True, True)  # only the consumer is at fault
        assert await runtime.stalled_consumers() == [f"{group} on {topic}"]

        release.set()  # it moves again: healthy as soon as its group commits
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 0, "outbox": 0})
        assert (await runtime.health())["consumers"] is True
    finally:
        release.set()
        await _drop(stack, runtime)
