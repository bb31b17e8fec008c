"""Intake's tables: dossiers and their process-control slips, in the ``intake`` schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from contracts.events import Applicant
from services.intake.domain.catalog import Step
from services.intake.domain.dossier import Dossier, DossierStatus, Handoff
from services.runtime.database import Connection, Migration, unnest_arrays

MIGRATIONS = (
    Migration(
        "intake-001-dossiers",
        """
        CREATE TABLE dossiers (
            id             text PRIMARY KEY,
            procedure_code text NOT NULL,
            procedure_name text NOT NULL,
            level          text NOT NULL,
            return_place   text NOT NULL,
            -- The route is a snapshot of the catalog at receipt: a catalog edit must not
            -- re-route dossiers already in flight.
            route          jsonb NOT NULL,
            applicant      jsonb NOT NULL,
            documents      jsonb NOT NULL,
            details        jsonb NOT NULL,
            fees_vnd       bigint NOT NULL,
            received_at    timestamptz NOT NULL,
            appointment_at timestamptz NOT NULL,
            status         text NOT NULL,
            current_step   integer NOT NULL,
            results        jsonb NOT NULL,
            returned_at    timestamptz,
            updated_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX dossiers_status ON dossiers (status);
        CREATE TABLE handoffs (
            dossier_id   text NOT NULL REFERENCES dossiers (id),
            step_index   integer NOT NULL,
            from_agency  text NOT NULL,
            to_agency    text NOT NULL,
            action       text NOT NULL,
            budget_days  numeric NOT NULL,
            counts       boolean NOT NULL,
            sent_at      timestamptz NOT NULL,
            due_at       timestamptz,
            received_at  timestamptz,
            completed_at timestamptz,
            outcome      text,
            note         text NOT NULL DEFAULT '',
            PRIMARY KEY (dossier_id, step_index)
        );
        """,
    ),
    Migration(
        "intake-002-clock-and-deadlines",
        """
        -- Slip rows get their own number: a step redone after a supplement is a new row.
        ALTER TABLE handoffs ADD COLUMN row_index integer;
        UPDATE handoffs SET row_index = step_index;
        ALTER TABLE handoffs ALTER COLUMN row_index SET NOT NULL;
        ALTER TABLE handoffs DROP CONSTRAINT handoffs_pkey;
        ALTER TABLE handoffs ADD PRIMARY KEY (dossier_id, row_index);
        ALTER TABLE handoffs ADD COLUMN late_by_days numeric NOT NULL DEFAULT 0;
        -- The durable deadline: the watcher fires rows whose alarm_at has passed and moves or
        -- clears alarm_at in the same transaction as the events, so each alarm fires once.
        ALTER TABLE handoffs ADD COLUMN alarm_at timestamptz;
        ALTER TABLE handoffs ADD COLUMN overdue_at timestamptz;
        CREATE INDEX handoffs_alarms ON handoffs (alarm_at) WHERE alarm_at IS NOT NULL;
        ALTER TABLE dossiers ADD COLUMN statutory_limit_days numeric NOT NULL DEFAULT 0;
        ALTER TABLE dossiers ADD COLUMN paused_at timestamptz;
        ALTER TABLE dossiers ADD COLUMN original_appointment_at timestamptz;
        ALTER TABLE dossiers ADD COLUMN apologised_at timestamptz;
        CREATE SEQUENCE apology_letter_number START 1;
        """,
    ),
    Migration(
        "intake-003-trace-context",
        """
        -- The W3C trace context of the dossier's receipt: the deadline watcher and later
        -- requests (payment, supplements) continue the dossier's one trace from it.
        ALTER TABLE dossiers ADD COLUMN trace_context jsonb NOT NULL DEFAULT '{}';
        """,
    ),
    Migration(
        "intake-004-idempotency-keys",
        """
        -- Requests made with an Idempotency-Key: a repeat (client retry, replayed stream) finds
        -- its key here and changes nothing. Inserted in the request's own transaction.
        CREATE TABLE requests (
            key        text PRIMARY KEY,
            action     text NOT NULL,
            dossier_id text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    Migration(
        "intake-005-lookup-code",
        """
        -- The code printed on the receipt that, with the dossier's id, opens the public status
        -- look-up. Dossiers filed before it have none: only the desk can look them up.
        ALTER TABLE dossiers ADD COLUMN lookup_code text NOT NULL DEFAULT '';
        """,
    ),
    Migration(
        "intake-006-progressed-at",
        """
        -- The time of the last state published to the read models: the next is never earlier.
        ALTER TABLE dossiers ADD COLUMN progressed_at timestamptz;
        """,
    ),
    Migration(
        "intake-007-faults",
        """
        -- Faults in handling already apologised for ("kind:agency"): one letter per fault.
        ALTER TABLE dossiers ADD COLUMN faults jsonb NOT NULL DEFAULT '[]';
        """,
    ),
    Migration(
        "intake-008-rated-at",
        """
        -- When the citizen rated the service: a dossier is rated once.
        ALTER TABLE dossiers ADD COLUMN rated_at timestamptz;
        """,
    ),
    Migration(
        "intake-009-warned-at",
        """
        -- When the agency and the desk were warned that the step entered its last working day.
        ALTER TABLE handoffs ADD COLUMN warned_at timestamptz;
        """,
    ),
)


class Dossiers(Protocol):
    """The desk's dossiers, as its use cases need them (a port: Postgres here, a dict in tests)."""

    async def load(self, dossier_id: str, *, for_update: bool = False) -> Dossier | None:
        """The dossier with its slip, or None; ``for_update`` locks it for this unit of work."""
        ...

    async def save(self, dossier: Dossier, *, trace_context: dict[str, str] | None = None) -> None:
        """Insert or update the dossier and its slip."""
        ...

    async def next_letter_number(self, now: datetime) -> str:
        """The number of the next letter the desk records (apologies share one sequence)."""
        ...


@dataclass(frozen=True)
class PostgresDossiers:
    """:class:`Dossiers` in the intake schema, on a unit of work's connection."""

    conn: Connection

    async def load(self, dossier_id: str, *, for_update: bool = False) -> Dossier | None:
        """See :meth:`Dossiers.load`."""
        return await load(self.conn, dossier_id, for_update=for_update)

    async def save(self, dossier: Dossier, *, trace_context: dict[str, str] | None = None) -> None:
        """See :meth:`Dossiers.save`."""
        await save(self.conn, dossier, trace_context=trace_context)

    async def next_letter_number(self, now: datetime) -> str:
        """See :meth:`Dossiers.next_letter_number`."""
        return await next_letter_number(self.conn, now)


async def exists(conn: Connection, dossier_id: str) -> bool:
    """Whether a dossier with that id was filed."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dossiers WHERE id = $1)", dossier_id))


async def claim_request(
    conn: Connection, key: str, *, action: str, dossier_id: str
) -> tuple[str, str] | None:
    """Record an idempotency key; None if new, else the (action, dossier) it was first used for."""
    inserted = await conn.fetchval(
        "INSERT INTO requests (key, action, dossier_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (key) DO NOTHING RETURNING key",
        key,
        action,
        dossier_id,
    )
    if inserted is not None:
        return None
    row = await conn.fetchrow("SELECT action, dossier_id FROM requests WHERE key = $1", key)
    assert row is not None  # keys are never deleted
    return str(row["action"]), str(row["dossier_id"])


async def load(conn: Connection, dossier_id: str, *, for_update: bool = False) -> Dossier | None:
    """The dossier with its slip; ``for_update`` locks it until the transaction ends."""
    # Lock first, read after. One ``SELECT ... FOR UPDATE`` that waited for the lock returns the
    # dossier row as committed by the holder but the slip subquery as it was before (the
    # statement's snapshot): an agency's answer racing an alarm then saved the slip without the
    # alarm's mark, or the alarm re-opened a step the answer had closed.
    lock = "SELECT 1 FROM dossiers WHERE id = $1 FOR UPDATE"
    if for_update and await conn.fetchval(lock, dossier_id) is None:
        return None
    # The slip comes along as an array of ``handoffs`` rows (asyncpg decodes the composite
    # type, so every column keeps its type).
    row = await conn.fetchrow(
        "SELECT d.*, ARRAY(SELECT h FROM handoffs h WHERE h.dossier_id = d.id ORDER BY h.row_index) AS slip"
        " FROM dossiers d WHERE d.id = $1",
        dossier_id,
    )
    if row is None:
        return None
    slip = row["slip"]
    return Dossier(
        id=row["id"],
        procedure_code=row["procedure_code"],
        procedure_name=row["procedure_name"],
        level=row["level"],
        return_place=row["return_place"],
        statutory_limit_days=row["statutory_limit_days"],
        route=tuple(Step.model_validate(s) for s in json.loads(row["route"])),
        applicant=Applicant.model_validate_json(row["applicant"]),
        documents=json.loads(row["documents"]),
        details=json.loads(row["details"]),
        fees_vnd=row["fees_vnd"],
        received_at=row["received_at"],
        appointment_at=row["appointment_at"],
        status=DossierStatus(row["status"]),
        current_step=row["current_step"],
        results=json.loads(row["results"]),
        returned_at=row["returned_at"],
        paused_at=row["paused_at"],
        original_appointment_at=row["original_appointment_at"],
        apologised_at=row["apologised_at"],
        lookup_code=row["lookup_code"],
        progressed_at=row["progressed_at"],
        faults=json.loads(row["faults"]),
        rated_at=row["rated_at"],
        slip=[
            Handoff(
                row=h["row_index"],
                step_index=h["step_index"],
                from_agency=h["from_agency"],
                to_agency=h["to_agency"],
                action=h["action"],
                budget_days=h["budget_days"],
                counts=h["counts"],
                sent_at=h["sent_at"],
                due_at=h["due_at"],
                received_at=h["received_at"],
                completed_at=h["completed_at"],
                outcome=h["outcome"],
                note=h["note"],
                late_by_days=h["late_by_days"],
                alarm_at=h["alarm_at"],
                overdue_at=h["overdue_at"],
                warned_at=h["warned_at"],
            )
            for h in slip
        ],
    )


_SLIP_COLUMNS = (
    ("row_index", "integer"),
    ("step_index", "integer"),
    ("from_agency", "text"),
    ("to_agency", "text"),
    ("action", "text"),
    ("budget_days", "numeric"),
    ("counts", "boolean"),
    ("sent_at", "timestamptz"),
    ("due_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("completed_at", "timestamptz"),
    ("outcome", "text"),
    ("note", "text"),
    ("late_by_days", "numeric"),
    ("alarm_at", "timestamptz"),
    ("overdue_at", "timestamptz"),
    ("warned_at", "timestamptz"),
)
_SLIP_NAMES = ", ".join(name for name, _ in _SLIP_COLUMNS)
_SAVE = f"""
WITH dossier AS (
    INSERT INTO dossiers (id, procedure_code, procedure_name, level, return_place, route,
        applicant, documents, details, fees_vnd, received_at, appointment_at, status,
        current_step, results, returned_at, statutory_limit_days, paused_at,
        original_appointment_at, apologised_at, trace_context, lookup_code, progressed_at, faults,
        rated_at)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb, $10, $11, $12,
        $13, $14, $15::jsonb, $16, $17, $18, $19, $20, coalesce($21::jsonb, '{{}}'), $22, $23,
        $24::jsonb, $25)
    ON CONFLICT (id) DO UPDATE SET status = excluded.status,
        current_step = excluded.current_step, results = excluded.results,
        documents = excluded.documents, details = excluded.details,
        appointment_at = excluded.appointment_at, returned_at = excluded.returned_at,
        paused_at = excluded.paused_at,
        original_appointment_at = excluded.original_appointment_at,
        apologised_at = excluded.apologised_at, progressed_at = excluded.progressed_at,
        faults = excluded.faults, rated_at = excluded.rated_at,
        trace_context = coalesce($21::jsonb, dossiers.trace_context), updated_at = now()
    RETURNING id
)
INSERT INTO handoffs (dossier_id, {_SLIP_NAMES})
SELECT dossier.id, slip.* FROM dossier,
    unnest({unnest_arrays(_SLIP_COLUMNS, 26)})
    AS slip({_SLIP_NAMES})
