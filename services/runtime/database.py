"""A service's own Postgres schema: the connection pool and the migrations applied at start."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
from asyncpg.connection import LoggedQuery
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection, whether taken from a pool or opened alone (stores accept both)."""


@dataclass(frozen=True)
class Migration:
    """One forward-only schema change; ``name`` is recorded once applied and never reused."""

    name: str
    sql: str


RUNTIME_MIGRATIONS = (
    Migration(
        "runtime-001-outbox-inbox",
        """
        -- Transactional outbox: rows written in the same transaction as the state they announce;
        -- the relay publishes them in position order and stamps published_at.
        CREATE TABLE outbox (
            position     bigserial PRIMARY KEY,
            event_id     text NOT NULL UNIQUE,
            event_type   text NOT NULL,
            topic        text NOT NULL,
            key          bytea NOT NULL,
            value        bytea NOT NULL,
            headers      jsonb NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        );
        CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;
        -- Inbox: one row per (consumer, event) processed, written with the state change, so a
        -- redelivered event is recognised and skipped.
        CREATE TABLE inbox (
            consumer    text NOT NULL,
            event_id    text NOT NULL,
            event_type  text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, event_id)
        );
        """,
    ),
)
"""Tables every service has: the outbox and the inbox."""


def unnest_arrays(columns: Sequence[tuple[str, str]], first: int) -> str:
    """``$first::type[], …``: one array parameter per (name, type) column, for ``unnest(…)``.

    Writing many rows in one statement (one round trip) passes each column as an array.
    """
    return ", ".join(f"${first + i}::{type_}[]" for i, (_, type_) in enumerate(columns))


_SESSION_STATE: set[int] = set()
"""Server pids of pooled connections that changed session state (see :func:`holds_session_state`)."""


def holds_session_state(conn: Connection) -> None:
    """Mark a pooled connection that LISTENs or takes session advisory locks.

    The pool then runs the full reset (UNLISTEN, advisory unlock, RESET ALL, CLOSE ALL) when the
    connection comes back; connections that only ran transactions skip it.
    """
    _SESSION_STATE.add(conn.get_server_pid())


async def _reset_if_needed(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset is one more round trip on every release, i.e. on every unit of
    # work; asyncpg has already rolled back any open transaction and dropped Python listeners.
    pid = conn.get_server_pid()
    if pid in _SESSION_STATE:
        _SESSION_STATE.discard(pid)
        await conn.execute(conn.get_reset_query())


async def create_pool(
    dsn: str, *, schema: str, size: int, query_logger: Callable[[LoggedQuery], None] | None = None
) -> asyncpg.Pool:
    """A pool whose connections see only ``schema`` (created if missing).

    ``query_logger`` is called after every query on every connection (tracing uses it).
    """
    # The schema must exist before search_path can point at it; one short connection does it.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await conn.close()

    async def setup_connection(conn: asyncpg.Connection) -> None:
        if query_logger is not None:
            conn.add_query_logger(query_logger)

    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        server_settings={"search_path": schema},
        init=setup_connection,
        reset=_reset_if_needed,
    )
    assert pool is not None  # asyncpg types it Optional for its own legacy reasons
    return pool


async def migrate(pool: asyncpg.Pool, *, schema: str, migrations: tuple[Migration, ...]) -> list[str]:
    """Apply the migrations not yet applied, in order, in one transaction; return their names.

    An advisory lock serialises concurrent starts of the same service.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for migration in RUNTIME_MIGRATIONS + migrations:
            if migration.name in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", migration.name)
            applied.append(migration.name)
        return applied
