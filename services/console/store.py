"""The console's tables, in the ``console`` schema: a read model of the desk's events, and spans.

Everything here is rebuilt from Kafka (``intake.events`` from the start) and from what OTLP
exporters send; nothing is read from another service's schema.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from contracts.events import (
    ApologyIssued,
    Applicant,
    DossierEscalated,
    DossierProgressed,
    DossierRated,
    FaultApologyIssued,
    StepDueSoon,
    StepOverdue,
)
from services.console.domain.dossiers import first_promised, has_open_overdue_step, search_text
from services.console.domain.on_time import CompletedStep, Period, SettledDossier
from services.console.domain.spans import Span
from services.runtime.database import Connection, Migration, unnest_arrays

MIGRATIONS = (
    Migration(
        "console-001-read-model",
        """
        -- The desk's latest view of each dossier (DossierProgressed), newest updated_at wins.
        CREATE TABLE dossiers (
            id                      text PRIMARY KEY,
            procedure_code          text NOT NULL,
            procedure_name          text NOT NULL,
            level                   text NOT NULL,
            applicant               jsonb NOT NULL,
            applicant_name          text NOT NULL,
            applicant_id_number     text NOT NULL,
            -- id, name and id number folded (lower case, no diacritics) for search
            search_text             text NOT NULL,
            status                  text NOT NULL,
            received_at             timestamptz NOT NULL,
            appointment_at          timestamptz NOT NULL,
            original_appointment_at timestamptz,
            -- the receipt's date, the one on-time rates measure against
            first_promised_at       timestamptz NOT NULL,
            clock_paused_since      timestamptz,
            returned_at             timestamptz,
            on_time                 boolean NOT NULL,
            -- a step the desk found overdue is still open
            overdue_open            boolean NOT NULL,
            current_agency          text,
            current_action          text,
            updated_at              timestamptz NOT NULL
        );
        CREATE INDEX dossiers_received ON dossiers (received_at DESC);
        CREATE INDEX dossiers_returned ON dossiers (returned_at) WHERE returned_at IS NOT NULL;
        -- The process-control slip, replaced whole by each newer snapshot.
        CREATE TABLE slip_rows (
            dossier_id   text NOT NULL REFERENCES dossiers (id) ON DELETE CASCADE,
            slip_row     integer NOT NULL,
            step_index   integer NOT NULL,
            from_agency  text NOT NULL,
            to_agency    text NOT NULL,
            action       text NOT NULL,
            budget_days  numeric NOT NULL,
            sent_at      timestamptz NOT NULL,
            due_at       timestamptz,
            received_at  timestamptz,
            completed_at timestamptz,
            outcome      text,
            late_by_days numeric NOT NULL,
            overdue_at   timestamptz,
            note         text NOT NULL,
            PRIMARY KEY (dossier_id, slip_row)
        );
        CREATE INDEX slip_rows_completed ON slip_rows (completed_at)
            WHERE completed_at IS NOT NULL AND due_at IS NOT NULL;
        CREATE TABLE overdue_steps (
            event_id       text PRIMARY KEY,
            dossier_id     text NOT NULL,
            step_index     integer NOT NULL,
            agency         text NOT NULL,
            action         text NOT NULL,
            budget_days    numeric NOT NULL,
            due_at         timestamptz NOT NULL,
            detected_at    timestamptz NOT NULL,
            appointment_at timestamptz NOT NULL
        );
        CREATE INDEX overdue_steps_dossier ON overdue_steps (dossier_id);
        CREATE INDEX overdue_steps_detected ON overdue_steps (detected_at DESC);
        CREATE TABLE apologies (
            event_id                text PRIMARY KEY,
            letter_number           text NOT NULL,
            dossier_id              text NOT NULL,
            issued_by_agency        text NOT NULL,
            issuer_name             text NOT NULL,
            signatory_title         text NOT NULL,
            applicant               jsonb NOT NULL,
            procedure_name          text NOT NULL,
            received_at             timestamptz NOT NULL,
            original_appointment_at timestamptz NOT NULL,
            new_appointment_at      timestamptz NOT NULL,
            reason                  text NOT NULL,
            issued_at               timestamptz NOT NULL,
            working_days_notice     numeric NOT NULL
        );
        CREATE INDEX apologies_dossier ON apologies (dossier_id);
        CREATE INDEX apologies_issued ON apologies (issued_at DESC);
        CREATE TABLE escalations (
            event_id       text PRIMARY KEY,
            dossier_id     text NOT NULL,
            agency         text NOT NULL,
            step_index     integer NOT NULL,
            action         text NOT NULL,
            reason         text NOT NULL,
            appointment_at timestamptz NOT NULL,
            detected_at    timestamptz NOT NULL
        );
        CREATE INDEX escalations_dossier ON escalations (dossier_id);
        """,
    ),
    Migration(
        "console-002-spans",
        """
        -- Spans received over OTLP/HTTP. An exporter retrying a batch sends the same ids again.
        CREATE TABLE spans (
            trace_id            text NOT NULL,
            span_id             text NOT NULL,
            parent_span_id      text,
            name                text NOT NULL,
            kind                text NOT NULL,
            service_name        text NOT NULL,
            scope_name          text NOT NULL,
            start_unix_nano     bigint NOT NULL,
            end_unix_nano       bigint NOT NULL,
            start_at            timestamptz NOT NULL,
            end_at              timestamptz NOT NULL,
            attributes          jsonb NOT NULL,
            resource_attributes jsonb NOT NULL,
            status_code         text NOT NULL,
            status_message      text NOT NULL,
            links               jsonb NOT NULL,
            events              jsonb NOT NULL,
            -- the span's dossier.id attribute: how a dossier finds its trace(s)
            dossier_id          text,
            received_at         timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (trace_id, span_id)
        );
        CREATE INDEX spans_dossier ON spans (dossier_id) WHERE dossier_id IS NOT NULL;
        CREATE INDEX spans_start ON spans (start_at);
        """,
    ),
    Migration(
        "console-003-applicants-apart",
        """
        -- Who applied comes from the receipt (intake.citizens), no longer from the public
        -- snapshots; the two arrive in either order, so they are kept apart and joined.
        CREATE TABLE applicants (
            dossier_id  text PRIMARY KEY,
            applicant   jsonb NOT NULL,
            full_name   text NOT NULL,
            id_number   text NOT NULL,
            -- name and id number folded (lower case, no diacritics) for search
            search_text text NOT NULL
        );
        INSERT INTO applicants (dossier_id, applicant, full_name, id_number, search_text)
            SELECT id, applicant, applicant_name, applicant_id_number, search_text FROM dossiers;
        ALTER TABLE dossiers DROP COLUMN applicant, DROP COLUMN applicant_name,
            DROP COLUMN applicant_id_number;
        -- From now on the dossier's own search text is its folded id.
        UPDATE dossiers SET search_text = lower(id);
        """,
    ),
    Migration(
        "console-004-apology-kinds",
        """
        -- Letters for faulty handling sit beside the late ones: ``kind`` is 'late' or the
        -- fault's kind; a fault letter keeps the date (original = new) and gives no notice.
        ALTER TABLE apologies ADD COLUMN kind text NOT NULL DEFAULT 'late',
            ADD COLUMN authority text,
            ALTER COLUMN working_days_notice DROP NOT NULL;
        CREATE INDEX apologies_kind ON apologies (kind, issued_at DESC);
        """,
    ),
    Migration(
        "console-005-ratings",
        """
        -- The citizens' ratings (SIPAS' five elements, 1 to 5), one per dossier.
        CREATE TABLE ratings (
            dossier_id     text PRIMARY KEY,
            procedure_code text NOT NULL,
            agencies       text[] NOT NULL,
            access         smallint NOT NULL,
            procedure      smallint NOT NULL,
            officials      smallint NOT NULL,
            result         smallint NOT NULL,
            feedback       smallint NOT NULL,
            rated_at       timestamptz NOT NULL
        );
        """,
    ),
    Migration(
        "console-006-due-soon",
        """
        -- Steps the desk warned about when they entered their last working day, still open then.
        CREATE TABLE due_soon_steps (LIKE overdue_steps INCLUDING ALL);
        """,
    ),
)

SCORE_ELEMENTS = ("access", "procedure", "officials", "result", "feedback")
"""The rated elements, as ``SatisfactionScores`` names them."""

MAX_TRACE_SPANS = 5000
"""A dossier's page shows at most this many spans (a year-long dossier can have many)."""


