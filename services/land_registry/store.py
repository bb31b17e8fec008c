"""The land registry's tables, in the ``land_registry`` schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.events import DossierHandedOver
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
    Migration(
        "land_registry-003-tasks",
        """
        -- The officers' work queue: a manual handoff waits here until an officer decides it.
        CREATE TABLE tasks (
            id             bigserial PRIMARY KEY,
            dossier_id     text NOT NULL,
            step_index     integer NOT NULL,
            handoff_row    integer NOT NULL,
            action         text NOT NULL,
            -- The handoff as received: what the officer decides on and the rule computes from.
            handover       jsonb NOT NULL,
            received_at    timestamptz NOT NULL,
            due_at         timestamptz NOT NULL,
            status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'claimed', 'done')),
            assignee       text,
            outcome        text,
            note           text,
            -- The Idempotency-Key of the completing request: its retry replays, others get 409.
            completion_key text,
            completed_at   timestamptz,
            UNIQUE (dossier_id, step_index, handoff_row)
        );
        CREATE INDEX tasks_by_status ON tasks (status, due_at);
        """,
    ),
    Migration(
        "land_registry-004-task-warnings",
        """
        -- When the desk warned that the task's step entered its last working day.
        ALTER TABLE tasks ADD COLUMN warned_at timestamptz;
        """,
    ),
)

TASK_COLUMNS = (
    "id, dossier_id, step_index, handoff_row, action, handover, received_at, due_at, status,"
    " assignee, outcome, note, completion_key, completed_at, warned_at"
)


@dataclass(frozen=True)
class Task:
    """One row of the work queue."""

    id: int
    dossier_id: str
    step_index: int
    handoff_row: int
    action: str
    handover: DossierHandedOver
    received_at: datetime
    due_at: datetime
    status: str
    assignee: str | None
    outcome: str | None
    note: str | None
    completion_key: str | None
    completed_at: datetime | None
    warned_at: datetime | None = None
    """When the desk warned that the step entered its last working day."""

    @classmethod
    def from_row(cls, row: Any) -> Task:
        """A task from a row of :data:`TASK_COLUMNS`."""
        values = dict(row)
        values["handover"] = DossierHandedOver.model_validate_json(values["handover"])
        return cls(**values)


async def open_task(conn: Connection, handover: DossierHandedOver, *, received_at: datetime) -> None:
    """Queue a manual handoff for the officers (a handoff seen twice is queued once)."""
    await conn.execute(
        "INSERT INTO tasks (dossier_id, step_index, handoff_row, action, handover, received_at, due_at)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7) ON CONFLICT DO NOTHING",
        handover.dossier_id,
        handover.step_index,
        -1 if handover.handoff_row is None else handover.handoff_row,
        handover.action,
        handover.model_dump_json(),
        received_at,
        handover.due_at,
    )


async def tasks(conn: Connection, *, status: str | None = None, limit: int = 500) -> list[Task]:
    """Tasks, those still to decide first, then soonest due first (only ``status`` if given).

    Decided tasks pile up for ever; ordered first by due date they filled the limit and hid
    every newer task still waiting (the fault harness saw the officer bot stop at 500 tasks).
    """
    rows = await conn.fetch(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE ($1::text IS NULL OR status = $1)"
        " ORDER BY status = 'done', due_at, id LIMIT $2",
        status,
        limit,
    )
    return [Task.from_row(r) for r in rows]


async def waiting_tasks(conn: Connection, *, limit: int = 500) -> list[Task]:
    """Tasks open or claimed, soonest due first."""
    rows = await conn.fetch(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE status IN ('open', 'claimed') ORDER BY due_at, id LIMIT $1",
        limit,
    )
    return [Task.from_row(r) for r in rows]


async def task(conn: Connection, task_id: int, *, for_update: bool = False) -> Task | None:
    """One task; ``for_update`` locks it until the transaction ends (one decision at a time)."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1{lock}", task_id)
    return Task.from_row(row) if row is not None else None


async def assign(conn: Connection, task_id: int, *, assignee: str | None) -> None:
    """Claim the task for ``assignee``, or hand it back to the queue (None)."""
    await conn.execute(
        "UPDATE tasks SET status = $2, assignee = $3 WHERE id = $1",
        task_id,
        "open" if assignee is None else "claimed",
        assignee,
    )


async def close_task(
    conn: Connection,
    task_id: int,
    *,
    assignee: str,
    outcome: str,
    note: str,
    completion_key: str | None,
    completed_at: datetime,
) -> None:
    """Mark the task decided."""
    await conn.execute(
        "UPDATE tasks SET status = 'done', assignee = $2, outcome = $3, note = $4, completion_key = $5,"
        " completed_at = $6 WHERE id = $1",
        task_id,
        assignee,
        outcome,
        note,
        completion_key,
        completed_at,
    )


async def withdraw_task(
    conn: Connection, dossier_id: str, handoff_row: int, *, note: str, at: datetime
) -> None:
    """Close the task of a handoff the desk took back; a decided one stays as it was decided."""
    await conn.execute(
        "UPDATE tasks SET status = 'done', outcome = 'withdrawn', note = $3, completed_at = $4"
        " WHERE dossier_id = $1 AND handoff_row = $2 AND status IN ('open', 'claimed')",
        dossier_id,
        handoff_row,
        note,
        at,
    )


async def warn_task(conn: Connection, dossier_id: str, handoff_row: int, *, at: datetime) -> None:
    """Mark the task of a handoff in its last working day (a task already decided is left alone)."""
    await conn.execute(
        "UPDATE tasks SET warned_at = $3"
        " WHERE dossier_id = $1 AND handoff_row = $2 AND status IN ('open', 'claimed')",
        dossier_id,
        handoff_row,
        at,
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
    outcome: str,
    note: str,
    result: dict[str, Any],
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
        outcome,
        note,
        json.dumps(result),
        received_at,
        completed_at,
    )
