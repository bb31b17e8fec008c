"""The faults, one per scenario: what is broken, how, and how it is repaired.

A fault's ``inject`` breaks something, waits, repairs it as a supervisor or an operator would,
and returns when it last broke it and for how long in all (:class:`Broken`). Every process
here is on 127.0.0.1 and belongs to the system the harness started.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient

from infra.kafka.cluster import KafkaCluster
from infra.stack import Stack
from services import manifest


@dataclass(frozen=True)
class Durations:
    """How long faults last: the full run's or the quick variant's."""

    window: float
    """Seconds of load per scenario; the fault falls inside it."""
    kills: int
    """SIGKILLs per service scenario, at random moments."""
    broker_down: float
    postgres_down: float
    smtp_down: float
    rebalance_hold: float
    """How long the extra instances share the work before they leave."""


FULL = Durations(window=60, kills=3, broker_down=30, postgres_down=10, smtp_down=300, rebalance_hold=20)
QUICK = Durations(window=12, kills=1, broker_down=10, postgres_down=4, smtp_down=20, rebalance_hold=6)


@dataclass(frozen=True)
class Broken:
    """What an injection did."""

    at: float
    """When the last break began (``time.monotonic``): recovery is measured from it."""
    seconds: float
    """How long things were broken, in all."""


@dataclass(frozen=True)
class Fault:
    """A scenario's fault."""

    name: str
    what: str
    inject: Callable[[Stack, Durations, random.Random], Awaitable[Broken]]


def _kill(service: str) -> Fault:
    async def inject(system: Stack, d: Durations, rng: random.Random) -> Broken:
        down, started = 0.0, 0.0
        for _ in range(d.kills):
            await asyncio.sleep(rng.uniform(0, d.window / (2 * d.kills)))
            await asyncio.to_thread(system.stop_service, service, sig=signal.SIGKILL)
            started = time.monotonic()
            await asyncio.sleep(rng.uniform(1, 3))  # a supervisor notices and restarts it
            system.restart(service)
            await asyncio.to_thread(system.wait_healthy, service, 120)
            down += time.monotonic() - started
        return Broken(started, down)

    return Fault(f"kill {service}", f"SIGKILL {service} at a random moment, restarted 1-3 s later", inject)


async def _leader_of(system: Stack, topic: str) -> int:
    admin = AIOKafkaAdminClient(**system.superuser.client_kwargs(), client_id="chaos")
    await admin.start()
    try:
        (described,) = await admin.describe_topics([system.topic_prefix + topic])
    finally:
        await admin.close()
    return int(next(p["leader"] for p in described["partitions"] if p["partition"] == 0))


async def wait_replicated(system: Stack, timeout: float = 120) -> None:
    """Until every partition of the system's topics has all its replicas in sync again."""
    admin = AIOKafkaAdminClient(**system.superuser.client_kwargs(), client_id="chaos")
    await admin.start()
    try:
        async with asyncio.timeout(timeout):
            while True:
                topics = [t for t in await admin.list_topics() if t.startswith(system.topic_prefix)]
                described = await admin.describe_topics(topics)
                lagging = [
                    (t["topic"], p["partition"])
                    for t in described
                    for p in t.get("partitions", [])
                    if len(p["isr"]) < len(p["replicas"])
                ]
                if not lagging:
                    return
                await asyncio.sleep(1)
    finally:
        await admin.close()


def _cluster(system: Stack) -> KafkaCluster:
    if not isinstance(system.kafka, KafkaCluster):
        raise RuntimeError("the broker scenarios need the three-node cluster (Stack(brokers=3))")
    return system.kafka


async def _kill_leader(system: Stack, d: Durations, rng: random.Random) -> Broken:
    await asyncio.sleep(rng.uniform(0, d.window / 3))
    node = _cluster(system).node(await _leader_of(system, "handoffs.land_registry"))
    await asyncio.to_thread(node.kill)
    started = time.monotonic()
    await asyncio.sleep(d.broker_down)
    await asyncio.to_thread(node.start)
    await asyncio.to_thread(node.wait_ready, 90)
    down = time.monotonic() - started
    await wait_replicated(system)
    return Broken(started, down)


async def _rolling_restart(system: Stack, d: Durations, rng: random.Random) -> Broken:
    await asyncio.sleep(rng.uniform(0, d.window / 4))
    started = time.monotonic()
    for node in _cluster(system).nodes:
        await asyncio.to_thread(node.stop)  # controlled shutdown: leadership moves first
        await asyncio.to_thread(node.start)
        await asyncio.to_thread(node.wait_ready, 90)
        await wait_replicated(system)  # the next node only once this one caught up
    return Broken(started, time.monotonic() - started)


async def _rebalance(system: Stack, d: Durations, rng: random.Random) -> Broken:
    await asyncio.sleep(rng.uniform(0, d.window / 4))
    started = time.monotonic()
    names = manifest.names()
    for name in names:
        system.start_instance(name, 2)
    await asyncio.gather(*(asyncio.to_thread(system.wait_healthy, f"{name}#2", 120) for name in names))
    await asyncio.sleep(d.rebalance_hold)
    for name in names:
        await asyncio.to_thread(system.stop_service, f"{name}#2")
    return Broken(started, time.monotonic() - started)


async def _outage(
    d: Durations, rng: random.Random, stop: Callable[[], object], start: Callable[[], object], down: float
) -> Broken:
    """Stop something at a random moment of the window's first quarter, start it ``down`` s later."""
    await asyncio.sleep(rng.uniform(0, d.window / 4))
    started = time.monotonic()
    await asyncio.to_thread(stop)
    await asyncio.sleep(down)
    await asyncio.to_thread(start)
    return Broken(started, time.monotonic() - started)


async def _restart_postgres(system: Stack, d: Durations, rng: random.Random) -> Broken:
    postgres = system.postgres
    if postgres is None:
        raise RuntimeError("the Postgres scenario needs the embedded server (DATABASE_URL unset)")

    def start() -> None:
        if (url := postgres.start()) != system.database_url:
            raise RuntimeError(f"Postgres came back at {url}, not {system.database_url}")

    return await _outage(d, rng, postgres.stop, start, d.postgres_down)


async def _smtp_down(system: Stack, d: Durations, rng: random.Random) -> Broken:
    if system.mailbox is None:
        raise RuntimeError("the SMTP scenario needs the development mailbox (SMTP_HOST unset)")
    return await _outage(d, rng, system.mailbox.stop, system.start_mailbox, d.smtp_down)


FAULTS: tuple[Fault, ...] = (
    *(_kill(name) for name in ("intake", "land_registry", "tax", "notification", "console")),
    Fault(
        "kill partition leader",
        "SIGKILL the broker leading handoffs.land_registry, restarted later",
        _kill_leader,
    ),
    Fault(
        "rolling broker restart",
        "each broker stopped and started in turn, in sync before the next",
        _rolling_restart,
    ),
    Fault("rebalance", "a second instance of every service joins under load, then leaves", _rebalance),
    Fault("restart Postgres", "the database server stopped and started again", _restart_postgres),
    Fault("SMTP down", "the mail server stopped, then started again", _smtp_down),
)
"""Every scenario, in the order the harness runs them."""
