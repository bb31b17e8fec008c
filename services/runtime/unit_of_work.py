"""One transaction per consumed event or request: state, inbox row and outbox rows together.

This is what makes a crash harmless: either the state change, the record that the incoming
event was handled and the outgoing events are all committed, or none of them is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Protocol

import asyncpg
from opentelemetry import propagate

from contracts.envelope import CloudEvent
from contracts.events import DossierEvent
from contracts.signing import SigningKey
from services.runtime.database import Connection


class Work(Protocol):
    """What a use case needs of its unit of work: the time it happens at, and a way to publish.

    :class:`UnitOfWork` is the real one (a Postgres transaction with its outbox); a use case
    typed against this port runs in a unit test with a fake, without Postgres or Kafka.
    """

    now: datetime

    async def publish(self, data: DossierEvent, *, topic: str) -> CloudEvent:
        """Publish ``data`` on ``topic`` when the work commits."""
        ...


class UnitOfWork:
    """An open transaction on the service's schema, with the inbox and the outbox at hand."""

    def __init__(
        self, conn: Connection, *, now: datetime, source: str, signer: SigningKey | None = None
    ) -> None:
        self.conn = conn
        self.now = now
        """The time of this unit of work, read once from the service's clock."""
        self.source = source
        self._signer = signer
        self.published: list[CloudEvent] = []
        """Events published in this unit of work and not yet written to the outbox."""
        self._topics: list[str] = []

    async def claim(self, consumer: str, event: CloudEvent) -> bool:
        """Record that ``consumer`` handles ``event``; False if it already did (a redelivery)."""
        inserted = await self.conn.fetchval(
            "INSERT INTO inbox (consumer, event_id, event_type) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            consumer,
            event.id,
            event.type,
        )
        return bool(inserted)

    async def claim_all(self, consumer: str, events: Sequence[CloudEvent]) -> set[str]:
        """Record that ``consumer`` handles ``events``; the ids it had not handled before.

        One statement for a whole batch; an id twice in ``events`` is claimed once.
        """
        rows = await self.conn.fetch(
            "INSERT INTO inbox (consumer, event_id, event_type)"
            " SELECT $1, id, type FROM unnest($2::text[], $3::text[]) AS e(id, type)"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            consumer,
            [event.id for event in events],
            [event.type for event in events],
        )
        return {row["event_id"] for row in rows}

    async def publish(self, data: DossierEvent, *, topic: str) -> CloudEvent:
        """Add an event to the outbox; it leaves only if this transaction commits.

        The row is written with the unit of work's others when it ends (:meth:`write_outbox`).
        """
        carrier: dict[str, str] = {}
        # The trace context of *this* work travels with the event, so the relay (which runs
        # later, in another task) does not break the dossier's trace.
        propagate.inject(carrier)
        event = CloudEvent.wrap(data, source=self.source, time=self.now, extra_headers=carrier)
        self.published.append(event)
        self._topics.append(topic)
        return event

    async def write_outbox(self, channel: str) -> None:
        """Write the events published so far to the outbox, in order, and wake the relay.

        One statement however many events (each round trip to Postgres costs more here than the
        work it carries); NOTIFY is delivered only on commit, so the relay wakes exactly when
        there is work.
        """
        if not self.published:
            return
        if self._signer is None:
            raise UnsignedPublication(f"{self.source} has no signing key: it cannot publish")
        # Signed here, at the write, so the outbox holds exactly the bytes consumers verify.
        headers = [self._signer.sign(event.headers(), event.value()) for event in self.published]
        await self.conn.execute(
            "WITH written AS ("
            " INSERT INTO outbox (event_id, event_type, topic, key, value, headers)"
            " SELECT id, type, topic, key, value, headers::jsonb"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::text[])"
            " WITH ORDINALITY AS e(id, type, topic, key, value, headers, n) ORDER BY n"
            " RETURNING 1)"
            " SELECT pg_notify($7, '') WHERE EXISTS (SELECT FROM written)",
            [event.id for event in self.published],
            [event.type for event in self.published],
            self._topics,
            [event.key for event in self.published],
            [event.value() for event in self.published],
            [json.dumps([[name, raw.decode()] for name, raw in signed]) for signed in headers],
            channel,
        )
        self.published.clear()
        self._topics.clear()


class UnsignedPublication(RuntimeError):
    """A unit of work published events but its service has no signing key."""


@asynccontextmanager
async def unit_of_work(
    pool: asyncpg.Pool, *, now: datetime, source: str, outbox_channel: str, signer: SigningKey | None = None
) -> AsyncIterator[UnitOfWork]:
    """Open a transaction; commit on normal exit, roll back on any exception.

    Events published in it are signed with ``signer`` (the service's key) as they are written to
    the outbox; without one, publishing fails and the transaction rolls back.
    """
    async with pool.acquire() as conn, conn.transaction():
        uow = UnitOfWork(conn, now=now, source=source, signer=signer)
        yield uow
        await uow.write_outbox(outbox_channel)
