"""Reading Kafka the way an outside observer would: end offsets and consumer-group progress."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.runtime.kafka_access import KafkaAccess
from services.runtime.topic_reader import partitions_of, read_topic

__all__ = ["poll_once", "read_topic", "topic_size", "wait_group_caught_up"]


async def poll_once(consumer: AIOKafkaConsumer) -> None:
    """Start ``consumer`` and poll once: raises what the broker refuses (the caller stops it)."""
    await consumer.start()
    await asyncio.wait_for(consumer.getmany(timeout_ms=2000), 15)


async def _end_offsets(access: KafkaAccess, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**access.client_kwargs())
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await consumer.stop()


async def topic_size(access: KafkaAccess, topic: str) -> int:
    """How many records ``topic`` holds (sum of end offsets; our topics are never compacted)."""
    return sum((await _end_offsets(access, await partitions_of(access, topic))).values())


async def wait_group_caught_up(access: KafkaAccess, group: str, topic: str, *, timeout: float = 30) -> None:
    """Wait until consumer ``group`` has committed every record currently on ``topic``."""
    partitions = await partitions_of(access, topic)
    assert partitions, f"topic {topic} has no partitions"
    end = await _end_offsets(access, partitions)
    admin = AIOKafkaAdminClient(**access.client_kwargs())
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        behind: dict[TopicPartition, int] = {}
        while time.monotonic() < deadline:
            committed = await admin.list_consumer_group_offsets(group)
            behind = {
                tp: end[tp] - (committed[tp].offset if tp in committed else 0)
                for tp in partitions
                if end[tp] > (committed[tp].offset if tp in committed else 0)
            }
            if not behind:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"group {group} still behind on {topic}: {behind}")
    finally:
        await admin.close()
