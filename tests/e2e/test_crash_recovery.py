"""Killing a service mid-stream loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from infra.stack import Stack
from tests.dossier_samples import eventually_equal, land_transfer, signed_in, wait_for_status
from tests.kafka_probe import topic_size
from tests.systems import fresh_system

pytestmark = pytest.mark.real


async def test_agencies_killed_mid_stream_lose_and_double_nothing(services: Stack, db: asyncpg.Pool) -> None:
    dead_before = {s: await topic_size(services.superuser, f"{s}.dlq") for s in ("land_registry", "tax")}
    async with signed_in(services, "intake") as intake:
        submitted = await asyncio.gather(
            *(intake.post("/dossiers", json=land_transfer(6000 + n)) for n in range(30))
        )
        ids = [r.json()["id"] for r in submitted]
        # SIGKILL: no graceful shutdown, no offset commit, transactions cut wherever they are.
        services.stop_service("land_registry", sig=signal.SIGKILL)
        services.stop_service("tax", sig=signal.SIGKILL)
        more = await asyncio.gather(
            *(intake.post("/dossiers", json=land_transfer(6100 + n)) for n in range(10))
        )
        ids += [r.json()["id"] for r in more]
        await asyncio.sleep(1)
        for name in ("land_registry", "tax"):
            services.start_service(name)
        for name in ("land_registry", "tax"):
            await asyncio.to_thread(services.wait_healthy, name)
        await asyncio.gather(*(wait_for_status(intake, i, "awaiting_payment", timeout=90) for i in ids))

    steps = await db.fetch(
        "SELECT dossier_id, count(*) AS n FROM land_registry.steps_done"
        " WHERE dossier_id = ANY($1::text[]) GROUP BY dossier_id",
        ids,
    )
    assert {r["dossier_id"]: r["n"] for r in steps} == dict.fromkeys(ids, 1)
    assessed = await db.fetchval(
        "SELECT count(*) FROM tax.assessments WHERE dossier_id = ANY($1::text[])", ids
    )
    assert assessed == len(ids)
    await eventually_equal(
        lambda: db.fetchval(
            "SELECT count(*) FROM notification.notices"
            " WHERE kind = 'tax_notice' AND dossier_id = ANY($1::text[])",
            ids,
        ),
        len(ids),
    )
    for service, before in dead_before.items():
        assert await topic_size(services.superuser, f"{service}.dlq") == before


async def test_a_service_whose_consumer_stalls_stops_itself_and_its_restart_finishes_the_work(
    stack: Stack,
) -> None:
    # A stall made on purpose: the land registry's inbox locked, so its batch can neither finish
    # nor commit while records wait (what aiokafka's silent stop looks like from outside).
    services = ("intake", "land_registry", "tax")
    async with fresh_system(stack, services, extra_env={"CONSUMER_STALL_SECONDS": "2"}) as system:
        registry = system.services["land_registry"]
        lock = await asyncpg.connect(system.database_url)
        try:
            async with lock.transaction(), signed_in(system, "intake") as intake:
                await lock.execute("LOCK TABLE land_registry.inbox IN ACCESS EXCLUSIVE MODE")
                filed = await intake.post("/dossiers", json=land_transfer(6200))
                assert filed.status_code == 201, filed.text
                dossier = filed.json()["id"]
                await eventually_equal(
                    lambda: asyncio.to_thread(lambda: "for the supervisor" in registry.log_tail(200)),
                    True,
                    timeout=60,
                )
            # Lock released: the graceful stop finishes the batch it had and exits.
            await eventually_equal(lambda: asyncio.to_thread(system.exited), ["land_registry"], timeout=40)
            system.restart("land_registry")
            await asyncio.to_thread(system.wait_healthy, "land_registry")
            async with signed_in(system, "intake") as intake:
                await wait_for_status(intake, dossier, "awaiting_payment", timeout=60)
            assert (
                await lock.fetchval(
                    "SELECT count(*) FROM land_registry.steps_done WHERE dossier_id = $1", dossier
                )
                == 1
            )
        finally:
            await lock.close()
