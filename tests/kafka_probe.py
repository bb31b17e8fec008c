"""Reading Kafka the way an outside observer would: end offsets and consumer-group progress."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    described = await admin.describe_topics([topic])
    return [TopicPartition(topic, p["partition"]) for d in described for p in d.get("partitions", [])]


async def _end_offsets(bootstrap: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await consumer.stop()


async def topic_size(bootstrap: str, topic: str) -> int:
    """How many records ``topic`` holds (sum of end offsets; our topics are never compacted)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = await _partitions(admin, topic)
    finally:
        await admin.close()
    return sum((await _end_offsets(bootstrap, partitions)).values())


async def wait_group_caught_up(bootstrap: str, group: str, topic: str, *, timeout: float = 30) -> None:
    """Wait until consumer ``group`` has committed every record currently on ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = await _partitions(admin, topic)
        assert partitions, f"topic {topic} has no partitions"
        end = await _end_offsets(bootstrap, partitions)
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


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record currently on ``topic``, read from the beginning by a group-less consumer."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = await _partitions(admin, topic)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
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
