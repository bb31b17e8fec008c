"""Killing a service mid-stream loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from infra.stack import Stack
from tests.dossier_samples import eventually_equal, land_transfer, signed_in, wait_for_status
from tests.kafka_probe import topic_size

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
