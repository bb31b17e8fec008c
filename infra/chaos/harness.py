"""Runs the scenarios one at a time on one system and prints the table.

Per scenario: file land transfers at a steady rate for the scenario's window, inject the fault
at a random moment inside it, wait until every dossier filed is back and every queue is empty
(or ``settle_timeout`` passes), then audit those dossiers. **Time to recover** is measured from
the moment the fault starts until the system's backlog is back to what it was before the fault:
every running service answers ``/health`` with 200, and the records waiting in its consumer
groups, its unpublished outbox rows, its due alarms and deliveries, and the notices still
pending a delivery, added up, are no more than the most seen before the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import httpx

from infra.chaos.audit import Audit, Auditor, audit_pool
from infra.chaos.faults import Durations, Fault
from infra.chaos.load import DATABASE_AWAY, Citizens, Clocks
from infra.stack import Stack

log = logging.getLogger(__name__)

RATE = 2.0
"""Land transfers filed per second during a scenario's window."""
SAMPLE_SECONDS = 0.5


@dataclass
class Outcome:
    """One scenario's row of the table."""

    scenario: str
    audit: Audit
    fault_seconds: float
    """How long the fault lasted (the component down, or the restarts)."""
    recovered_seconds: float | None
    """From the fault's start until the backlog was back to normal for good; None if it never was."""
    first_recovered_seconds: float | None
    """From the fault's start until the backlog was first back to normal (a failover: the broker
    still down)."""
    settled_seconds: float
    """From the end of the load until the audit found everything done (or gave up)."""
    restarted: list[str]
    """Services that stopped by themselves (a stall) and were started again meanwhile."""


class Harness:
    """The load, the clocks and the audit around one system; scenarios run through :meth:`scenario`."""

    def __init__(
        self, system: Stack, *, start: datetime, tick: float, wall_clock: frozenset[str], seed: int
    ) -> None:
        self.system = system
        self.start = start
        self.tick = tick
        self.wall_clock = wall_clock
        self.rng = random.Random(seed)
        self._stack = contextlib.AsyncExitStack()
        self.restarts: list[str] = []
        """Services the supervisor started again after they exited by themselves, in order."""
        self.pool: asyncpg.Pool
        self.citizens: Citizens
        self.auditor: Auditor

    async def __aenter__(self) -> Harness:
        self.pool = pool = await self._stack.enter_async_context(audit_pool(self.system))
        self.citizens = Citizens(self.system, pool, run=f"chaos-{uuid.uuid4().hex[:8]}")
        self._stack.push_async_callback(self.citizens.close)
        self.auditor = Auditor(self.system, pool)
        await self.auditor.start()
        clocks = Clocks(self.system, self.start, tick=self.tick, wall_clock=self.wall_clock)
        for loop in (clocks.run(), self.citizens.pay_when_asked(), self._supervise()):
            task = asyncio.create_task(loop)
            self._stack.push_async_callback(_cancel, task)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def scenario(self, fault: Fault, durations: Durations, *, settle_timeout: float) -> Outcome:
        """Run one scenario and audit it."""
        samples: list[tuple[float, int | None]] = []
        restarts_before = len(self.restarts)
        sampler = asyncio.create_task(self._sample(samples))
        try:
            filing = asyncio.create_task(self.citizens.file_steadily(RATE, durations.window))
            await asyncio.sleep(2)  # what normal looks like, before anything breaks
            broken = await fault.inject(self.system, durations, self.rng)
            ids = await filing
            load_done = time.monotonic()
            audit = await self.auditor.settled(ids, timeout=settle_timeout)
            settled = time.monotonic() - load_done
        finally:
            await _cancel(sampler)
        return Outcome(
            fault.name,
            audit,
            broken.seconds,
            recovered(samples, broken.at),
            recovered(samples, broken.at, first=True),
            settled,
            self.restarts[restarts_before:],
        )

    async def _supervise(self) -> None:
        """As ``make run`` does: start again, at once, a service that exited by itself.

        A fault restarts what it killed; a service that stops itself (its consumers stalled)
        needs this, as it needs a supervisor in production.
        """
        while True:
            for key in self.system.exited():
                log.warning("%s exited by itself; starting it again", key)
                self.restarts.append(key)
                await asyncio.to_thread(self.system.restart, key)
            await asyncio.sleep(1)

    async def _sample(self, samples: list[tuple[float, int | None]]) -> None:
        """Every ``SAMPLE_SECONDS``: the system's backlog, None while a service is unhealthy."""
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                samples.append((time.monotonic(), await self._backlog(client)))
                await asyncio.sleep(SAMPLE_SECONDS)

    async def _backlog(self, client: httpx.AsyncClient) -> int | None:
        total = 0
        try:
            # A copy: the rebalance scenario adds instances from a worker thread meanwhile.
            for service in list(self.system.services.values()):
                if service.extra:
                    continue  # an extra instance reports the same groups as the first
                if (await client.get(f"{service.url}/health")).status_code != 200:
                    return None
                total += sum((await client.get(f"{service.url}/backlog")).json().values())
            total += await self.pool.fetchval(
                "SELECT count(*) FROM notification.deliveries WHERE status = 'pending'"
            )
        except (httpx.HTTPError, ValueError, *DATABASE_AWAY):
            return None
        return int(total)


def recovered(
    samples: Sequence[tuple[float, int | None]], fault_at: float, *, first: bool = False
) -> float | None:
    """Seconds from ``fault_at`` to the end of the last abnormal stretch after it.

    With ``first``: to the end of the first stretch, when the system first absorbed the break.
    Normal is a backlog no higher than the highest sampled before the fault; abnormal is higher,
    or a service unhealthy (None). 0 when nothing abnormal was seen; None when the stretch asked
    for had not ended by the last sample.
    """
    normal = max((b for t, b in samples if t < fault_at and b is not None), default=0)
    after = [(t, b) for t, b in samples if t >= fault_at]
    abnormal = [i for i, (_, b) in enumerate(after) if b is None or b > normal]
    if not abnormal:
        return 0.0
    if first:
        back = next((i for i in range(abnormal[0], len(after)) if i not in abnormal), None)
        return None if back is None else after[back][0] - fault_at
    if abnormal[-1] == len(after) - 1:
        return None
    return after[abnormal[-1] + 1][0] - fault_at


async def _cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def table(outcomes: Sequence[Outcome]) -> str:
    """The Markdown table the README quotes."""
    lines = [
        "| scenario | dossiers | lost | doubled | stuck | alarms fired | apologies"
        " | fault lasted | first back to normal | time to recover |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.scenario} | {o.audit.dossiers} | {len(o.audit.lost)} | {len(o.audit.doubled)}"
            f" | {len(o.audit.stuck)} | {o.audit.alarms} | {o.audit.apologies}"
            f" | {o.fault_seconds:.1f} s | {_seconds(o.first_recovered_seconds)}"
            f" | {_seconds(o.recovered_seconds)} |"
        )
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "not seen" if value is None else f"{value:.1f} s"
