"""The notification service's tables, in the ``notification`` schema."""

from __future__ import annotations

from datetime import datetime

from services.notification.domain.notices import Notice
from services.runtime.database import Connection, Migration

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
)


async def record_notice(
    conn: Connection, notice: Notice, *, source_event_id: str, created_at: datetime
) -> None:
    """Keep the rendered notice (delivery channels read from here)."""
    await conn.execute(
        "INSERT INTO notices (source_event_id, dossier_id, kind, recipient_name, recipient_email,"
        " recipient_phone, subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        source_event_id,
        notice.dossier_id,
        notice.kind,
        notice.recipient.full_name,
        notice.recipient.email,
        notice.recipient.phone,
        notice.subject,
        notice.body,
        created_at,
    )
