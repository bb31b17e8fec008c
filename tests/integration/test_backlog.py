"""``GET /backlog`` and the consumers' health on the real broker, from the groups' offsets.

Records count as unconsumed until the handler's transaction committed and the offset after it
was committed; a probe added with ``counts_backlog`` is reported beside them. A subscription
with records waiting and no commit for ``consumer_stall_seconds`` turns ``/health`` red.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver
from infra.stack import Stack
from services.runtime.database import Connection
from services.runtime.unit_of_work import UnitOfWork
from tests.dossier_samples import eventually_equal
from tests.own_service import drop, handover, own_runtime, publish

pytestmark = pytest.mark.real


async def test_backlog_counts_records_until_their_work_is_committed(stack: Stack) -> None:
    runtime, topic = own_runtime(stack, "event_id text PRIMARY KEY")
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
        await publish(stack, topic, [handover(n) for n in range(3)])

        # Fetched (one is in the handler) but none committed: all three still count.
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 3, "outbox": 0, "letters_owed": 7})
        await asyncio.sleep(0.5)
        assert (await runtime.backlog())["unconsumed"] == 3

        release.set()
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 0, "outbox": 0, "letters_owed": 4})
    finally:
        release.set()
        await drop(stack, runtime)


async def test_a_consumer_that_commits_nothing_while_records_wait_turns_health_red(stack: Stack) -> None:
    runtime, topic = own_runtime(stack, "event_id text PRIMARY KEY", stall_seconds=1.0)
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

        await publish(stack, topic, [handover(n) for n in range(2)])
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
        await drop(stack, runtime)
