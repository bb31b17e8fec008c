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
)


async def next_certificate_serial(conn: Connection) -> str:
    """The next blank certificate serial (two letters and six digits, as printed)."""
    return f"TA {await conn.fetchval('SELECT nextval($1)', 'certificate_serial'):06d}"


async def record_step(
    conn: Connection,
    *,
    dossier_id: str,
    step_index: int,
    action: str,
    outcome: StepOutcome,
    received_at: datetime,
    completed_at: datetime,
) -> None:
    """Keep the registry's own record of the step."""
    await conn.execute(
        "INSERT INTO steps_done (dossier_id, step_index, action, outcome, note, result,"
        " received_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
        dossier_id,
        step_index,
        action,
        outcome.outcome,
        outcome.note,
        json.dumps(outcome.result),
        received_at,
        completed_at,
    )
