"""Dead letters on the real broker: parked with the reason, listed, re-driven once after a fix."""

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
from infra.kafka.acls import OPERATOR
from infra.stack import Stack
from services.runtime import dlq
from services.runtime.database import Migration
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork
from tests.dossier_samples import applicant, eventually_equal
from tests.kafka_probe import wait_group_caught_up

pytestmark = pytest.mark.real

WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


async def test_redriven_dead_letter_completes_once(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI authenticates as the operator, from the environment, as README "Security" says.
    for variable, value in stack.kafka_access(OPERATOR).env().items():
        monkeypatch.setenv(variable, value)
    name = f"dlqtest_{uuid.uuid4().hex[:8]}"
    topic, group = topics.handoffs(name), f"{name}.handoffs"
    runtime = ServiceRuntime(
        settings=stack.settings_for(name),
        agency=name,
        migrations=(Migration(f"{name}-001", "CREATE TABLE handled (event_id text PRIMARY KEY)"),),
        topics_used=[topic],
    )
    bug_fixed = False

    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        if not bug_fixed:
            raise RuntimeError("cannot handle this yet")
        await uow.conn.execute("INSERT INTO handled VALUES ($1)", event.id)

    runtime.subscribe(topic, consumer=group, accepts=(DossierHandedOver,), handler=handle)
    await runtime.start()
    try:
        event = CloudEvent.wrap(
            DossierHandedOver(
                dossier_id="HS-DLQ-1",
                procedure_code="LAND-TRANSFER",
                step_index=1,
                from_agency=ONE_STOP,
                to_agency=name,
                action="appraise",
                budget_days=Decimal(3),
                sent_at=WHEN,
                due_at=WHEN,
                applicant=Applicant.model_validate(applicant(9001)),
                details={},
            ),
            source=source_uri(ONE_STOP),
            time=WHEN,
        )
        producer = AIOKafkaProducer(**stack.superuser.client_kwargs())
        await producer.start()
        try:
            headers = stack.signed_headers(event.headers(), event.value())
            await producer.send_and_wait(topic, key=event.key, value=event.value(), headers=headers)
        finally:
            await producer.stop()

        await wait_group_caught_up(stack.superuser, group, topic)
        (letter,) = await dlq.list_dead_letters(stack.superuser, name)
        assert (letter.reason, letter.event_id, letter.source_topic) == ("handler-error", event.id, topic)
        assert "cannot handle this yet" in letter.detail
        # The CLI runs its own event loop, as it does from a shell.
        assert await asyncio.to_thread(dlq.main, ["--bootstrap", stack.bootstrap_servers, "list", name]) == 0
        assert "handler-error" in capsys.readouterr().out

        bug_fixed = True
        redriven = await dlq.redrive(stack.superuser, name, refs={letter.ref})
        assert [r.event_id for r in redriven] == [event.id]
        await eventually_equal(lambda: runtime.pool.fetchval("SELECT count(*) FROM handled"), 1)

        # Re-driving the same letter again is recognised by the inbox: still handled once.
        redrive_all = ["--bootstrap", stack.bootstrap_servers, "redrive", name, "--all"]
        assert await asyncio.to_thread(dlq.main, redrive_all) == 0
        await wait_group_caught_up(stack.superuser, group, topic)
        assert await runtime.pool.fetchval("SELECT count(*) FROM handled") == 1
        assert len(await dlq.list_dead_letters(stack.superuser, name)) == 1
        assert runtime.processor.duplicates_total == 1
    finally:
        await runtime.stop()
        conn = await asyncpg.connect(stack.database_url)
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        await conn.close()