ON CONFLICT (dossier_id, row_index) DO UPDATE SET received_at = excluded.received_at,
    completed_at = excluded.completed_at, outcome = excluded.outcome, note = excluded.note,
    late_by_days = excluded.late_by_days, alarm_at = excluded.alarm_at,
    overdue_at = excluded.overdue_at, warned_at = excluded.warned_at
"""
"""The dossier and its slip (one array per slip column, ``$26`` on) in one statement."""


async def save(conn: Connection, dossier: Dossier, *, trace_context: dict[str, str] | None = None) -> None:
    """Insert or update the dossier and every row of its slip, in one round trip.

    ``trace_context`` (on receipt) is the W3C context later work on the dossier continues.
    """
    slip = dossier.slip
    await conn.execute(
        _SAVE,
        dossier.id,
        dossier.procedure_code,
        dossier.procedure_name,
        dossier.level,
        dossier.return_place,
        json.dumps([s.model_dump(mode="json") for s in dossier.route]),
        dossier.applicant.model_dump_json(),
        json.dumps(dossier.documents),
        json.dumps(dossier.details),
        dossier.fees_vnd,
        dossier.received_at,
        dossier.appointment_at,
        dossier.status.value,
        dossier.current_step,
        json.dumps(dossier.results),
        dossier.returned_at,
        dossier.statutory_limit_days,
        dossier.paused_at,
        dossier.original_appointment_at,
        dossier.apologised_at,
        None if trace_context is None else json.dumps(trace_context),
        dossier.lookup_code,
        dossier.progressed_at,
        json.dumps(dossier.faults),
        dossier.rated_at,
        [h.row for h in slip],
        [h.step_index for h in slip],
        [h.from_agency for h in slip],
        [h.to_agency for h in slip],
        [h.action for h in slip],
        [h.budget_days for h in slip],
        [h.counts for h in slip],
        [h.sent_at for h in slip],
        [h.due_at for h in slip],
        [h.received_at for h in slip],
        [h.completed_at for h in slip],
        [h.outcome for h in slip],
        [h.note for h in slip],
        [h.late_by_days for h in slip],
        [h.alarm_at for h in slip],
        [h.overdue_at for h in slip],
        [h.warned_at for h in slip],
    )


@dataclass(frozen=True)
class DueAlarm:
    """A slip row whose alarm has passed, with its dossier's trace context."""

    dossier_id: str
    row: int
    trace_context: dict[str, str]


