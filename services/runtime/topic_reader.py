"""Reading a topic from outside any consumer group: its partitions, or every record on it now.

Used by operator tools (the dead-letter CLI) and by the tests that check what was published.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.runtime.kafka_access import KafkaAccess


async def partitions_of(access: KafkaAccess, topic: str) -> list[TopicPartition]:
    """The topic's partitions (empty if the topic does not exist).

    Asked of the admin API: a bare consumer's ``partitions_for_topic`` stays empty until it
    has fetched metadata for that topic, which ``topics()`` does not guarantee.
    """
    admin = AIOKafkaAdminClient(**access.client_kwargs())
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for d in described for p in d.get("partitions", [])]


async def read_topic(access: KafkaAccess, topic: str) -> list[ConsumerRecord]:
    """Every record on ``topic`` up to its current end, read from the beginning, no group."""
    partitions = await partitions_of(access, topic)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(**access.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records
