"""The land registry's tables, in the ``land_registry`` schema."""

from __future__ import annotations

import json
from datetime import datetime

from services.land_registry.domain.registry import StepOutcome
from services.runtime.database import Connection, Migration

MIGRATIONS = (
    Migration(
        "land_registry-001-work",
        """
        -- Every step the registry performed, with what it concluded.
        CREATE TABLE steps_done (
            dossier_id   text NOT NULL,
            step_index   integer NOT NULL,
            action       text NOT NULL,
            outcome      text NOT NULL,
            note         text NOT NULL,
            result       jsonb NOT NULL,
            received_at  timestamptz NOT NULL,
            completed_at timestamptz NOT NULL,
            PRIMARY KEY (dossier_id, step_index)
        );
        -- Certificate serials are issued in sequence and never reused.
        CREATE SEQUENCE certificate_serial START 100001;
        """,
    ),
    Migration(
        "land_registry-002-redone-steps",
        """
        -- A step is redone after the citizen supplements the dossier: each handoff is its own row.
        ALTER TABLE steps_done ADD COLUMN handoff_row integer NOT NULL DEFAULT -1;
        ALTER TABLE steps_done DROP CONSTRAINT steps_done_pkey;
        ALTER TABLE steps_done ADD PRIMARY KEY (dossier_id, step_index, handoff_row);
        """,
    ),
)


async def next_certificate_serial(conn: Connection) -> str:
    """The next blank certificate serial (two letters and six digits, as printed)."""
    return f"TA {await conn.fetchval('SELECT nextval($1)', 'certificate_serial'):06d}"


async def record_step(
    conn: Connection,
    *,
    dossier_id: str,
    step_index: int,
    handoff_row: int | None,
    action: str,
    outcome: StepOutcome,
    received_at: datetime,
    completed_at: datetime,
) -> None:
    """Keep the registry's own record of the step."""
    await conn.execute(
        "INSERT INTO steps_done (dossier_id, step_index, handoff_row, action, outcome, note, result,"
        " received_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)",
        dossier_id,
        step_index,
        -1 if handoff_row is None else handoff_row,
        action,
        outcome.outcome,
        outcome.note,
        json.dumps(outcome.result),
        received_at,
        completed_at,
    )
