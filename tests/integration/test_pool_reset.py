"""Pooled connections skip asyncpg's reset round trip unless they changed session state."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from asyncpg.connection import LoggedQuery

from infra.stack import Stack
from services.runtime.database import create_pool, holds_session_state

pytestmark = pytest.mark.real


async def test_only_connections_marked_as_holding_session_state_are_reset(stack: Stack) -> None:
    schema = f"resettest_{uuid.uuid4().hex[:8]}"
    queries: list[str] = []

    def log(query: LoggedQuery) -> None:
        queries.append(query.query)

    pool = await create_pool(stack.database_url, schema=schema, size=1, query_logger=log)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1")
        async with pool.acquire() as conn:  # the same connection: the pool holds one
            assert not [q for q in queries if "RESET ALL" in q], "a plain transaction needs no reset"

            holds_session_state(conn)
            await conn.execute("LISTEN reset_test")
            await conn.execute("SELECT pg_advisory_lock(4242)")
            pid = conn.get_server_pid()
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert [q for q in queries if "RESET ALL" in q], "the marked connection was reset"
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            assert held == 0
    finally:
        await pool.close()
        admin = await asyncpg.connect(stack.database_url)
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
