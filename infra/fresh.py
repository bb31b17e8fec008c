"""A fresh, empty system beside a running stack: own topic prefix, own database, own mailbox.

A replay needs a system with nothing in it, on virtual time. Starting a second Kafka and
Postgres would cost half a minute; instead the new system shares the running stack's broker and
database server but sees none of its data: every topic and consumer group carries the system's
prefix, and it gets a database of its own. Used by the bench (replay speed) and the tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from infra.kafka import free_port
from infra.kafka.acls import OPERATOR
from infra.kafka.node import ADMIN_PRINCIPAL
from infra.stack import Stack
from services.replay.replay import REPLAY_ROLES, Target


async def create_database(server_url: str, name: str, *, durable: bool = True) -> str:
    """A new, empty database on the server of ``server_url``; its URL.

    ``durable=False`` is for a throwaway database (a replay, a test system): its commits do not
    wait for the WAL to reach the disk (``synchronous_commit = off``). A crash of the Postgres
    server could lose the last few hundred milliseconds of commits, never corrupt anything; a
    service killed mid-work loses nothing, as with a durable database.
    """
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    if not durable:
        await without_durability(url)
    return url


async def without_durability(database_url: str) -> None:
    """Sessions opened on this database from now on commit with ``synchronous_commit = off``."""
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_system(
    stack: Stack,
    services: Sequence[str],
    *,
    start: str,
    name: str | None = None,
    log_level: str = "INFO",
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Start ``services`` on virtual time from ``start`` as a new, empty system; stop them after.

    Its agencies answer at once (``AGENCY_DECISIONS=automatic``) unless ``extra_env`` says otherwise;
    its database is a throwaway one (``create_database(durable=False)``).
    """
    name = name or f"sys{uuid.uuid4().hex[:8]}"
    system = Stack(
        run_dir=stack.run_dir / name,
        ports={service: free_port() for service in services},
        extra_env={
            "LOG_LEVEL": log_level,
            "CLOCK": "virtual",
            "VIRTUAL_CLOCK_START": start,
            "KAFKA_TOPIC_PREFIX": f"{name}.",
            "AGENCY_DECISIONS": "automatic",
            **(extra_env or {}),
        },
        bootstrap_servers=stack.bootstrap_servers,
        database_url=await create_database(stack.database_url, name, durable=False),
        trust=stack.secrets,
        extra_key_registries=stack.extra_key_registries,
        admin_access=stack.kafka_access(ADMIN_PRINCIPAL),
    )
    try:
        await asyncio.to_thread(system.provision)
        system.start_mailbox()
        for service in services:
            system.start_service(service)
        await asyncio.gather(*(asyncio.to_thread(system.wait_healthy, s) for s in services))
        yield system
    finally:
        await asyncio.to_thread(system.stop)


def prefix_of(system: Stack) -> str:
    """The system's topic prefix."""
    return system.extra_env["KAFKA_TOPIC_PREFIX"]


def target_of(system: Stack) -> Target:
    """The system as a replay target: every service it runs is under replay."""
    return Target(
        kafka=system.kafka_access(OPERATOR),
        services={name: service.url for name, service in system.services.items()},
        topic_prefix=prefix_of(system),
        token=system.token(*REPLAY_ROLES, subject="replayer"),
    )
