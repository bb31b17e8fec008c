"""Publishes committed outbox rows to Kafka, in order, and marks them sent.

At-least-once by construction: a crash after Kafka acknowledged a row but before it was
marked leaves the row to be sent again, and every consumer's inbox drops the duplicate.

Each row is sent in a PRODUCER span whose parent is the trace context stored in the row (the
work that wrote it), not the relay's own task, and the record carries that span's context: the
dossier's trace goes on through the relay into the next service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from services.runtime import telemetry
from services.runtime.database import Connection, holds_session_state
from services.runtime.loops import keep_running

log = logging.getLogger(__name__)

BATCH_SIZE = 500
IDLE_POLL_SECONDS = 1.0
"""Fallback poll when no NOTIFY arrives (e.g. the listening connection was lost)."""


class OutboxRelay:
    """The one task per service that moves outbox rows to Kafka.

    Only one relay per schema runs at a time (a Postgres advisory lock), because two relays
    could interleave one dossier's events and break their order.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        channel: str,
        topic_prefix: str = "",
        agency: str = "",
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._channel = channel
        self._topic_prefix = topic_prefix
        self._agency = agency
        self._tracer = tracer or trace.get_tracer(__name__)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published_total = 0

    async def start(self) -> None:
        """Start relaying in the background."""
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        """Stop relaying; rows not yet sent stay in the outbox for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def running(self) -> bool:
        """True while the relay task is alive (part of the service's health)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        # Postgres or Kafka went away: wait and take the lead again, nothing is lost.
        await keep_running(f"outbox relay for {self._schema}", self._lead)

    async def _lead(self) -> None:
        async with self._pool.acquire() as conn:
            holds_session_state(conn)
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"outbox:{self._schema}")
            await conn.add_listener(self._channel, self._on_notify)
            try:
                while True:
                    sent = await self.relay_once(conn)
                    if sent < BATCH_SIZE:
                        self._wakeup.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), IDLE_POLL_SECONDS)
            finally:
                await conn.remove_listener(self._channel, self._on_notify)
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"outbox:{self._schema}")

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def relay_once(self, conn: Connection) -> int:
        """Send one batch of unpublished rows; return how many were sent."""
        rows = await conn.fetch(
            "SELECT position, topic, key, value, headers FROM outbox"
            " WHERE published_at IS NULL ORDER BY position LIMIT $1",
            BATCH_SIZE,
        )
        if not rows:
            return 0
        spans = [self._publish_span(row) for row in rows]
        try:
            # Queue every send before awaiting any: the producer batches them per partition, and
            # with idempotence on, each partition keeps the order in which they were queued.
            deliveries = [
                await self._producer.send(
                    self._topic_prefix + row["topic"],
                    key=row["key"],
                    value=row["value"],
                    headers=_headers(row, span),
                )
                for row, span in zip(rows, spans, strict=True)
            ]
            await asyncio.gather(*deliveries)
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            for span in spans:
                span.end()
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE position = ANY($1::bigint[])",
            [row["position"] for row in rows],
        )
        self.published_total += len(rows)
        return len(rows)

    def _publish_span(self, row: asyncpg.Record) -> Span:
        stored = dict(json.loads(row["headers"]))
        topic = self._topic_prefix + row["topic"]
        return self._tracer.start_span(
            f"{topic} publish",
            context=propagate.extract(stored),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.operation.type": "send",
                "messaging.message.id": stored.get("ce_id", ""),
                telemetry.AGENCY: self._agency,
                telemetry.EVENT_TYPE: stored.get("ce_type", ""),
                telemetry.EVENT_ID: stored.get("ce_id", ""),
                **telemetry.event_attributes(json.loads(row["value"])),
            },
        )


def _headers(row: asyncpg.Record, span: Span) -> list[tuple[str, bytes]]:
    """The row's stored headers, with the trace context replaced by the publish span's."""
    headers: dict[str, str] = dict(json.loads(row["headers"]))
    # Injecting an invalid span (tracing off) writes nothing: the stored context goes as it was.
    propagate.inject(headers, context=trace.set_span_in_context(span))
    return [(name, text.encode()) for name, text in headers.items()]
