"""The broker lets nobody in anonymously, and each principal only where its declarations say.

Negative tests on the session's real broker: each would pass a request the broker must refuse
if SASL or the ACLs were turned off, and each has a positive twin showing the principal does
get through where it is allowed (so a refusal is the ACL's, not a broken connection).
"""

from __future__ import annotations

import asyncio
import stat
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError

from contracts import topics
from infra.kafka import KafkaNode
from infra.stack import Stack
from services.runtime.kafka_access import KafkaAccess

pytestmark = pytest.mark.real


async def _write(access: KafkaAccess, topic: str) -> None:
    producer = AIOKafkaProducer(**access.client_kwargs(), enable_idempotence=True)
    try:
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait(topic, b"probe", key=b"HS-ACL-PROBE"), 15)
    finally:
        await producer.stop()


async def _read(access: KafkaAccess, topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(topic, **access.client_kwargs(), group_id=group, auto_offset_reset="latest")
    try:
        await consumer.start()
        await asyncio.wait_for(consumer.getmany(timeout_ms=2000), 15)
    finally:
        await consumer.stop()


async def test_a_client_without_credentials_cannot_connect(stack: Stack) -> None:
    anonymous = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(anonymous.start(), 20)
    await anonymous.stop()


async def test_a_wrong_password_is_refused(stack: Stack) -> None:
    tax = stack.kafka_access("tax")
    impostor = KafkaAccess(bootstrap_servers=tax.bootstrap_servers, username="tax", password="guessed")
    with pytest.raises(KafkaConnectionError):
        await _write(impostor, topics.agency_events("tax"))


async def test_tax_writes_its_own_topic_but_not_the_land_registrys(stack: Stack) -> None:
    tax = stack.kafka_access("tax")
    await _write(tax, topics.agency_events("tax"))  # allowed: its own answers
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(tax, topics.agency_events("land_registry"))


async def test_tax_reads_its_handoffs_but_not_the_land_registrys(stack: Stack) -> None:
    tax = stack.kafka_access("tax")
    # Its declared group; a group of its own choosing is refused too (below).
    await _read(tax, topics.handoffs("tax"), "tax.handoffs")
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(tax, topics.handoffs("land_registry"), "tax.handoffs")


async def test_a_consumer_group_not_declared_is_refused(stack: Stack) -> None:
    tax = stack.kafka_access("tax")
    with pytest.raises(KafkaError):
        await _read(tax, topics.handoffs("tax"), f"tax-snoop-{uuid.uuid4().hex[:6]}")


async def test_the_console_cannot_publish_as_the_desk(stack: Stack) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(stack.kafka_access("console"), topics.INTAKE_EVENTS)


def test_generated_credentials_are_readable_by_their_owner_only(stack: Stack) -> None:
    path = stack.secrets.kafka_credentials_path
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert isinstance(stack.kafka, KafkaNode)  # the session's own broker: its config holds two passwords
    assert stat.S_IMODE(stack.kafka.config_path.stat().st_mode) == 0o600
