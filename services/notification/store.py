"""The notification service's tables, in the ``notification`` schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.notification.domain.notices import Notice
from services.runtime.database import Connection, Migration

DELIVERY_WAKEUP = "notification_deliveries"
"""NOTIFY channel: a delivery became due (sent on commit of the notice that created it)."""

MIGRATIONS = (
    Migration(
        "notification-001-notices",
        """
        -- One notice per source event: the unique key makes "exactly once per dossier and
        -- event" a property of the table, not only of the inbox.
        CREATE TABLE notices (
            id              bigserial PRIMARY KEY,
            source_event_id text NOT NULL UNIQUE,
            dossier_id      text NOT NULL,
            kind            text NOT NULL,
            recipient_name  text NOT NULL,
            recipient_email text NOT NULL,
            recipient_phone text NOT NULL,
            subject         text NOT NULL,
            body            text NOT NULL,
            created_at      timestamptz NOT NULL
        );
        CREATE INDEX notices_dossier ON notices (dossier_id);
        """,
    ),
    Migration(
        "notification-002-deliveries",
        """
        -- What was sent is what is kept: the short SMS text and the PDF of a letter.
        ALTER TABLE notices
            ADD COLUMN sms_text                 text NOT NULL DEFAULT '',
            ADD COLUMN attachment_name          text,
            ADD COLUMN attachment_content_type  text,
            ADD COLUMN attachment               bytea;
        -- One delivery per notice and channel, inserted in the notice's transaction; the
        -- delivery worker claims due rows (FOR UPDATE SKIP LOCKED), sends, and records the
        -- outcome. Notices recorded before this migration have no deliveries (not re-sent).
        CREATE TABLE deliveries (
            id              bigserial PRIMARY KEY,
            notice_id       bigint NOT NULL REFERENCES notices (id),
            channel         text NOT NULL,
            address         text NOT NULL,
            status          text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'sent', 'failed')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL,
            sent_at         timestamptz,
            provider_id     text,
            last_error      text,
            created_at      timestamptz NOT NULL,
            UNIQUE (notice_id, channel)
        );
        CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
        -- Every attempt and its outcome, for operators and audits.
        CREATE TABLE delivery_attempts (
            delivery_id bigint NOT NULL REFERENCES deliveries (id),
            attempt     integer NOT NULL,
            started_at  timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            outcome     text NOT NULL CHECK (outcome IN ('sent', 'error', 'rejected')),
            detail      text NOT NULL,
            PRIMARY KEY (delivery_id, attempt)
        );
        """,
    ),
    Migration(
        "notification-003-withdrawals",
        """
        -- A withdrawn dossier's notices still queued are voided (never sent), also those that
        -- arrive after the withdrawal (a tax notice on its own topic may come later).
        ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
        ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
            CHECK (status IN ('pending', 'sent', 'failed', 'voided'));
        CREATE TABLE withdrawn_dossiers (
            dossier_id   text PRIMARY KEY,
            withdrawn_at timestamptz NOT NULL
        );
        """,
    ),
)

WITHDRAWAL_RECEIPT = "withdrawal"
"""The notice kind that is sent although its dossier is withdrawn: it says so."""


async def record_withdrawal(conn: Connection, dossier_id: str, *, at: datetime) -> None:
    """Remember that the dossier was withdrawn (its later notices will be voided)."""
    await conn.execute(
        "INSERT INTO withdrawn_dossiers (dossier_id, withdrawn_at) VALUES ($1, $2)"
        " ON CONFLICT (dossier_id) DO NOTHING",
        dossier_id,
        at,
    )


async def void_if_withdrawn(conn: Connection, dossier_id: str) -> int:
    """Void the dossier's pending deliveries if it was withdrawn (the receipt aside); how many."""
    voided: str = await conn.execute(
        "UPDATE deliveries SET status = 'voided', last_error = 'dossier withdrawn'"
        " WHERE status = 'pending'"
        " AND notice_id IN (SELECT id FROM notices WHERE dossier_id = $1 AND kind <> $2)"
        " AND EXISTS (SELECT 1 FROM withdrawn_dossiers WHERE dossier_id = $1)",
        dossier_id,
        WITHDRAWAL_RECEIPT,
    )
    return int(voided.split()[-1])


async def record_notice(
    conn: Connection, notice: Notice, *, source_event_id: str, created_at: datetime
) -> int | None:
    """Keep the rendered notice (delivery channels read from here); None if already kept."""
    attachment = notice.attachment
    notice_id: int | None = await conn.fetchval(
        "INSERT INTO notices (source_event_id, dossier_id, kind, recipient_name, recipient_email,"
        " recipient_phone, subject, body, created_at, sms_text, attachment_name,"
        " attachment_content_type, attachment)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        " ON CONFLICT (source_event_id) DO NOTHING RETURNING id",
        source_event_id,
        notice.dossier_id,
        notice.kind,
        notice.recipient.full_name,
        notice.recipient.email,
        notice.recipient.phone,
        notice.subject,
        notice.body,
        created_at,
        notice.sms,
        attachment.filename if attachment else None,
        attachment.content_type if attachment else None,
        attachment.data if attachment else None,
    )
    return notice_id


async def schedule_deliveries(
    conn: Connection, notice_id: int, addresses: dict[str, str], *, now: datetime
) -> None:
    """One delivery per channel (``{"email": "an@example.vn", …}``), due now; wakes the worker."""
    await conn.executemany(
        "INSERT INTO deliveries (notice_id, channel, address, next_attempt_at, created_at)"
        " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (notice_id, channel) DO NOTHING",
        [(notice_id, channel, address, now) for channel, address in addresses.items()],
    )
    # Delivered to listeners only when the transaction commits.
    await conn.execute(f"NOTIFY {DELIVERY_WAKEUP}")


async def list_notices(conn: Connection, dossier_id: str) -> list[dict[str, Any]]:
    """A dossier's notices, oldest first, each with its deliveries (no attachment bytes)."""
    notices = await conn.fetch(
        "SELECT id, source_event_id, dossier_id, kind, recipient_name, recipient_email,"
        " recipient_phone, subject, body, sms_text, attachment_name, created_at"
        " FROM notices WHERE dossier_id = $1 ORDER BY created_at, id",
        dossier_id,
    )
    deliveries = await conn.fetch(
        "SELECT id, notice_id, channel, address, status, attempts, next_attempt_at, sent_at,"
        " provider_id, last_error FROM deliveries WHERE notice_id = ANY($1::bigint[])"
        " ORDER BY notice_id, channel",
        [n["id"] for n in notices],
    )
    by_notice: dict[int, list[dict[str, Any]]] = {}
    for d in deliveries:
        by_notice.setdefault(d["notice_id"], []).append(
            {key: d[key] for key in d.keys() if key != "notice_id"}  # noqa: SIM118 (asyncpg Record)
        )
    return [dict(n) | {"deliveries": by_notice.get(n["id"], [])} for n in notices]


async def attachment_of(conn: Connection, notice_id: int) -> tuple[str, str, bytes] | None:
    """A notice's attachment: file name, content type, bytes; None if it has none."""
    row = await conn.fetchrow(
        "SELECT attachment_name, attachment_content_type, attachment FROM notices"
        " WHERE id = $1 AND attachment IS NOT NULL",
        notice_id,
    )
    if row is None:
        return None
    return row["attachment_name"], row["attachment_content_type"], row["attachment"]
