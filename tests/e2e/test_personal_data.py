"""The citizen's identity goes only where it is needed; the public lifecycle carries none of it."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import TopicAuthorizationFailedError

from contracts import topics
from infra.stack import Stack
from tests.dossier_samples import applicant, land_transfer, pay, signed_in, wait_for_status
from tests.kafka_probe import poll_once, read_topic

pytestmark = pytest.mark.real

N = 9400


async def test_the_public_lifecycle_names_nobody(services: Stack) -> None:
    async with signed_in(services, "intake") as intake:
        dossier_id = (await intake.post("/dossiers", json=land_transfer(N))).json()["id"]
        await wait_for_status(intake, dossier_id, "awaiting_payment")
        await pay(intake, dossier_id)
        await wait_for_status(intake, dossier_id, "returned")

    citizen = applicant(N)
    transferee = land_transfer(N)["details"]["transferee"]
    secrets = [
        citizen["full_name"],
        citizen["id_number"],
        citizen["phone"],
        citizen["email"],
        transferee["full_name"],
        transferee["id_number"],
    ]

    def mentions(records: list[bytes]) -> list[str]:
        text = b"\n".join(records).decode()
        # JSON escapes non-ASCII letters: look for both spellings.
        return [s for s in secrets if s in text or s.encode("unicode_escape").decode() in text]

    public = [
        b"".join([r.value or b"", *(v for _, v in r.headers)])
        for r in await read_topic(services.superuser, topics.INTAKE_EVENTS)
        if r.key == dossier_id.encode()
    ]
    assert len(public) >= 5  # the whole life of the dossier is there: statuses, slip, payment
    assert mentions(public) == []

    # The letters to the citizen do carry who they are: that is where the identity went.
    letters = [
        r.value or b""
        for r in await read_topic(services.superuser, topics.INTAKE_CITIZENS)
        if r.key == dossier_id.encode()
    ]
    assert len(letters) == 2  # the receipt and the result
    assert citizen["id_number"] in mentions(letters)


@pytest.mark.parametrize("principal", ["land_registry", "tax"])
async def test_the_agencies_cannot_read_the_letters_to_citizens(services: Stack, principal: str) -> None:
    consumer = AIOKafkaConsumer(
        topics.INTAKE_CITIZENS,
        **services.kafka_access(principal).client_kwargs(),
        group_id=f"{principal}.handoffs",
        auto_offset_reset="earliest",
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await poll_once(consumer)
    finally:
        await consumer.stop()