# --- writes from events ---------------------------------------------------------------------


_SLIP_COLUMNS = (
    ("slip_row", "integer"),
    ("step_index", "integer"),
    ("from_agency", "text"),
    ("to_agency", "text"),
    ("action", "text"),
    ("budget_days", "numeric"),
    ("sent_at", "timestamptz"),
    ("due_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("completed_at", "timestamptz"),
    ("outcome", "text"),
    ("late_by_days", "numeric"),
    ("overdue_at", "timestamptz"),
    ("note", "text"),
)
_SLIP_NAMES = ", ".join(name for name, _ in _SLIP_COLUMNS)
_SAVE_PROGRESS = f"""
WITH kept AS (
    INSERT INTO dossiers (id, procedure_code, procedure_name, level, search_text, status, received_at,
        appointment_at, original_appointment_at, first_promised_at, clock_paused_since, returned_at,
        on_time, overdue_open, current_agency, current_action, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
    ON CONFLICT (id) DO UPDATE SET procedure_code = EXCLUDED.procedure_code,
        procedure_name = EXCLUDED.procedure_name, level = EXCLUDED.level,
        search_text = EXCLUDED.search_text,
        status = EXCLUDED.status, received_at = EXCLUDED.received_at,
        appointment_at = EXCLUDED.appointment_at,
        original_appointment_at = EXCLUDED.original_appointment_at,
        first_promised_at = EXCLUDED.first_promised_at,
        clock_paused_since = EXCLUDED.clock_paused_since, returned_at = EXCLUDED.returned_at,
        on_time = EXCLUDED.on_time, overdue_open = EXCLUDED.overdue_open,
        current_agency = EXCLUDED.current_agency, current_action = EXCLUDED.current_action,
        updated_at = EXCLUDED.updated_at
    -- Equal times: the later record on the partition is the later state.
    WHERE dossiers.updated_at <= EXCLUDED.updated_at
    RETURNING id
),
gone AS (
    DELETE FROM slip_rows WHERE dossier_id IN (SELECT id FROM kept) AND slip_row <> ALL($18::integer[])
),
slip AS (
    INSERT INTO slip_rows (dossier_id, {_SLIP_NAMES})
    SELECT kept.id, row.* FROM kept,
        unnest({unnest_arrays(_SLIP_COLUMNS, 18)})
        AS row({_SLIP_NAMES})
    ON CONFLICT (dossier_id, slip_row) DO UPDATE SET
        {", ".join(f"{name} = EXCLUDED.{name}" for name, _ in _SLIP_COLUMNS[1:])}
)
SELECT EXISTS (SELECT FROM kept)
"""
"""The snapshot and its slip (one array per slip column, ``$18`` on) in one round trip."""


async def save_progress(conn: Connection, event: DossierProgressed) -> bool:
    """Keep the desk's snapshot unless a newer one is already kept; True if it was kept.

    The slip kept is the snapshot's, whole: rows it no longer has are deleted.
    """
    last = event.slip[-1] if event.slip else None
    slip = event.slip
    return bool(
        await conn.fetchval(
            _SAVE_PROGRESS,
            event.dossier_id,
            event.procedure_code,
            event.procedure_name,
            event.level,
            search_text(event.dossier_id),
            event.status,
            event.received_at,
            event.appointment_at,
            event.original_appointment_at,
            first_promised(event.appointment_at, event.original_appointment_at),
            event.clock_paused_since,
            event.returned_at,
            event.on_time,
            has_open_overdue_step(event.slip),
            last.to_agency if last else None,
            last.action if last else None,
            event.updated_at,
            [r.row for r in slip],
            [r.step_index for r in slip],
            [r.from_agency for r in slip],
            [r.to_agency for r in slip],
            [r.action for r in slip],
            [r.budget_days for r in slip],
            [r.sent_at for r in slip],
            [r.due_at for r in slip],
            [r.received_at for r in slip],
            [r.completed_at for r in slip],
            [r.outcome for r in slip],
            [r.late_by_days for r in slip],
            [r.overdue_at for r in slip],
            [r.note for r in slip],
        )
    )


async def save_applicant(conn: Connection, dossier_id: str, applicant: Applicant) -> None:
    """Who applied for the dossier, from its receipt (a repeated receipt changes nothing)."""
    await conn.execute(
        "INSERT INTO applicants (dossier_id, applicant, full_name, id_number, search_text)"
        " VALUES ($1, $2::jsonb, $3, $4, $5) ON CONFLICT (dossier_id) DO NOTHING",
        dossier_id,
        applicant.model_dump_json(),
        applicant.full_name,
        applicant.id_number,
        search_text(applicant.full_name, applicant.id_number),
    )


async def save_step_alert(conn: Connection, event_id: str, event: StepOverdue | StepDueSoon) -> None:
    """A step the desk found past due, or warned about in its last working day."""
    table = "overdue_steps" if isinstance(event, StepOverdue) else "due_soon_steps"
    detected_at = event.detected_at if isinstance(event, StepOverdue) else event.warned_at
    await conn.execute(
        f"INSERT INTO {table} (event_id, dossier_id, step_index, agency, action, budget_days, due_at,"
        " detected_at, appointment_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (event_id) DO NOTHING",
        event_id,
        event.dossier_id,
        event.step_index,
        event.agency,
        event.action,
        event.budget_days,
        event.due_at,
        detected_at,
        event.appointment_at,
    )


async def save_apology(conn: Connection, event_id: str, event: ApologyIssued | FaultApologyIssued) -> None:
    """An apology letter the agency at fault issued: for lateness, or for a fault (its kind)."""
    kind: str
    if isinstance(event, FaultApologyIssued):
        kind, authority, notice = event.fault, event.authority, None
        original = new = event.appointment_at
    else:
        kind, authority, notice = "late", None, event.working_days_notice
        original, new = event.original_appointment_at, event.new_appointment_at
    await conn.execute(
        "INSERT INTO apologies (event_id, letter_number, dossier_id, issued_by_agency, issuer_name,"
        " signatory_title, applicant, procedure_name, received_at, original_appointment_at,"
        " new_appointment_at, reason, issued_at, working_days_notice, kind, authority)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        " ON CONFLICT (event_id) DO NOTHING",
        event_id,
        event.letter_number,
        event.dossier_id,
        event.issued_by_agency,
        event.issuer_name,
        event.signatory_title,
        event.applicant.model_dump_json(),
        event.procedure_name,
        event.received_at,
        original,
        new,
        event.reason,
        event.issued_at,
        notice,
        kind,
        authority,
    )


async def save_escalation(conn: Connection, event_id: str, event: DossierEscalated) -> None:
    """A rescheduled dossier that slipped again."""
    await conn.execute(
        "INSERT INTO escalations (event_id, dossier_id, agency, step_index, action, reason, appointment_at,"
        " detected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
        event_id,
        event.dossier_id,
        event.agency,
        event.step_index,
        event.action,
        event.reason,
        event.appointment_at,
        event.detected_at,
    )


# --- spans -----------------------------------------------------------------------------------


async def save_spans(conn: Connection, spans: Sequence[Span]) -> None:
    """Keep received spans; a span already kept (an exporter's retry) is left as it is."""
    await conn.executemany(
        "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, service_name, scope_name,"
        " start_unix_nano, end_unix_nano, start_at, end_at, attributes, resource_attributes, status_code,"
        " status_message, links, events, dossier_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13::jsonb, $14, $15,"
        " $16::jsonb, $17::jsonb, $18) ON CONFLICT (trace_id, span_id) DO NOTHING",
        [
            (
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.name,
                s.kind,
                s.service_name,
                s.scope_name,
                s.start_unix_nano,
                s.end_unix_nano,
                s.start,
                s.end,
                json.dumps(s.attributes),
                json.dumps(s.resource_attributes),
                s.status_code,
                s.status_message,
                json.dumps(s.links),
                json.dumps(s.events),
                s.dossier_id,
            )
            for s in spans
        ],
    )


async def trace_of(conn: Connection, dossier_id: str) -> list[dict[str, Any]]:
    """Every span of every trace that has a span about ``dossier_id``, in start order."""
    rows = await conn.fetch(
        "SELECT trace_id, span_id, parent_span_id, name, kind, service_name, scope_name, start_unix_nano,"
        " end_unix_nano, start_at, end_at, attributes, status_code, status_message, links, dossier_id"
        " FROM spans WHERE trace_id IN (SELECT DISTINCT trace_id FROM spans WHERE dossier_id = $1)"
        " ORDER BY start_unix_nano, span_id LIMIT $2",
        dossier_id,
        MAX_TRACE_SPANS,
    )
    spans = []
    for row in rows:
        span = dict(row)
        for key in ("attributes", "links"):
            span[key] = json.loads(span[key])
        spans.append(span)
    return spans


# --- reads for the API and pages -------------------------------------------------------------

_LATE_SQL = (
    "(CASE WHEN returned_at IS NOT NULL THEN returned_at > first_promised_at"
    " ELSE overdue_open OR first_promised_at < {now} END)"
)
"""The rule of :func:`services.console.domain.dossiers.lateness`, for filtering in SQL."""

_DOSSIER_COLUMNS = (
    "d.id, d.procedure_code, d.procedure_name, d.level, a.full_name AS applicant_name,"
    " a.id_number AS applicant_id_number, d.status, d.received_at, d.appointment_at,"
    " d.original_appointment_at, d.first_promised_at, d.clock_paused_since, d.returned_at, d.on_time,"
    " d.overdue_open, d.current_agency, d.current_action, d.updated_at"
)
_DOSSIERS = "dossiers d LEFT JOIN applicants a ON a.dossier_id = d.id"
"""A dossier with who applied, once the receipt has come (it may come after the first snapshot)."""


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_dossiers(
    conn: Connection,
    *,
    now: datetime,
    folded_query: str = "",
    status: str | None = None,
    late: bool | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Newest first; ``folded_query`` (see ``fold``) matches the id, the name or the id number."""
    conditions = ["true"]
    args: list[Any] = []
    if folded_query:
        args.append(_like_pattern(folded_query))
        conditions.append(f"(d.search_text LIKE ${len(args)} OR a.search_text LIKE ${len(args)})")
    if status:
        args.append(status)
        conditions.append(f"d.status = ${len(args)}")
    if late is not None:
        args.append(now)
        is_late = _LATE_SQL.format(now=f"${len(args)}")
        conditions.append(is_late if late else f"NOT {is_late}")
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_DOSSIER_COLUMNS} FROM {_DOSSIERS} WHERE {' AND '.join(conditions)}"
        f" ORDER BY d.received_at DESC, d.id LIMIT ${len(args)}",
        *args,
    )
    return [dict(r) for r in rows]


async def statuses(conn: Connection) -> list[str]:
    """The statuses dossiers have now, for the filter."""
    return [r["status"] for r in await conn.fetch("SELECT DISTINCT status FROM dossiers ORDER BY status")]


async def dossier(conn: Connection, dossier_id: str) -> dict[str, Any] | None:
    """One dossier with its applicant and its slip; None if the console has not heard of it."""
    row = await conn.fetchrow(
        f"SELECT {_DOSSIER_COLUMNS}, a.applicant FROM {_DOSSIERS} WHERE d.id = $1", dossier_id
    )
    if row is None:
        return None
    found = dict(row)
    found["applicant"] = json.loads(found["applicant"]) if found["applicant"] is not None else None
    slip = await conn.fetch(
        "SELECT slip_row AS row, step_index, from_agency, to_agency, action, budget_days, sent_at, due_at,"
        " received_at, completed_at, outcome, late_by_days, overdue_at, note"
        " FROM slip_rows WHERE dossier_id = $1 ORDER BY slip_row",
        dossier_id,
    )
    found["slip"] = [dict(r) for r in slip]
    return found


async def overdue_steps(
    conn: Connection,
    *,
    dossier_id: str | None = None,
    open_only: bool = False,
    limit: int = 500,
    due_soon: bool = False,
) -> list[dict[str, Any]]:
    """Steps found overdue (or, ``due_soon``, warned in their last working day), newest first.

    Each with whether the step has been completed since.
    """
    table = "due_soon_steps" if due_soon else "overdue_steps"
    rows = await conn.fetch(
        "SELECT o.dossier_id, o.step_index, o.agency, o.action, o.budget_days, o.due_at, o.detected_at,"
        " o.appointment_at, a.full_name AS applicant_name, d.procedure_name, d.status, s.completed_at"
        f" FROM {table} o LEFT JOIN dossiers d ON d.id = o.dossier_id"
        " LEFT JOIN applicants a ON a.dossier_id = o.dossier_id"
        " LEFT JOIN LATERAL (SELECT completed_at FROM slip_rows r WHERE r.dossier_id = o.dossier_id"
        "   AND r.step_index = o.step_index ORDER BY r.slip_row DESC LIMIT 1) s ON true"
        " WHERE ($1::text IS NULL OR o.dossier_id = $1) AND (NOT $2 OR s.completed_at IS NULL)"
        " ORDER BY o.detected_at DESC, o.dossier_id LIMIT $3",
        dossier_id,
        open_only,
        limit,
    )
    return [dict(r) for r in rows]


async def save_rating(conn: Connection, event: DossierRated) -> None:
    """A citizen's rating (the first one kept: a dossier is rated once)."""
    scores = event.scores
    await conn.execute(
        "INSERT INTO ratings (dossier_id, procedure_code, agencies, access, procedure, officials, result,"
        " feedback, rated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (dossier_id) DO NOTHING",
        event.dossier_id,
        event.procedure_code,
        event.agencies,
        scores.access,
        scores.procedure,
        scores.officials,
        scores.result,
        scores.feedback,
        event.rated_at,
    )


async def satisfaction(conn: Connection, *, by: str) -> list[dict[str, Any]]:
    """Ratings by agency (each agency a dossier passed) or by procedure.

    Per group: how many, the mean of each element and of all five, and the share of ratings
    whose mean is 4 or more (satisfied).
    """
    group = "unnest(agencies)" if by == "agency" else "procedure_code"
    means = ", ".join(f"round(avg({e}), 2) AS {e}" for e in SCORE_ELEMENTS)
    overall = " + ".join(SCORE_ELEMENTS)
    rows = await conn.fetch(
        f"SELECT {group} AS key, count(*) AS ratings, {means},"
        f" round(avg(({overall}) / 5.0), 2) AS overall,"
        f" round(100.0 * avg((({overall}) / 5.0 >= 4)::int), 1) AS satisfied_percent"
        " FROM ratings GROUP BY 1 ORDER BY 1"
    )
    return [dict(r) for r in rows]


async def apologies(
    conn: Connection,
    *,
    dossier_id: str | None = None,
    agency: str | None = None,
    kind: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Apology letters issued (``kind`` 'late' or a fault's kind), newest first."""
    rows = await conn.fetch(
        "SELECT letter_number, kind, dossier_id, issued_by_agency, issuer_name, signatory_title, applicant,"
        " procedure_name, received_at, original_appointment_at, new_appointment_at, reason, authority,"
        " issued_at, working_days_notice FROM apologies"
        " WHERE ($1::text IS NULL OR dossier_id = $1) AND ($2::text IS NULL OR issued_by_agency = $2)"
        " AND ($4::text IS NULL OR kind = $4)"
        " ORDER BY issued_at DESC, letter_number LIMIT $3",
        dossier_id,
        agency,
        limit,
        kind,
    )
    letters = []
    for row in rows:
        letter = dict(row)
        letter["applicant"] = json.loads(letter["applicant"])
        letters.append(letter)
    return letters


async def escalations(
    conn: Connection, *, dossier_id: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """Rescheduled dossiers that slipped again, newest first."""
    rows = await conn.fetch(
        "SELECT e.dossier_id, e.agency, e.step_index, e.action, e.reason, e.appointment_at, e.detected_at,"
        " a.full_name AS applicant_name, d.procedure_name, d.status"
        " FROM escalations e LEFT JOIN dossiers d ON d.id = e.dossier_id"
        " LEFT JOIN applicants a ON a.dossier_id = e.dossier_id"
        " WHERE ($1::text IS NULL OR e.dossier_id = $1) ORDER BY e.detected_at DESC LIMIT $2",
        dossier_id,
        limit,
    )
    return [dict(r) for r in rows]


async def settled_dossiers(conn: Connection, period: Period) -> list[SettledDossier]:
    """Dossiers returned within ``period``, for the on-time rates."""
    rows = await conn.fetch(
        "SELECT procedure_code, procedure_name, level, returned_at, first_promised_at FROM dossiers"
        " WHERE returned_at IS NOT NULL AND ($1::timestamptz IS NULL OR returned_at >= $1)"
        " AND ($2::timestamptz IS NULL OR returned_at < $2)",
        period.start,
        period.end,
    )
    return [SettledDossier(**dict(r)) for r in rows]


async def completed_steps(conn: Connection, period: Period) -> list[CompletedStep]:
    """Timed steps completed within ``period``, for the agencies' on-time rates."""
    rows = await conn.fetch(
        "SELECT to_agency AS agency, completed_at, due_at FROM slip_rows"
        " WHERE completed_at IS NOT NULL AND due_at IS NOT NULL"
        " AND ($1::timestamptz IS NULL OR completed_at >= $1)"
        " AND ($2::timestamptz IS NULL OR completed_at < $2)",
        period.start,
        period.end,
    )
    return [CompletedStep(**dict(r)) for r in rows]
