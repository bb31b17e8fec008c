"""Records are handled in batches: one transaction and one offset commit per poll.

What must hold however records are grouped: order per dossier, each event handled once (also
when it comes twice in one batch), and a record the handler refuses is dead-lettered alone
while the rest of its batch commits.
"""

from __future__ import annotations

import pytest

from contracts import topics
from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver
from infra.stack import Stack
from services.runtime.consumer import EventRejected
from services.runtime.unit_of_work import UnitOfWork
from tests.dossier_samples import eventually_equal
from tests.kafka_probe import read_topic, wait_group_caught_up
from tests.own_service import drop, handover, own_runtime, publish

pytestmark = pytest.mark.real

TABLE = "seq bigserial, event_id text PRIMARY KEY, dossier_id text NOT NULL, step int NOT NULL"


async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
    """Record what was handled, in the order it was handled (``seq``)."""
    assert isinstance(event.data, DossierHandedOver)
    await uow.conn.execute(
        "INSERT INTO handled (event_id, dossier_id, step) VALUES ($1, $2, $3)",
        event.id,
        event.data.dossier_id,
        event.data.step_index,
    )


async def test_a_backlog_is_handled_in_few_transactions_in_order_and_once(stack: Stack) -> None:
    runtime, topic = own_runtime(stack, TABLE)
    group = f"{runtime.name}.handoffs"
    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    # Waiting before the service starts: its first polls find them all.
    events = [handover(n, step=step) for step in (1, 2, 3) for n in range(20)]
    await publish(stack, topic, [*events, events[5], events[41]])  # two redelivered
    await runtime.start()
    try:
        await wait_group_caught_up(stack.superuser, group, topic)
        rows = await runtime.pool.fetch("SELECT dossier_id, step FROM handled ORDER BY seq")
        assert len(rows) == 60
        for n in range(20):
            steps = [row["step"] for row in rows if row["dossier_id"] == f"HS-OWN-{n}"]
            assert steps == [1, 2, 3], f"dossier {n} handled out of order: {steps}"
        processor = runtime.processor
        assert (processor.processed_total, processor.duplicates_total) == (60, 2)
        # Batched: far fewer transactions than records (one per poll; the first poll takes all
        # that one fetch brought).
        assert processor.transactions_total <= 62 // 4
        assert await runtime.pool.fetchval("SELECT count(*) FROM inbox") == 60
    finally:
        await drop(stack, runtime)


async def test_a_refused_record_is_dead_lettered_alone_and_its_batch_commits(stack: Stack) -> None:
    runtime, topic = own_runtime(stack, TABLE)
    group = f"{runtime.name}.handoffs"

    async def refusing(uow: UnitOfWork, event: CloudEvent) -> None:
        await handle(uow, event)  # written, then rolled back with the rest of the batch
        assert isinstance(event.data, DossierHandedOver)
        if event.data.dossier_id == "HS-OWN-3":
            raise EventRejected("no such parcel")
        if event.data.dossier_id == "HS-OWN-7":
            raise ValueError("a bug in the handler")

    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=refusing)
    events = [handover(n) for n in range(12)]
    await publish(stack, topic, events)
    await runtime.start()
    try:
        await wait_group_caught_up(stack.superuser, group, topic)
        handled = await runtime.pool.fetch("SELECT dossier_id FROM handled")
        assert sorted(row["dossier_id"] for row in handled) == sorted(
            f"HS-OWN-{n}" for n in range(12) if n not in (3, 7)
        )
        assert (runtime.processor.processed_total, runtime.processor.dead_lettered_total) == (10, 2)

        async def parked() -> dict[str, tuple[str, str]]:
            found = {}
            for record in await read_topic(stack.superuser, topics.dead_letters(runtime.name)):
                headers = {n: v.decode() for n, v in record.headers}
                found[headers["ce_subject"]] = (headers["dlq_reason"], headers["dlq_detail"])
            return found

        await eventually_equal(
            parked,
            {
                "HS-OWN-3": ("rejected", "no such parcel"),
                "HS-OWN-7": ("handler-error", "ValueError: a bug in the handler"),
            },
        )
        # The refused records' inbox rows were rolled back with their work: a redrive retries them.
        assert await runtime.pool.fetchval("SELECT count(*) FROM inbox") == 10
    finally:
        await drop(stack, runtime)


async def test_a_record_whose_commit_postgres_refuses_is_dead_lettered_not_retried_for_ever(
    stack: Stack,
) -> None:
    # A deferred constraint is checked at COMMIT, outside the handler: the second handoff of
    # a dossier cannot commit, whichever batch it comes in.
    runtime, topic = own_runtime(
        stack, "event_id text PRIMARY KEY, dossier_id text UNIQUE DEFERRABLE INITIALLY DEFERRED"
    )
    group = f"{runtime.name}.handoffs"

    async def once_per_dossier(uow: UnitOfWork, event: CloudEvent) -> None:
        assert isinstance(event.data, DossierHandedOver)
        await uow.conn.execute("INSERT INTO handled VALUES ($1, $2)", event.id, event.data.dossier_id)

    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=once_per_dossier)
    second = handover(2, step=2)
    await publish(stack, topic, [handover(n) for n in range(5)] + [second])
    await runtime.start()
    try:
        await wait_group_caught_up(stack.superuser, group, topic)
        assert await runtime.pool.fetchval("SELECT count(*) FROM handled") == 5
        (parked,) = await read_topic(stack.superuser, topics.dead_letters(runtime.name))
        headers = {n: v.decode() for n, v in parked.headers}
        assert headers["ce_id"] == second.id
        assert headers["dlq_reason"] == "handler-error"
        assert headers["dlq_detail"].startswith("UniqueViolationError")
    finally:
        await drop(stack, runtime)
