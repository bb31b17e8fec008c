"""The urban management office's tables, in the ``urban_management`` schema."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.runtime.database import Connection, Migration

MIGRATIONS = (
    Migration(
        "urban_management-001-steps",
        """
        -- Every step the office did, with its outcome: its own record of what it decided.
        CREATE TABLE steps (
            dossier_id   text NOT NULL,
            handoff_row  integer NOT NULL,
            action       text NOT NULL,
            outcome      text NOT NULL,
            note         text NOT NULL,
            result       jsonb NOT NULL,
            completed_at timestamptz NOT NULL,
            PRIMARY KEY (dossier_id, handoff_row)
        );
        CREATE SEQUENCE permit_number START 1;
        """,
    ),
)


async def next_permit_number(conn: Connection, issued_at: datetime) -> str:
    """The next permit number, e.g. ``GPXD-2026-000042``."""
    return f"GPXD-{issued_at:%Y}-{await conn.fetchval('SELECT nextval($1)', 'permit_number'):06d}"


async def record_step(
    conn: Connection,
    *,
    dossier_id: str,
    handoff_row: int | None,
    action: str,
    outcome: str,
    note: str,
    result: str,
    completed_at: datetime,
) -> None:
    """Keep what the office decided (a redelivered handoff is a no-op thanks to the inbox)."""
    await conn.execute(
        "INSERT INTO steps (dossier_id, handoff_row, action, outcome, note, result, completed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
        dossier_id,
        -1 if handoff_row is None else handoff_row,
        action,
        outcome,
        note,
        result,
        completed_at,
    )


class Register(Protocol):
    """The office's register, as its use case needs it (a port: Postgres here, a list in tests)."""

    async def next_permit_number(self, issued_at: datetime) -> str:
        """The next permit number."""
        ...

    async def record_step(
        self, *, dossier_id: str, handoff_row: int | None, action: str, outcome: str, note: str, result: str
    ) -> None:
        """Keep what the office decided."""
        ...


@dataclass(frozen=True)
class PostgresRegister:
    """:class:`Register` in the office's schema, on a unit of work's connection."""

    conn: Connection
    now: datetime

    async def next_permit_number(self, issued_at: datetime) -> str:
        """See :meth:`Register.next_permit_number`."""
        return await next_permit_number(self.conn, issued_at)

    async def record_step(
        self, *, dossier_id: str, handoff_row: int | None, action: str, outcome: str, note: str, result: str
    ) -> None:
        """See :meth:`Register.record_step`."""
        await record_step(
            self.conn,
            dossier_id=dossier_id,
            handoff_row=handoff_row,
            action=action,
            outcome=outcome,
            note=note,
            result=result,
            completed_at=self.now,
        )
