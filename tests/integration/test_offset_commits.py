"""Offsets on the real broker: committed every ``CONSUMER_COMMIT_MS`` while busy, all of them once idle.

A subscription acks every batch, but Kafka hears from it only when it has caught up, when the
interval has passed, before a rebalance and when it stops (:class:`services.runtime.batches.Commits`).
The group's committed offsets are read from the broker, as ``GET /backlog`` reads them.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver
from infra.stack import Stack
from services.runtime.unit_of_work import UnitOfWork
from tests.dossier_samples import eventually_equal
from tests.own_service import drop, handover, own_runtime, publish

pytestmark = pytest.mark.real

RECORDS = 60
INTERVAL = 0.5


async def test_a_busy_subscription_commits_once_per_interval_and_everything_once_caught_up(
    stack: Stack,
) -> None:
    # One record per batch, so that committing at every ack would move the offset 60 times.
    runtime, topic = own_runtime(
        stack, "event_id text PRIMARY KEY", consumer_batch_size=1, consumer_commit_seconds=INTERVAL
    )
    group = f"{runtime.name}.handoffs"

    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        await asyncio.sleep(0.02)  # a little work, so that the run spans a few intervals
        await uow.conn.execute("INSERT INTO handled VALUES ($1)", event.id)

    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    await publish(stack, topic, [handover(n) for n in range(RECORDS)])
    await runtime.start()
    try:
        started = time.monotonic()
        waiting: list[int] = []
        while not waiting or waiting[-1] > 0:
            waiting.append((await runtime.backlog())["unconsumed"])
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        handled = await runtime.pool.fetchval("SELECT count(*) FROM handled")

        assert handled == RECORDS
        # Every value the lag took is one commit (or the start): at most one per interval while
        # busy, plus the one when caught up; not one per record.
        commits = len(set(waiting)) - 1
        assert 1 <= commits <= elapsed / INTERVAL + 2, (commits, round(elapsed, 2), sorted(set(waiting)))
        assert commits < RECORDS / 4
    finally:
        await drop(stack, runtime)


async def test_a_quiet_subscription_commits_each_batch_at_once(stack: Stack) -> None:
    # A long interval: only being caught up can commit, and it must, or replays would wait.
    runtime, topic = own_runtime(stack, "event_id text PRIMARY KEY", consumer_commit_seconds=3600)
    group = f"{runtime.name}.handoffs"

    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        await uow.conn.execute("INSERT INTO handled VALUES ($1)", event.id)

    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    await runtime.start()
    try:
        await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 0, "outbox": 0})
        for n in range(3):
            await publish(stack, topic, [handover(n)])
            await eventually_equal(lambda: runtime.backlog(), {"unconsumed": 0, "outbox": 0}, timeout=5)
        assert await runtime.pool.fetchval("SELECT count(*) FROM handled") == 3
    finally:
        await drop(stack, runtime)


async def test_a_restarted_subscription_resumes_where_the_stopped_one_committed(stack: Stack) -> None:
    seen: list[str] = []

    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        seen.append(event.id)
        await uow.conn.execute("INSERT INTO handled VALUES ($1)", event.id)

    first, topic = own_runtime(stack, "event_id text PRIMARY KEY", consumer_commit_seconds=3600)
    group = f"{first.name}.handoffs"
    first.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    await publish(stack, topic, [handover(n) for n in range(5)])
    await first.start()
    await eventually_equal(lambda: first.pool.fetchval("SELECT count(*) FROM handled"), 5)
    await first.stop()

    again, _ = own_runtime(stack, "event_id text PRIMARY KEY", name=first.name, consumer_commit_seconds=3600)
    again.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    await publish(stack, topic, [handover(n) for n in range(5, 8)])
    await again.start()
    try:
        await eventually_equal(lambda: again.pool.fetchval("SELECT count(*) FROM handled"), 8)
        await eventually_equal(lambda: again.backlog(), {"unconsumed": 0, "outbox": 0})
        # Each record reached a handler once: what the first one handled, it committed.
        assert len(seen) == len(set(seen)) == 8
    finally:
        await drop(stack, again)
