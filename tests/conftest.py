"""Shared fixtures: one real Kafka broker and one real Postgres for the whole test session.

Tests that need them take the ``stack`` fixture (Kafka + Postgres) or ``services`` (plus the
four services as real processes). Unique dossier ids keep tests independent on one stack.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from infra.kafka import KafkaNode, free_port
from infra.stack import SERVICES, Stack

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
GOLDEN_KEYS = REPO / "tests" / "golden" / "keys.jwks.json"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Real Kafka (KRaft, 127.0.0.1, free ports) and real Postgres for this session."""
    # A short path under /tmp: Postgres' Unix socket lives in the data dir (108-byte limit).
    run_dir = Path(tempfile.mkdtemp(prefix="dossier-", dir="/tmp"))
    stack = Stack(
        run_dir=run_dir,
        kafka_port=free_port(),
        controller_port=free_port(),
        ports={name: free_port() for name in SERVICES},
        # Virtual time: tests move the services' clocks (PUT /clock) to make deadlines pass.
        # It starts on a Monday morning with no holiday near, so due dates are easy to reason about.
        extra_env={
            "LOG_LEVEL": "INFO",
            "CLOCK": "virtual",
            "VIRTUAL_CLOCK_START": "2026-03-09T08:00:00+07:00",
            # Known to the tests that call the console's API (unset, the console draws its own).
            "CONSOLE_TOKEN": f"session-console-{secrets.token_hex(12)}",
            # The agencies answer at once; tests of officers' queues start a fresh system for it.
            "AGENCY_DECISIONS": "automatic",
        },
        # The golden streams were signed by keys of systems long gone; their public halves are
        # committed beside them, and trusted here so the streams replay verified.
        extra_key_registries=(GOLDEN_KEYS,),
    )
    try:
        stack.start_infrastructure()
        yield stack
    finally:
        stack.stop()
        if (run_dir / "logs").exists():
            shutil.copytree(run_dir / "logs", ARTIFACTS / "service-logs", dirs_exist_ok=True)
        if isinstance(stack.kafka, KafkaNode) and stack.kafka.log_path.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(stack.kafka.log_path, ARTIFACTS / "kafka.log")
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def services(stack: Stack) -> Stack:
    """The four services running as processes against the session's Kafka and Postgres."""
    for name in SERVICES:
        stack.start_service(name)
    for name in SERVICES:
        stack.wait_healthy(name)
    return stack


@pytest.fixture(scope="session")
async def db(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session's database, for assertions across every service's schema."""
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()
