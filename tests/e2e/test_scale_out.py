"""Two instances of every service share the work: nothing lost, nothing doubled, through a rebalance.

A fresh system runs each service twice (``Stack.start_instance``): the instances join the same
consumer groups, so Kafka splits the partitions between them; the outbox relay stays one
publisher per schema (an advisory lock), the deadline watcher and the delivery worker lock the
rows they take. Land transfers are filed through both desks; half-way, one instance of every
service is stopped (the groups rebalance under load) and the rest is paid through the other
desk. The fault harness's audit must find every dossier back exactly once, every step, notice
and e-mail once, the console's copy complete and nothing stuck or dead-lettered.
"""

from __future__ import annotations

import asyncio

import pytest

from infra.chaos.audit import Auditor, audit_pool
from infra.stack import Stack
from services import manifest
from tests.dossier_samples import land_transfer, pay, signed_in, wait_for_status
from tests.systems import fresh_system

pytestmark = pytest.mark.real

SERVICES = tuple(m.name for m in manifest.manifests())


async def test_two_instances_of_every_service_lose_and_double_nothing(stack: Stack) -> None:
    async with fresh_system(stack, SERVICES) as system, audit_pool(system) as pool:
        auditor = Auditor(system, pool, officers=False)  # the session's agencies decide at once
        await auditor.start()
        for name in SERVICES:
            system.start_instance(name, 2)
        for name in SERVICES:
            await asyncio.to_thread(system.wait_healthy, f"{name}#2")
        async with signed_in(system, "intake") as first, signed_in(system, "intake#2") as second:
            filed = await asyncio.gather(
                *(
                    (first if n % 2 else second).post("/dossiers", json=land_transfer(8500 + n))
                    for n in range(20)
                )
            )
            assert all(r.status_code == 201 for r in filed), [r.text for r in filed if r.status_code != 201]
            ids = [r.json()["id"] for r in filed]
            # One instance of each goes away under load: its partitions move to the other.
            for name in SERVICES:
                await asyncio.to_thread(system.stop_service, name if name != "intake" else "intake#2")
            for dossier in ids:
                await wait_for_status(first, dossier, "awaiting_payment", timeout=120)
                assert (await pay(first, dossier)).status_code == 200
            for dossier in ids:
                await wait_for_status(first, dossier, "returned", timeout=120)
        audit = await auditor.settled(ids, timeout=60)
        assert audit.clean, audit.details()
        assert audit.dossiers == 20
