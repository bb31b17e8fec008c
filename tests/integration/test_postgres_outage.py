"""Postgres goes away while records keep coming: nothing is lost, nothing is doubled, nothing stops.

The service reaches Postgres through a proxy the test cuts (every connection dropped, new ones
refused) and restores. Meanwhile its batches fail with connection errors, are retried with
backoff and their offsets are not committed; once Postgres is back every record is handled
exactly once and none is dead-lettered.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from contracts import topics
from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver
from infra.stack import Stack
from services.runtime.unit_of_work import UnitOfWork
from tests.dossier_samples import eventually_equal
from tests.kafka_probe import topic_size, wait_group_caught_up
from tests.own_service import drop, handover, own_runtime, publish
from tests.pg_proxy import CuttableProxy

pytestmark = pytest.mark.real


async def test_records_that_arrive_during_an_outage_are_handled_once_it_is_over(stack: Stack) -> None:
    proxy = CuttableProxy(stack.database_url)
    await proxy.restore()
    runtime, topic = own_runtime(stack, "event_id text PRIMARY KEY, dossier_id text", database_url=proxy.url)
    group = f"{runtime.name}.handoffs"

    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        assert isinstance(event.data, DossierHandedOver)
        await uow.conn.execute("INSERT INTO handled VALUES ($1, $2)", event.id, event.data.dossier_id)

    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    direct = await asyncpg.connect(stack.database_url)  # the test's own way in, past the proxy

    async def handled() -> int:
        return int(await direct.fetchval(f'SELECT count(*) FROM "{runtime.name}".handled'))

    await runtime.start()
    try:
        await publish(stack, topic, [handover(n, prefix="HS-OUTAGE") for n in range(10)])
        await wait_group_caught_up(stack.superuser, group, topic)
        assert await handled() == 10

        await proxy.cut()
        await publish(stack, topic, [handover(n, prefix="HS-OUTAGE") for n in range(10, 30)])
        await asyncio.sleep(2)  # fetched, tried, failed, backing off
        assert (await runtime.health())["postgres"] is False
        assert await handled() == 10
        with pytest.raises(AssertionError, match="still behind"):  # nothing committed meanwhile
            await wait_group_caught_up(stack.superuser, group, topic, timeout=1)

        await proxy.restore()
        await wait_group_caught_up(stack.superuser, group, topic, timeout=60)
        assert await handled() == 30
        assert await direct.fetchval(f'SELECT count(*) FROM "{runtime.name}".inbox') == 30

        async def postgres_ok() -> bool:
            return (await runtime.health())["postgres"]

        await eventually_equal(postgres_ok, True)
        dead_letters = runtime.kafka_name(topics.dead_letters(runtime.name))
        assert await topic_size(stack.superuser, dead_letters) == 0
    finally:
        await direct.close()
        await proxy.restore()  # the service stops cleanly, then the proxy goes
        await drop(stack, runtime)
        await proxy.cut()
