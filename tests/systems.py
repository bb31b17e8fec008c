"""Fresh systems on the session's Kafka and Postgres: own topics, own database, own mailbox.

Record/replay tests need a system with nothing in it: a recording comes from one, the replay
goes into another. Each gets a topic prefix, a database of its own on the session's Postgres
server, free ports and a mailbox, and runs on virtual time.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from infra.fresh import fresh_system as infra_fresh_system
from infra.stack import Stack
from services.replay.replay import wait_until_idle

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
START = "2026-03-09T08:00:00+07:00"
"""Monday morning, no holiday near: the clock every fresh system starts at."""


@asynccontextmanager
async def fresh_system(
    stack: Stack,
    services: Sequence[str],
    *,
    start: str = START,
    name: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """``infra.fresh.fresh_system`` for a test; its service logs are kept as test artifacts."""
    name = name or f"sys{uuid.uuid4().hex[:8]}"
    try:
        async with infra_fresh_system(stack, services, start=start, name=name, extra_env=extra_env) as system:
            yield system
    finally:
        logs = stack.run_dir / name / "logs"
        if logs.exists():
            shutil.copytree(logs, ARTIFACTS / "service-logs" / name, dirs_exist_ok=True)


async def set_time(system: Stack, moment: datetime) -> None:
    """Move every running service's virtual clock to ``moment``."""
    operator = {"Authorization": f"Bearer {system.token('operator')}"}
    async with httpx.AsyncClient(timeout=10, headers=operator) as client:
        for service in system.services.values():
            if service.process is None or service.process.poll() is not None:
                continue
            response = await client.put(f"{service.url}/clock", json={"now": moment.isoformat()})
            response.raise_for_status()


async def settled(system: Stack, *, timeout: float = 60) -> None:
    """Wait until every running service of ``system`` has no backlog (GET /backlog all zero)."""
    running = {
        name: s.url
        for name, s in system.services.items()
        if s.process is not None and s.process.poll() is None
    }
    async with httpx.AsyncClient(timeout=10) as client:
        await wait_until_idle(client, running, timeout=timeout)


# Columns that differ between two runs of the same events by construction: ids and wall times
# the database or the runtime assigns, and trace contexts. Everything else must be equal.
VOLATILE_COLUMNS = {
    "event_id",
    "created_at",
    "updated_at",
    "received_at_wall",
    "trace_context",
    "traceparent",
    "position",
    "published_at",
    # A notice's source event is the desk's event, whose id a replay writes anew; the PDF
    # carries its creation time; the SMTP provider id is the Message-ID, built from both.
    "source_event_id",
    "attachment",
    "provider_id",
    "detail",  # a delivery attempt's detail is that Message-ID
}


async def table_contents(database_url: str, schema: str) -> dict[str, list[dict[str, Any]]]:
    """Every table of ``schema``, rows sorted, volatile columns dropped.

    Left out: the runtime's outbox and inbox (event ids), the console's spans (telemetry), and
    intake's idempotency keys (a replay files its requests with keys; the origin may not have).
    """
    conn = await asyncpg.connect(database_url)
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
                " AND table_name NOT IN ('outbox', 'inbox', 'schema_migrations', 'spans', 'requests')"
                " ORDER BY 1",
                schema,
            )
        ]
        contents: dict[str, list[dict[str, Any]]] = {}
        for table in tables:
            rows = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
            cleaned = [
                {
                    k: (str(v) if v is not None else None)
                    for k, v in r.items()
                    # Serial numbers follow insertion order, which concurrent work may vary.
                    if k not in VOLATILE_COLUMNS and not (k.endswith("id") and isinstance(v, int))
                }
                for r in rows
            ]
            contents[table] = sorted(cleaned, key=lambda row: json.dumps(row, sort_keys=True))
        return contents
    finally:
        await conn.close()


def differences(expected: dict[str, Any], actual: dict[str, Any], *, limit: int = 6) -> list[str]:
    """Readable differences between two ``table_contents`` results (schema → table → rows)."""
    found: list[str] = []
    for schema in sorted(set(expected) | set(actual)):
        tables_e, tables_a = expected.get(schema, {}), actual.get(schema, {})
        for table in sorted(set(tables_e) | set(tables_a)):
            rows_e, rows_a = tables_e.get(table, []), tables_a.get(table, [])
            if rows_e == rows_a:
                continue
            found.append(f"{schema}.{table}: {len(rows_e)} rows expected, {len(rows_a)} found")
            for row_e, row_a in zip(rows_e, rows_a, strict=False):
                if row_e != row_a:
                    cols = sorted(k for k in set(row_e) | set(row_a) if row_e.get(k) != row_a.get(k))
                    found.append(f"  first differing row: {[(c, row_e.get(c), row_a.get(c)) for c in cols]}")
                    break
            if len(found) >= limit:
                return found
    return found
