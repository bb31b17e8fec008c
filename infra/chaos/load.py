"""The steady load of the fault scenarios: citizens filing and paying, and time moving.

Every request carries an ``Idempotency-Key`` and is retried until the desk answers, so a desk
killed with a request in flight neither loses the dossier (the retry files it) nor doubles it
(the retry gets the first answer). Time is virtual: :class:`Clocks` moves every virtual clock
one working hour per tick, so the officers' delays (hours) and the steps' budgets (days) pass
in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import asyncpg
import httpx

from infra.bench.load import land_transfer
from infra.stack import Stack
from services.replay.replay import payment_for
from services.runtime.working_days import WorkingDayCalendar

log = logging.getLogger(__name__)

DATABASE_AWAY = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
"""What a query raises while Postgres restarts: a pooled connection can also be left mid-operation
(``InternalClientError``: the quick run's cashier died of it after the Postgres scenario)."""

RETRY_SECONDS = 600.0
"""How long a citizen keeps retrying one request (longer than any scenario's outage)."""
DESK_ROLES = ("desk_officer", "payment_gateway")


class Citizens:
    """Files land transfers at a steady rate through the desks, and pays each when it is asked to."""

    def __init__(self, system: Stack, pool: asyncpg.Pool, *, run: str) -> None:
        self.system = system
        self.pool = pool
        self.run = run
        self.filed: dict[str, float] = {}
        """Every dossier the desk acknowledged, with when (``time.monotonic``)."""
        self._numbers = itertools.count(1)
        self._paid: set[str] = set()
        self._headers = {"Authorization": f"Bearer {system.token(*DESK_ROLES, subject='chaos-citizens')}"}
        self._client = httpx.AsyncClient(timeout=30, headers=self._headers)
        self._desks: Iterator[int] = itertools.count()

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def _desk(self) -> str:
        """A running desk, round robin (a second instance shares the work when there is one)."""
        desks = [s.url for _, s in sorted(self.system.running().items()) if s.service == "intake"]
        if not desks:
            return self.system.services["intake"].url  # down: the retry loop waits for it
        return desks[next(self._desks) % len(desks)]

    async def _request(self, path: str, body: dict[str, object], key: str) -> httpx.Response:
        """POST until a desk answers something other than a failure of its own; the final answer."""
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                response = await self._client.post(
                    self._desk() + path, json=body, headers={"Idempotency-Key": key}
                )
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass  # the desk is down or restarting: the same key again, later
            if time.monotonic() > deadline:
                raise RuntimeError(f"POST {path} (Idempotency-Key {key}) not answered in {RETRY_SECONDS:g} s")
            await asyncio.sleep(0.5)

    async def file(self) -> str:
        """File one land transfer; its id once the desk acknowledged it."""
        n = next(self._numbers)
        response = await self._request("/dossiers", land_transfer(n), f"{self.run}-file-{n}")
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST /dossiers answered {response.status_code}: {response.text[:300]}")
        dossier_id = str(response.json()["id"])
        self.filed[dossier_id] = time.monotonic()
        return dossier_id

    async def file_steadily(self, rate: float, seconds: float) -> list[str]:
        """File ``rate`` dossiers a second for ``seconds``, whatever the system does; their ids."""
        start = time.monotonic()
        tasks = []
        for i in range(max(1, round(rate * seconds))):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.file()))
        return list(await asyncio.gather(*tasks))

    async def pay_when_asked(self) -> None:
        """For ever: pay every filed dossier the desk waits on a payment for (the treasury's part)."""
        while True:
            try:
                unpaid = [d for d in self.filed if d not in self._paid]
                rows = await self.pool.fetch(
                    "SELECT id, results FROM intake.dossiers WHERE id = ANY($1::text[])"
                    " AND status = 'awaiting_payment'",
                    unpaid,
                )
                await asyncio.gather(*(self._pay(r["id"], json.loads(r["results"])) for r in rows))
            except DATABASE_AWAY as exc:
                log.info("cashier: %r; again", exc)  # Postgres restarting
            await asyncio.sleep(0.5)

    async def _pay(self, dossier_id: str, results: dict[str, object]) -> None:
        response = await self._request(
            f"/dossiers/{dossier_id}/payments",
            payment_for({"results": results}),
            f"{self.run}-pay-{dossier_id}",
        )
        if response.status_code == 200:
            self._paid.add(dossier_id)
        else:
            log.warning(
                "payment of %s answered %s: %s", dossier_id, response.status_code, response.text[:300]
            )


class Clocks:
    """Moves the virtual clocks of every running service one working hour per ``tick`` seconds."""

    def __init__(self, system: Stack, start: datetime, *, tick: float, wall_clock: frozenset[str]) -> None:
        self.system = system
        self.now = start
        self.tick = tick
        self.wall_clock = wall_clock
        """Services on the wall clock (not moved)."""
        self._calendar = WorkingDayCalendar()
        self._hour = Decimal(1) / Decimal(8)
        self._operator = {"Authorization": f"Bearer {system.token('operator', subject='chaos-clock')}"}

    async def run(self) -> None:
        """Tick for ever; a service that is down misses ticks and starts at its peers' time."""
        async with httpx.AsyncClient(timeout=5, headers=self._operator) as client:
            while True:
                self.now = self._calendar.add_working_time(self.now, self._hour)
                targets = [s.url for s in self.system.running().values() if s.service not in self.wall_clock]
                await asyncio.gather(*(self._move(client, url) for url in targets))
                await asyncio.sleep(self.tick)

    async def _move(self, client: httpx.AsyncClient, url: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await client.put(f"{url}/clock", json={"now": self.now.isoformat()})
