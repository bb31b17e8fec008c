"""A poison record is parked with its reason and the service keeps consuming."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer

from contracts.agencies import source_uri
from contracts.envelope import CloudEvent
from contracts.events import Applicant, DossierHandedOver, StepCompleted
from infra.stack import Stack
from services.runtime.kafka_access import KafkaAccess
from tests.dossier_samples import applicant, land_transfer, signed_in, wait_for_status
from tests.kafka_probe import read_topic, wait_group_caught_up

pytestmark = pytest.mark.real

WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
CE = {
    "ce_specversion": "1.0",
    "ce_id": "poison-1",
    "ce_source": "/vn/gov/agencies/one_stop",
    "ce_subject": "HS-POISON",
    "ce_time": "2026-03-09T01:00:00Z",
    "content-type": "application/json",
}


async def dead_letters(access: KafkaAccess, topic: str, ids: set[str]) -> dict[str, dict[str, str]]:
    """The dead letters on ``topic`` whose original ce_id is in ``ids``, by ce_id."""
    found: dict[str, dict[str, str]] = {}
    for record in await read_topic(access, topic):
        headers = {n: v.decode(errors="replace") for n, v in record.headers}
        if headers.get("ce_id") in ids:
            found[headers["ce_id"]] = headers | {"value": record.value.decode(errors="replace")}
    return found


async def test_poison_records_go_to_the_dlq_and_later_dossiers_still_complete(services: Stack) -> None:
    poison = [
        (
            "malformed",
            b"{this is not json",
            {**CE, "ce_id": "poison-json", "ce_type": "vn.gov.dossier.handed_over.v1"},
        ),
        ("unknown-type", b"{}", {**CE, "ce_id": "poison-type", "ce_type": "vn.gov.dossier.teleported.v1"}),
        (
            "no-envelope",
            b'{"dossier_id": "HS-POISON"}',
            {"ce_id": "poison-bare", "ce_source": CE["ce_source"], "content-type": "application/json"},
        ),
    ]
    poison += [
        (
            "wrong-version",
            b"{}",
            {**CE, "ce_id": "poison-version", "ce_type": "vn.gov.dossier.handed_over.v9"},
        ),
        (
            "schema-invalid",
            b'{"dossier_id": "HS-POISON", "step_index": "first"}',
            {**CE, "ce_id": "poison-shape", "ce_type": "vn.gov.dossier.handed_over.v1"},
        ),
        (
            "oversized",
            b'{"dossier_id": "HS-POISON", "padding": "' + b"x" * 300_000 + b'"}',
            {**CE, "ce_id": "poison-big", "ce_type": "vn.gov.dossier.handed_over.v1"},
        ),
    ]
    # A valid handoff, but only intake writes handoffs: one claiming to come from tax is refused.
    forged = CloudEvent.wrap(
        DossierHandedOver(
            dossier_id="HS-POISON",
            procedure_code="LAND-TRANSFER",
            step_index=1,
            from_agency="one_stop",
            to_agency="land_registry",
            action="appraise",
            budget_days=Decimal(3),
            sent_at=WHEN,
            due_at=WHEN,
            applicant=Applicant.model_validate(applicant(1)),
            details={},
        ),
        source=source_uri("tax"),
        time=WHEN,
        event_id="poison-forged",
    )
    poison.append(("forged", forged.value(), {n: v.decode() for n, v in forged.headers()}))
    # A header value that is not UTF-8 must not wedge the consumer inside FastStream.
    binary_header = [("ce_id", b"poison-bytes"), ("ce_type", b"\xff\xfe not utf-8")]
    producer = AIOKafkaProducer(**services.superuser.client_kwargs())
    await producer.start()
    try:
        for _, value, headers in poison:
            # Signed as their sources would sign them: each must be refused for what it is.
            signed = services.signed_headers([(n, v.encode()) for n, v in headers.items()], value)
            await producer.send_and_wait(
                "handoffs.land_registry", key=b"HS-POISON", value=value, headers=signed
            )
        await producer.send_and_wait(
            "handoffs.land_registry", key=b"HS-POISON", value=b"{}", headers=binary_header
        )
    finally:
        await producer.stop()

    async with signed_in(services, "intake") as intake:
        response = await intake.post("/dossiers", json=land_transfer(7001))
        await wait_for_status(intake, response.json()["id"], "awaiting_payment")

    # The later dossier may sit on another partition: wait for the poison ones to be handled.
    await wait_group_caught_up(services.superuser, "land_registry.handoffs", "handoffs.land_registry")
    ids = {str(h["ce_id"]) for *_, h in poison} | {"poison-bytes"}
    parked = await dead_letters(services.superuser, "land_registry.dlq", ids)
    assert parked["poison-json"]["dlq_reason"] == "schema-invalid"
    assert parked["poison-json"]["value"] == "{this is not json"  # original bytes kept
    assert parked["poison-type"]["dlq_reason"] == "unknown-type"
    assert "teleported" in parked["poison-type"]["dlq_detail"]
    assert parked["poison-bare"]["dlq_reason"] == "not-a-cloudevent"
    assert parked["poison-bytes"]["dlq_reason"] == "bad-headers"
    assert parked["poison-forged"]["dlq_reason"] == "forged-source"
    assert parked["poison-version"]["dlq_reason"] == "unknown-version"
    assert parked["poison-shape"]["dlq_reason"] == "schema-invalid"
    assert "step_index" in parked["poison-shape"]["dlq_detail"]
    assert parked["poison-big"]["dlq_reason"] == "oversized"
    assert len(parked["poison-big"]["value"]) > 300_000  # parked whole, nothing lost
    for letter in parked.values():
        assert letter["dlq_topic"] == "handoffs.land_registry"
        assert letter["dlq_consumer"] == "land_registry.handoffs"
        assert int(letter["dlq_offset"]) >= 0


async def test_a_step_result_off_its_action_contract_is_parked_by_the_desk(services: Stack) -> None:
    # The keys tax used to read are there, but the appraisal is not a vn.gov.result.appraisal.v1:
    # the desk must park it with the reason instead of passing it on to tax.
    bad = CloudEvent.wrap(
        StepCompleted(
            dossier_id="HS-BAD-RESULT",
            step_index=1,
            agency="land_registry",
            action="appraise",
            outcome="done",
            received_at=WHEN,
            completed_at=WHEN,
            result={"declared_price_vnd": 1_500_000_000, "table_value_vnd": "a lot"},
        ),
        source=source_uri("land_registry"),
        time=WHEN,
        event_id="poison-result",
    )
    producer = AIOKafkaProducer(**services.superuser.client_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(
            "land_registry.events",
            key=b"HS-BAD-RESULT",
            value=bad.value(),
            headers=services.signed_headers(list(bad.headers()), bad.value()),
        )
    finally:
        await producer.stop()

    # The desk keeps routing what the registry answers properly.
    async with signed_in(services, "intake") as intake:
        response = await intake.post("/dossiers", json=land_transfer(7002))
        await wait_for_status(intake, response.json()["id"], "awaiting_payment")

    await wait_group_caught_up(services.superuser, "intake.from.land_registry", "land_registry.events")
    parked = (await dead_letters(services.superuser, "intake.dlq", {"poison-result"}))["poison-result"]
    assert parked["dlq_reason"] == "rejected"
    assert parked["dlq_consumer"] == "intake.from.land_registry"
    detail = parked["dlq_detail"]
    assert "the done result of 'appraise' does not match vn.gov.result.appraisal.v1" in detail
    assert "table_value_vnd: Input should be a valid integer" in detail
    assert "parcel_ref: Field required" in detail