async def due_alarms(conn: Connection, now: datetime, *, limit: int) -> list[DueAlarm]:
    """Slip rows whose alarm has passed, oldest first."""
    rows = await conn.fetch(
        "SELECT h.dossier_id, h.row_index, d.trace_context FROM handoffs h"
        " JOIN dossiers d ON d.id = h.dossier_id"
        " WHERE h.alarm_at <= $1 ORDER BY h.alarm_at, h.dossier_id, h.row_index LIMIT $2",
        now,
        limit,
    )
    return [DueAlarm(r["dossier_id"], r["row_index"], json.loads(r["trace_context"])) for r in rows]


async def count_due_alarms(conn: Connection, now: datetime) -> int:
    """Alarms the watcher has yet to fire (0 once it has caught up with ``now``)."""
    return int(await conn.fetchval("SELECT count(*) FROM handoffs WHERE alarm_at <= $1", now))


async def next_alarm(conn: Connection, _: datetime) -> datetime | None:
    """When the earliest alarm not yet fired falls due, None if none is set."""
    found: datetime | None = await conn.fetchval("SELECT min(alarm_at) FROM handoffs")
    return found


async def trace_context(conn: Connection, dossier_id: str) -> dict[str, str]:
    """The W3C trace context stored at receipt (empty for an unknown dossier)."""
    stored = await conn.fetchval("SELECT trace_context FROM dossiers WHERE id = $1", dossier_id)
    return dict(json.loads(stored)) if stored else {}


async def next_letter_number(conn: Connection, now: datetime) -> str:
    """The next apology letter number, e.g. ``PXL-2026-000007``."""
    return f"PXL-{now:%Y}-{await conn.fetchval('SELECT nextval($1)', 'apology_letter_number'):06d}"


async def status_counts(conn: Connection) -> dict[str, Any]:
    """How many dossiers are in each status (for operators and tests)."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM dossiers GROUP BY status")
    return {r["status"]: r["n"] for r in rows}
