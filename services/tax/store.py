"""The tax authority's tables, in the ``tax`` schema."""

from __future__ import annotations

from datetime import datetime

from services.runtime.database import Connection, Migration
from services.tax.domain.assessment import Assessment

MIGRATIONS = (
    Migration(
        "tax-001-assessments",
        """
        CREATE TABLE assessments (
            dossier_id              text PRIMARY KEY,
            notice_number           text NOT NULL UNIQUE,
            taxable_value_vnd       bigint NOT NULL,
            registration_fee_vnd    bigint NOT NULL,
            personal_income_tax_vnd bigint NOT NULL,
            total_vnd               bigint NOT NULL,
            issued_at               timestamptz NOT NULL,
            pay_by                  timestamptz NOT NULL
        );
        CREATE SEQUENCE notice_number START 1;
        """,
    ),
    Migration(
        "tax-002-reassessments",
        """
        -- A dossier is assessed again after a supplement: one assessment per handoff.
        ALTER TABLE assessments ADD COLUMN handoff_row integer NOT NULL DEFAULT -1;
        ALTER TABLE assessments DROP CONSTRAINT assessments_pkey;
        ALTER TABLE assessments ADD PRIMARY KEY (dossier_id, handoff_row);
        """,
    ),
)


async def next_notice_number(conn: Connection, issued_at: datetime) -> str:
    """The next payment-notice number, e.g. ``TB-2026-000042``."""
    return f"TB-{issued_at:%Y}-{await conn.fetchval('SELECT nextval($1)', 'notice_number'):06d}"


async def record_assessment(
    conn: Connection,
    *,
    dossier_id: str,
    handoff_row: int | None,
    notice_number: str,
    assessment: Assessment,
    issued_at: datetime,
) -> None:
    """Keep the assessment the notice was issued from."""
    await conn.execute(
        "INSERT INTO assessments (dossier_id, handoff_row, notice_number, taxable_value_vnd,"
        " registration_fee_vnd, personal_income_tax_vnd, total_vnd, issued_at, pay_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        dossier_id,
        -1 if handoff_row is None else handoff_row,
        notice_number,
        assessment.taxable_value_vnd,
        assessment.registration_fee_vnd,
        assessment.personal_income_tax_vnd,
        assessment.total_vnd,
        issued_at,
        assessment.pay_by(issued_at),
    )
