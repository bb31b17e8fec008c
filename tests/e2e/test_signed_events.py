"""Only a record signed by its agency moves a dossier, whatever credentials wrote it.

The land registry's Kafka credentials let a process write ``land_registry.events``; they do not
let it speak for the land registry. Answers written with those credentials but unsigned, signed
with another agency's key, or altered after signing are dead-lettered by the desk and change
nothing; the land registry's own signed answer then moves the dossier on.
"""

from __future__ import annotations

import asyncio
import base64
import json

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver, StepCompleted
from contracts.signing import KEY_ID_HEADER, SIGNATURE_HEADER, SigningKey, signing_input
from infra.stack import Stack
from tests.dossier_samples import land_transfer, signed_in, wait_for_status
from tests.e2e.test_dead_letters import dead_letters
from tests.kafka_probe import wait_group_caught_up

pytestmark = pytest.mark.real


async def _handover(db: asyncpg.Pool, dossier_id: str) -> DossierHandedOver:
    """The handoff the desk sent the land registry, from the desk's outbox."""
    value = await db.fetchval(
        "SELECT value FROM intake.outbox WHERE topic = $1 AND key = $2 ORDER BY position LIMIT 1",
        topics.handoffs("land_registry"),
        dossier_id.encode(),
    )
    assert value is not None, "the desk handed the dossier over"
    return DossierHandedOver.model_validate_json(value)


async def test_only_the_land_registrys_signature_moves_the_dossier(services: Stack, db: asyncpg.Pool) -> None:
    # The land registry is away: its answer can only come from us.
    services.stop_service("land_registry")
    try:
        async with signed_in(services, "intake") as intake:
            dossier_id = (await intake.post("/dossiers", json=land_transfer(9300))).json()["id"]
            handover = await _handover(db, dossier_id)
            answer = StepCompleted.answering(
                handover,
                outcome="done",
                received_at=handover.sent_at,
                completed_at=handover.sent_at,
                result={"declared_price_vnd": 1, "land_price_table_vnd": 1},
            )

            def forged(event_id: str) -> CloudEvent:
                return CloudEvent.wrap(
                    answer, source="/vn/gov/agencies/land_registry", time=handover.sent_at, event_id=event_id
                )

            unsigned = forged("forged-unsigned")
            by_tax = forged("forged-by-tax")
            altered = forged("forged-altered")
            tax_key = services.secrets.signing_key("tax")
            registry_key = services.secrets.signing_key("land_registry")
            records = [
                (unsigned, unsigned.value(), unsigned.headers()),
                # Tax's key, claiming the land registry as source: the key does not belong to it.
                (by_tax, by_tax.value(), _signed_anyway(tax_key, by_tax)),
                # The land registry's own signature, over other data than the record carries.
                (
                    altered,
                    altered.value().replace(b'"done"', b'"rejected"'),
                    registry_key.sign(altered.headers(), altered.value()),
                ),
            ]
            producer = AIOKafkaProducer(**services.kafka_access("land_registry").client_kwargs())
            await producer.start()
            try:
                for event, value, headers in records:
                    await producer.send_and_wait(
                        topics.agency_events("land_registry"), key=event.key, value=value, headers=headers
                    )
            finally:
                await producer.stop()

            await wait_group_caught_up(
                services.superuser, "intake.from.land_registry", "land_registry.events"
            )
            parked = await dead_letters(services.superuser, "intake.dlq", {e.id for e, *_ in records})
            assert {i: p["dlq_reason"] for i, p in parked.items()} == {
                "forged-unsigned": "unsigned",
                "forged-by-tax": "bad-signature",
                "forged-altered": "bad-signature",
            }
            assert "belongs to tax" in parked["forged-by-tax"]["dlq_detail"]
            # Nothing moved: the appraisal is still open on the slip.
            view = (await intake.get(f"/dossiers/{dossier_id}")).json()
            assert view["status"] == "processing"
            assert [h["completed_at"] for h in view["handoffs"] if h["to"] == "land_registry"] == [None]
            assert (
                await db.fetchval(
                    "SELECT count(*) FROM intake.inbox WHERE event_id = ANY($1::text[])", list(parked)
                )
                == 0
            )
    finally:
        services.start_service("land_registry")
        await asyncio.to_thread(services.wait_healthy, "land_registry")

    async with signed_in(services, "intake") as intake:
        # The land registry, back, answers with its own signature: the dossier goes on to tax.
        await wait_for_status(intake, dossier_id, "awaiting_payment", timeout=60)


def _signed_anyway(key: SigningKey, event: CloudEvent) -> list[tuple[str, bytes]]:
    """A signature by ``key`` over ``event`` although the key's agency is not the event's source.

    What an insider with another agency's key (and the land registry's Kafka password) could send.
    """
    attributes = {name: raw.decode() for name, raw in event.headers()}
    signature = key.key.sign(signing_input(attributes, event.value()))
    encoded = base64.urlsafe_b64encode(signature).rstrip(b"=")
    return [*event.headers(), (SIGNATURE_HEADER, encoded), (KEY_ID_HEADER, key.key_id.encode())]


async def test_every_published_record_is_signed(services: Stack, db: asyncpg.Pool) -> None:
    rows = await db.fetch("SELECT headers FROM intake.outbox ORDER BY position DESC LIMIT 50")
    assert rows
    for row in rows:
        headers = dict(json.loads(row["headers"]))
        assert headers[SIGNATURE_HEADER]
        assert headers["ce_keyid"].startswith("one_stop-")
