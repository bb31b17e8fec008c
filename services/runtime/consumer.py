"""How every service handles a Kafka record: decode, deduplicate, transact, or dead-letter.

The rules, the same in every service:
- a valid event of a type this consumer does not handle is skipped (topics are shared by
  several readers, each taking the types it needs);
- a record that is not a valid event of ours goes to ``<service>.dlq`` with the
  reason, and is acknowledged: a poison record must not stop the partition;
- an event already in the inbox is acknowledged and skipped (redelivery after a crash);
- a failure of Postgres or Kafka is retried with backoff and the offset is *not* committed,
  so nothing is lost while the database is away;
- a bug in a handler also dead-letters the record (with the exception) rather than looping.

The record is processed inside FastStream's ``<topic> process`` span, the child of the
producer's span (W3C ``traceparent`` in the record's headers); this module puts the dossier's
attributes on it and measures the handoff latency once the transaction has committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from contracts import topics
from contracts.agencies import source_uri
from contracts.envelope import CloudEvent, EnvelopeError
from contracts.events import DossierEvent
from contracts.upcasting import upcast
from services.runtime import telemetry
from services.runtime.clock import Clock
from services.runtime.telemetry import Telemetry
from services.runtime.unit_of_work import UnitOfWork, unit_of_work

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, CloudEvent], Awaitable[None]]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.CannotConnectNowError,
)
"""Errors that go away by themselves: retry, do not dead-letter."""

MAX_BACKOFF_SECONDS = 5.0


class EventRejected(Exception):
    """A well-formed event the domain cannot apply (e.g. a step for an unknown dossier)."""


class DeadLetters:
    """Parks records a service cannot process on ``<service>.dlq``, original bytes intact."""

    def __init__(self, *, producer: AIOKafkaProducer, topic: str, clock: Clock) -> None:
        self._producer = producer
        self.topic = topic
        self._clock = clock

    async def park(self, record: ConsumerRecord, *, consumer: str, reason: str, detail: str) -> None:
        """Publish the record with the reason and where it came from; wait for Kafka's ack."""
        headers = list(record.headers or ())
        headers += [
            ("dlq_reason", reason.encode()),
            ("dlq_detail", detail[:2000].encode()),
            ("dlq_consumer", consumer.encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_at", self._clock.now().astimezone(UTC).isoformat().encode()),
        ]
        await self._producer.send_and_wait(self.topic, key=record.key, value=record.value, headers=headers)
        log.warning(
            "dead-lettered %s[%s]@%s for %s: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            consumer,
            reason,
            detail,
        )


class RecordProcessor:
    """Runs a handler for one record inside a unit of work, with the rules above."""

    def __init__(
        self,
        *,
        pool: Callable[[], asyncpg.Pool],
        clock: Clock,
        source: str,
        outbox_channel: str,
        dead_letters: Callable[[], DeadLetters],
        telemetry: Telemetry | None = None,
        agency: str = "",
        topic_prefix: str = "",
    ) -> None:
        # Pool and dead letters are looked up per call: they exist only once the service started.
        self._pool = pool
        self._telemetry = telemetry or Telemetry.from_env(agency or "records", {})
        self._agency = agency
        self._topic_prefix = topic_prefix
        self._clock = clock
        self._source = source
        self._channel = outbox_channel
        self._dead_letters = dead_letters
        self.processed_total = 0
        self.duplicates_total = 0
        self.dead_lettered_total = 0
        self.ignored_total = 0

    async def process(
        self,
        record: ConsumerRecord,
        *,
        consumer: str,
        accepts: tuple[type[DossierEvent], ...],
        handler: Handler,
    ) -> None:
        """Handle ``record`` exactly once in effect; returns when it is safe to commit."""
        span = trace.get_current_span()  # FastStream's "<topic> process" span
        span.set_attributes({telemetry.AGENCY: self._agency, telemetry.CONSUMER: consumer})
        try:
            event = CloudEvent.from_record(key=record.key, value=record.value, headers=record.headers)
            owner = topics.owner(record.topic.removeprefix(self._topic_prefix))
            # Only the topic's owner may write it (Kafka ACLs enforce it too where configured);
            # an event claiming another source is refused rather than trusted.
            if owner is not None and event.source != source_uri(owner):
                raise EnvelopeError(
                    "forged-source", f"{record.topic} is written by {source_uri(owner)}, not {event.source}"
                )
        except EnvelopeError as exc:
            await self._park(record, consumer, exc.reason, exc.detail)
            return
        # Handlers see only the newest version of each event.
        event = dataclasses.replace(event, data=upcast(event.data))
        span.set_attributes(
            {
                telemetry.EVENT_TYPE: event.type,
                telemetry.EVENT_ID: event.id,
                **telemetry.event_attributes(dict(event.data)),
            }
        )
        if not isinstance(event.data, accepts):
            # A valid event meant for another reader of the same topic: not ours, not an error.
            self.ignored_total += 1
            self._count(consumer, "ignored")
            return
        backoff = 0.1
        while True:
            try:
                await self._transact(event, consumer, handler)
                return
            except EventRejected as exc:
                await self._park(record, consumer, "rejected", str(exc))
                return
            except TRANSIENT_ERRORS as exc:
                log.warning(
                    "%s: transient failure on %s (%r); retrying in %.1fs", consumer, event.id, exc, backoff
                )
                span.add_event("transient failure, retrying", {"exception.type": type(exc).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as exc:
                log.exception("%s: handler failed on %s", consumer, event.id)
                span.record_exception(exc)
                await self._park(record, consumer, "handler-error", f"{type(exc).__name__}: {exc}")
                return

    async def _transact(self, event: CloudEvent, consumer: str, handler: Handler) -> None:
        now = self._clock.now()
        async with unit_of_work(
            self._pool(), now=now, source=self._source, outbox_channel=self._channel
        ) as uow:
            if not await uow.claim(consumer, event):
                self.duplicates_total += 1
                self._count(consumer, "duplicate")
                return
            await handler(uow, event)
        self.processed_total += 1
        self._count(consumer, "processed")
        # ce_time is the time of the producer's unit of work (its clock); ours has now committed.
        latency = (self._clock.now() - event.time).total_seconds()
        self._telemetry.handoff_latency.labels(consumer, event.type).observe(max(latency, 0.0))

    async def _park(self, record: ConsumerRecord, consumer: str, reason: str, detail: str) -> None:
        self.dead_lettered_total += 1
        self._count(consumer, "dead_lettered")
        span = trace.get_current_span()
        span.set_attribute(telemetry.DEAD_LETTER_REASON, reason)
        span.set_status(Status(StatusCode.ERROR, f"dead-lettered: {reason}"))
        await self._dead_letters().park(record, consumer=consumer, reason=reason, detail=detail)

    def _count(self, consumer: str, handling: str) -> None:
        trace.get_current_span().set_attribute(telemetry.HANDLING, handling)
        self._telemetry.records.labels(consumer, handling).inc()
