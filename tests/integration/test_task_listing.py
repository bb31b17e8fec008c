"""Decided tasks pile up; the queue and the officer bot must still see every task waiting.

Found by ``make chaos``: after 500 decided tasks the officer bot saw none of the new ones (it read
the 500 soonest-due tasks of any status and kept the undecided), so dossiers stopped at the
certificate step for good. On the real Postgres, with the land registry's own schema.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

import asyncpg
import pytest

from infra.stack import Stack
from services.land_registry import store
from services.land_registry.handlers import Decision, WorkQueue
from services.land_registry.officer_bot import OfficerBot
from services.runtime.clock import VirtualClock
from services.runtime.database import create_pool, migrate
from services.runtime.working_days import WorkingDayCalendar
from tests.dossier_samples import received_land_transfer

pytestmark = pytest.mark.real

START = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
DECIDED = 600
"""More than the listing's limit (500)."""


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    schema = f"land_registry_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(stack.database_url, schema=schema, size=2)
    await migrate(pool, schema=schema, migrations=store.MIGRATIONS)
    # Many decided tasks, all due before the one still waiting.
    _, handover = received_land_transfer("HS-ANY", START)
    await pool.execute(
        "INSERT INTO tasks (dossier_id, step_index, handoff_row, action, handover, received_at,"
        " due_at, status, assignee, outcome, completed_at)"
        " SELECT 'HS-DONE-' || n, 1, 1, 'appraise', $3::jsonb, $1::timestamptz,"
        " $1::timestamptz + n * interval '1 minute', 'done', 'officer-bot', 'done', $1::timestamptz"
        " FROM generate_series(1, $2) AS n",
        START,
        DECIDED,
        handover.model_dump_json(),
    )
    await pool.execute(
        "INSERT INTO tasks (dossier_id, step_index, handoff_row, action, handover, received_at, due_at)"
        " VALUES ('HS-WAITING', 5, 5, 'issue_certificate', $3::jsonb, $1, $2)",
        START,
        START + timedelta(days=30),
        handover.model_dump_json(),
    )
    yield pool
    await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await pool.close()


async def test_the_listing_shows_tasks_still_waiting_before_decided_ones(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        listed = await store.tasks(conn)
        waiting = await store.waiting_tasks(conn)
    assert listed[0].dossier_id == "HS-WAITING"
    assert len(listed) == 500
    assert [t.dossier_id for t in waiting] == ["HS-WAITING"]


@dataclass
class _Runtime:
    pool: asyncpg.Pool
    clock: VirtualClock


@dataclass
class _Queue:
    """The two things the bot uses of the queue: the runtime, and completing a task."""

    runtime: _Runtime
    completed: list[int] = field(default_factory=list)

    async def complete(self, task_id: int, officer: str, decision: Decision) -> None:
        self.completed.append(task_id)


async def test_the_officer_bot_decides_a_task_behind_hundreds_of_decided_ones(pool: asyncpg.Pool) -> None:
    queue = _Queue(_Runtime(pool, VirtualClock(START + timedelta(days=1))))
    # The bot's only collaborator that does I/O beyond the pool is the use case, recorded here.
    bot = OfficerBot(cast(WorkQueue, queue), WorkingDayCalendar(), (Decimal(1), Decimal(1)))
    assert await bot.work_once() == 1
    waiting_id = await pool.fetchval("SELECT id FROM tasks WHERE dossier_id = 'HS-WAITING'")
    assert queue.completed == [waiting_id]
