"""Two units of work on one dossier: the second waits for the first and then sees all it wrote.

Found by the fault harness (kill land_registry): an agency's answer and the deadline alarm on
the same step, a moment apart. The answer waited for the alarm's lock, then got the dossier row
as the alarm left it but the slip as it was before, and saved that slip: the step's overdue mark
was gone while the apology stayed. Run on the real Postgres, since the fault was in its snapshot
rules, not in our code's logic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from infra.stack import Stack
from services.intake import store
from services.intake.domain.dossier import Dossier
from services.runtime.database import create_pool, migrate
from tests.dossier_samples import received_land_transfer

pytestmark = pytest.mark.real

NOW = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    schema = f"intake_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(stack.database_url, schema=schema, size=3)
    await migrate(pool, schema=schema, migrations=store.MIGRATIONS)
    yield pool
    await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await pool.close()


async def test_a_unit_of_work_that_waited_for_the_lock_reads_the_slip_the_holder_committed(
    pool: asyncpg.Pool,
) -> None:
    dossier, _ = received_land_transfer("HS-LOCK-1", NOW)
    async with pool.acquire() as conn:
        await store.save(conn, dossier)
    alarm_at = NOW + timedelta(days=3)

    async with pool.acquire() as first, pool.acquire() as second:
        holder = first.transaction()
        await holder.start()
        # The alarm: locks the dossier, marks the open step overdue and apologises.
        alarmed = await store.load(first, dossier.id, for_update=True)
        assert alarmed is not None
        alarmed.slip[-1].overdue_at = alarm_at
        alarmed.apologised_at = alarm_at
        await store.save(first, alarmed)

        async def answer() -> Dossier | None:
            async with second.transaction():
                return await store.load(second, dossier.id, for_update=True)

        waiting = asyncio.create_task(answer())
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the second unit of work must wait for the first one's lock"
        await holder.commit()
        seen = await waiting

    assert seen is not None
    assert seen.apologised_at == alarm_at
    assert seen.slip[-1].overdue_at == alarm_at  # the slip as committed, not as it was before


async def test_locking_a_dossier_that_does_not_exist_finds_none(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        assert await store.load(conn, "HS-NOBODY", for_update=True) is None
