"""A three-broker cluster loses its busiest broker mid-stream: nothing is lost, nothing doubled.

The quick variant of the fault scenarios: its own KRaft cluster of three nodes (topics with three
replicas, ``min.insync.replicas=2``, producers with ``acks=all`` and idempotence) under the five
services. Land transfers are filed and paid while the node leading the land registry's handoffs
is killed with SIGKILL and, later, started again. Every dossier must come back exactly once,
with one step per agency, one notice of each kind and one e-mail per notice. The time from the
kill to the first handoff answered afterwards is printed (the recovery the operators see).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.kafka import free_port
from infra.kafka.cluster import KafkaCluster
from infra.stack import Stack
from services import manifest
from tests.dossier_samples import land_transfer, pay, signed_in, wait_for_status
from tests.exactly_once import assert_each_land_transfer_once

pytestmark = pytest.mark.real

DOSSIERS = 24


@pytest.fixture
async def cluster_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Kafka (three nodes), Postgres, the mailbox and every service, on free ports."""
    stack = Stack(
        run_dir=tmp_path / "cluster",
        brokers=3,
        ports={m.name: free_port() for m in manifest.manifests()},
        extra_env={"AGENCY_DECISIONS": "automatic", "LOG_LEVEL": "WARNING"},
    )
    try:
        await asyncio.to_thread(stack.start)
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


async def leader_of(stack: Stack, topic: str, partition: int = 0) -> int:
    """The node id leading ``partition`` of the logical ``topic``."""
    admin = AIOKafkaAdminClient(**stack.superuser.client_kwargs())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([stack.topic_prefix + topic])
    finally:
        await admin.close()
    return int(next(p["leader"] for p in described["partitions"] if p["partition"] == partition))


async def test_the_partition_leader_dies_and_nothing_is_lost_or_doubled(cluster_stack: Stack) -> None:
    stack = cluster_stack
    assert isinstance(stack.kafka, KafkaCluster)
    victim = stack.kafka.node(await leader_of(stack, "handoffs.land_registry"))
    async with signed_in(stack, "intake", timeout=60) as intake:
        first = await asyncio.gather(
            *(intake.post("/dossiers", json=land_transfer(8000 + n)) for n in range(DOSSIERS // 2))
        )
        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill)  # SIGKILL: no controlled shutdown, no leader handover
        assert not victim.is_running()
        second = await asyncio.gather(
            *(intake.post("/dossiers", json=land_transfer(8100 + n)) for n in range(DOSSIERS // 2))
        )
        ids = [r.json()["id"] for r in (*first, *second)]
        assert all(r.status_code == 201 for r in (*first, *second))
        await wait_for_status(intake, ids[-1], "awaiting_payment", timeout=120)
        print(f"\nfirst handoff answered {time.monotonic() - killed_at:.1f} s after the leader was killed")
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(victim.wait_ready, 90)
        for dossier in ids:
            await wait_for_status(intake, dossier, "awaiting_payment", timeout=120)
            assert (await pay(intake, dossier)).status_code == 200
        for dossier in ids:
            await wait_for_status(intake, dossier, "returned", timeout=120)

    await assert_each_land_transfer_once(stack, ids)
