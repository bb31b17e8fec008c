"""A throwaway service of its own (schema, topics, groups) for testing the shared runtime.

Integration tests give it a handler and records on the real broker and database, and drop its
schema afterwards.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.agencies import ONE_STOP, source_uri
from contracts.envelope import CloudEvent
from contracts.events import Applicant, DossierHandedOver
from infra.stack import Stack
from services.runtime.database import Migration
from services.runtime.provisioning import ensure_topics
from services.runtime.service import ServiceRuntime
from tests.dossier_samples import applicant

WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


def handover(n: int, *, step: int = 1, prefix: str = "HS-OWN") -> CloudEvent:
    """A valid handoff from the desk for dossier ``<prefix>-<n>``, at step ``step``."""
    return CloudEvent.wrap(
        DossierHandedOver(
            dossier_id=f"{prefix}-{n}",
            procedure_code="LAND-TRANSFER",
            step_index=step,
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


def own_runtime(
    stack: Stack,
    table: str,
    *,
    stall_seconds: float = 120,
    database_url: str | None = None,
    name: str | None = None,
    **settings: Any,
) -> tuple[ServiceRuntime, str]:
    """A service with one table (``table``: its columns) whose subscriptions read the returned topic.

    ``database_url``: another way to the stack's Postgres (a proxy), instead of its own URL;
    ``name``: an earlier one's, to run it again (a restart); ``settings``: more of
    :class:`ServiceSettings`' fields.
    """
    name = name or f"owntest_{uuid.uuid4().hex[:8]}"
    topic = topics.handoffs(name)
    # The desk's key signs what publish() writes; made on first use, it must be in the registry
    # before the service reads it, or the first records are dead-lettered as signed by an
    # unknown key until the registry's reload interval has passed (a test run alone did that).
    stack.secrets.signing_key_path(ONE_STOP)
    runtime = ServiceRuntime(
        settings=stack.settings_for(
            name,
            agency=name,
            database_url=database_url or stack.database_url,
            consumer_stall_seconds=stall_seconds,
            **settings,
        ),
        agency=name,
        migrations=(Migration(f"{name}-001", f"CREATE TABLE handled ({table})"),),
        topics_used=[topic],
    )
    return runtime, topic


async def publish(stack: Stack, topic: str, events: list[CloudEvent]) -> None:
    """Write ``events`` to ``topic`` in order, each acknowledged before the next (signed by their sources).

    The topic is created first: the broker creates none on its own, and the service may not be up yet.
    """
    await ensure_topics(stack.superuser, [topic])
    producer = AIOKafkaProducer(**stack.superuser.client_kwargs())
    await producer.start()
    try:
        for event in events:
            headers = stack.signed_headers(event.headers(), event.value())
            await producer.send_and_wait(topic, key=event.key, value=event.value(), headers=headers)
    finally:
        await producer.stop()


async def drop(stack: Stack, runtime: ServiceRuntime) -> None:
    """Stop the service and drop its schema."""
    await runtime.stop()
    conn = await asyncpg.connect(stack.database_url)
    await conn.execute(f'DROP SCHEMA "{runtime.name}" CASCADE')
    await conn.close()
