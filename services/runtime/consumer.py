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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord

from contracts import topics
from contracts.agencies import source_uri
from contracts.envelope import CloudEvent, EnvelopeError
from contracts.events import DossierEvent
from contracts.upcasting import upcast
from services.runtime.clock import Clock
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
    ) -> None:
        # Pool and dead letters are looked up per call: they exist only once the service started.
        self._pool = pool
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
        try:
            event = CloudEvent.from_record(key=record.key, value=record.value, headers=record.headers)
            owner = topics.owner(record.topic)
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
        if not isinstance(event.data, accepts):
            # A valid event meant for another reader of the same topic: not ours, not an error.
            self.ignored_total += 1
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
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as exc:
                log.exception("%s: handler failed on %s", consumer, event.id)
                await self._park(record, consumer, "handler-error", f"{type(exc).__name__}: {exc}")
                return

    async def _transact(self, event: CloudEvent, consumer: str, handler: Handler) -> None:
        now = self._clock.now()
        async with unit_of_work(
            self._pool(), now=now, source=self._source, outbox_channel=self._channel
        ) as uow:
            if not await uow.claim(consumer, event):
                self.duplicates_total += 1
                return
            await handler(uow, event)
        self.processed_total += 1

    async def _park(self, record: ConsumerRecord, consumer: str, reason: str, detail: str) -> None:
        self.dead_lettered_total += 1
        await self._dead_letters().park(record, consumer=consumer, reason=reason, detail=detail)
