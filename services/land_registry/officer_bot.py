"""A stand-in officer for a demo system (``OFFICER_BOT=on``): decides open tasks after a delay.

Each task gets a delay drawn uniformly from ``OFFICER_BOT_DELAY_HOURS`` (working hours on the
service's clock, seeded by the task's id so a restart draws the same); when it has passed, the
bot claims and completes the task through the same use case an officer's request goes through,
accepting the rule's proposal. Delays longer than the step's budget make dossiers run late.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime
from decimal import Decimal

from services.land_registry import store
from services.land_registry.domain.queue import hours_per_day
from services.land_registry.handlers import Decision, TaskConflict, TaskNotFound, WorkQueue
from services.runtime.loops import keep_running
from services.runtime.working_days import WorkingDayCalendar

log = logging.getLogger(__name__)

BOT_OFFICER = "officer-bot"
POLL_SECONDS = 1.0


class OfficerBot:
    """Claims and completes open tasks once their drawn delay has passed."""

    def __init__(
        self, queue: WorkQueue, calendar: WorkingDayCalendar, delay_hours: tuple[Decimal, Decimal]
    ) -> None:
        self.queue = queue
        self.calendar = calendar
        self.delay_hours = delay_hours

    def decides_at(self, task: store.Task) -> datetime:
        """When the bot decides ``task``: its arrival plus the drawn working hours."""
        lo, hi = self.delay_hours
        hours = Decimal(str(round(random.Random(task.id).uniform(float(lo), float(hi)), 4)))
        return self.calendar.add_working_time(task.received_at, hours / hours_per_day(self.calendar))

    async def work_once(self) -> int:
        """Decide every task whose time has come; how many it decided."""
        async with self.queue.runtime.pool.acquire() as conn:
            waiting = await store.waiting_tasks(conn)
        now = self.queue.runtime.clock.now()
        decided = 0
        for task in waiting:
            if task.status == "claimed" and task.assignee != BOT_OFFICER:
                continue  # a human took it
            if self.decides_at(task) > now:
                continue
            try:
                await self.queue.complete(task.id, BOT_OFFICER, Decision(outcome="done"))
                decided += 1
            except (TaskConflict, TaskNotFound):
                continue  # someone else was quicker
        return decided

    async def run(self) -> None:
        """Work the queue for ever, surviving its own errors (a database restart, say)."""
        await keep_running("officer bot", self._pass)

    async def _pass(self) -> None:
        await self.work_once()
        await asyncio.sleep(POLL_SECONDS)
