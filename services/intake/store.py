"""Intake's tables: dossiers and their process-control slips, in the ``intake`` schema."""

from __future__ import annotations

import json
from typing import Any

from contracts.events import Applicant
from services.intake.domain.catalog import Step
from services.intake.domain.dossier import Dossier, DossierStatus, Handoff
from services.runtime.database import Connection, Migration

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
)


async def load(conn: Connection, dossier_id: str, *, for_update: bool = False) -> Dossier | None:
    """The dossier with its slip; ``for_update`` locks it until the transaction ends."""
    row = await conn.fetchrow(
        "SELECT * FROM dossiers WHERE id = $1" + (" FOR UPDATE" if for_update else ""), dossier_id
    )
    if row is None:
        return None
    slip = await conn.fetch("SELECT * FROM handoffs WHERE dossier_id = $1 ORDER BY step_index", dossier_id)
    return Dossier(
        id=row["id"],
        procedure_code=row["procedure_code"],
        procedure_name=row["procedure_name"],
        level=row["level"],
        return_place=row["return_place"],
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
        slip=[
            Handoff(
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
            )
            for h in slip
        ],
    )


async def save(conn: Connection, dossier: Dossier) -> None:
    """Insert or update the dossier and every row of its slip."""
    await conn.execute(
        """
        INSERT INTO dossiers (id, procedure_code, procedure_name, level, return_place, route,
            applicant, documents, details, fees_vnd, received_at, appointment_at, status,
            current_step, results, returned_at)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb, $10, $11, $12,
            $13, $14, $15::jsonb, $16)
        ON CONFLICT (id) DO UPDATE SET status = excluded.status,
            current_step = excluded.current_step, results = excluded.results,
            appointment_at = excluded.appointment_at, returned_at = excluded.returned_at,
            updated_at = now()
        """,
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
    )
    await conn.executemany(
        """
        INSERT INTO handoffs (dossier_id, step_index, from_agency, to_agency, action,
            budget_days, counts, sent_at, due_at, received_at, completed_at, outcome, note)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (dossier_id, step_index) DO UPDATE SET from_agency = excluded.from_agency,
            to_agency = excluded.to_agency, action = excluded.action,
            budget_days = excluded.budget_days, sent_at = excluded.sent_at,
            due_at = excluded.due_at, received_at = excluded.received_at,
            completed_at = excluded.completed_at, outcome = excluded.outcome, note = excluded.note
        """,
        [
            (
                dossier.id,
                h.step_index,
                h.from_agency,
                h.to_agency,
                h.action,
                h.budget_days,
                h.counts,
                h.sent_at,
                h.due_at,
                h.received_at,
                h.completed_at,
                h.outcome,
                h.note,
            )
            for h in dossier.slip
        ],
    )


async def status_counts(conn: Connection) -> dict[str, Any]:
    """How many dossiers are in each status (for operators and tests)."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM dossiers GROUP BY status")
    return {r["status"]: r["n"] for r in rows}
