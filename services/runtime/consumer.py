"""How every service handles a Kafka record: decode, deduplicate, transact, or dead-letter.

The rules, the same in every service:
- the signature is checked before anything else: a record not signed by a key of the agency its
  ``ce_source`` names (``contracts/signing.py``) goes to ``<service>.dlq`` with reason
  ``unsigned`` or ``bad-signature`` and changes nothing;
- a valid event of a type this consumer does not handle is skipped (topics are shared by
  several readers, each taking the types it needs);
- a record that is not a valid event of ours goes to ``<service>.dlq`` with the
  reason, and is acknowledged: a poison record must not stop the partition;
- an event already in the inbox is acknowledged and skipped (redelivery after a crash);
- a failure of Postgres or Kafka is retried with backoff and the offset is *not* committed,
  so nothing is lost while the database is away;
- a bug in a handler also dead-letters the record (with the exception) rather than looping.

Records come in batches (one ``getmany``), handled in one transaction per batch. Each record
still gets its own ``<topic> process`` span, the child of the producer's span (W3C
``traceparent`` in the record's headers), so a dossier's trace reads the same as when records
came one by one; the events a handler publishes carry that span's context. This module puts the
dossier's attributes on it and measures the handoff latency once the transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from contracts import topics
from contracts.agencies import source_uri
from contracts.envelope import CloudEvent, EnvelopeError
from contracts.events import DossierEvent
from contracts.signing import KeyRegistry, SignatureRefused, SigningKey
from contracts.upcasting import upcast
from services.runtime import telemetry
from services.runtime.clock import Clock, work_time
from services.runtime.telemetry import Telemetry
from services.runtime.unit_of_work import UnitOfWork, unit_of_work

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, CloudEvent], Awaitable[None]]

Prepare = Callable[[Sequence[CloudEvent]], AbstractAsyncContextManager[None]]
"""Entered with a batch's events before its transaction, left after it (see ``subscribe``)."""

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


@dataclass
class _Incoming:
    """A record that passed the envelope checks, with its event and its ``process`` span."""

    record: ConsumerRecord
    event: CloudEvent
    span: Span


class _Unbatchable(Exception):
    """A handler refused or failed inside a shared transaction: redo the batch record by record."""


class RecordProcessor:
    """Runs a handler for a batch of records inside one unit of work, with the rules above.

    One transaction per batch, not per record: the inbox rows, the state changes and the outbox
    rows of every record in the batch commit together, and the offsets are committed once,
    after that. A record the handler rejects (or fails on) rolls the shared transaction back;
    the batch is then redone one record per transaction, so only that record is dead-lettered.
    """

    def __init__(
        self,
        *,
        pool: Callable[[], asyncpg.Pool],
        clock: Clock,
        source: str,
        outbox_channel: str,
        dead_letters: Callable[[], DeadLetters],
        keys: KeyRegistry,
        signer: Callable[[], SigningKey | None] = lambda: None,
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
        self._keys = keys
        self._signer = signer
        self.processed_total = 0
        self.duplicates_total = 0
        self.dead_lettered_total = 0
        self.ignored_total = 0
        self.transactions_total = 0

    async def process(
        self,
        record: ConsumerRecord,
        *,
        consumer: str,
        accepts: tuple[type[DossierEvent], ...],
        handler: Handler,
    ) -> None:
        """Handle one record exactly once in effect; returns when it is safe to commit."""
        await self.process_batch((record,), consumer=consumer, accepts=accepts, handler=handler)

    async def process_batch(
        self,
        records: Sequence[ConsumerRecord],
        *,
        consumer: str,
        accepts: tuple[type[DossierEvent], ...],
        handler: Handler,
        prepare: Prepare | None = None,
    ) -> None:
        """Handle ``records`` (in order) exactly once in effect; returns when it is safe to commit."""
        incoming: list[_Incoming] = []
        for record in records:
            span = self._process_span(record, consumer)
            with trace.use_span(span, end_on_exit=False):
                event = await self._admit(record, consumer, accepts)
            if event is None:
                span.end()
            else:
                incoming.append(_Incoming(record, event, span))
        if not incoming:
            return
        try:
            async with prepare([one.event for one in incoming]) if prepare else contextlib.nullcontext():
                if len(incoming) == 1:
                    await self._transact_alone(incoming[0], consumer, handler)
                    return
                try:
                    await self._transact(incoming, consumer, handler)
                except _Unbatchable:
                    for one in incoming:
                        await self._transact_alone(one, consumer, handler)
        finally:
            for one in incoming:
                one.span.end()

    def _process_span(self, record: ConsumerRecord, consumer: str) -> Span:
        """The record's ``<topic> process`` span, a child of the span that published it."""
        headers = {name: raw.decode(errors="replace") for name, raw in record.headers or ()}
        return self._telemetry.tracer.start_span(
            f"{record.topic} process",
            context=propagate.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self._topic_prefix + consumer,
                "messaging.message.id": headers.get("ce_id", ""),
                telemetry.AGENCY: self._agency,
                telemetry.CONSUMER: consumer,
            },
        )

    async def _admit(
        self, record: ConsumerRecord, consumer: str, accepts: tuple[type[DossierEvent], ...]
    ) -> CloudEvent | None:
        """The record's event, upcast; None when it was dead-lettered or is not for us."""
        span = trace.get_current_span()
        try:
            self._verify(record)
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
            return None
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
            return None
        return event

    def _verify(self, record: ConsumerRecord) -> None:
        """Refuse a record its source did not sign, before reading anything in it."""
        try:
            attributes = {name: raw.decode() for name, raw in record.headers or ()}
        except UnicodeDecodeError as exc:
            raise EnvelopeError("bad-headers", f"a header is not UTF-8: {exc}") from exc
        try:
            self._keys.verify(attributes, record.value or b"")
        except SignatureRefused as exc:
            raise EnvelopeError(exc.reason, exc.detail) from exc

    async def _transact_alone(self, one: _Incoming, consumer: str, handler: Handler) -> None:
        """One record in its own transaction; what the handler refuses is dead-lettered."""
        with trace.use_span(one.span, end_on_exit=False):
            try:
                await self._transact([one], consumer, handler)
            except _Unbatchable as failed:
                cause = failed.__cause__
                if isinstance(cause, EventRejected):
                    await self._park(one.record, consumer, "rejected", str(cause))
                else:
                    log.error("%s: handler failed on %s", consumer, one.event.id, exc_info=cause)
                    one.span.record_exception(cause or failed)
                    await self._park(
                        one.record, consumer, "handler-error", f"{type(cause).__name__}: {cause}"
                    )

    async def _transact(self, incoming: list[_Incoming], consumer: str, handler: Handler) -> None:
        """Claim and handle every record in one transaction, retrying while Postgres is away.

        Raises :class:`_Unbatchable` (from the cause) when a handler refuses or fails, or
        Postgres refuses a statement; the transaction is then rolled back.
        """
        backoff = 0.1
        while True:
            try:
                fresh = await self._commit(incoming, consumer, handler)
                break
            except TRANSIENT_ERRORS as exc:
                log.warning(
                    "%s: transient failure on a batch of %d (%r); retrying in %.1fs",
                    consumer,
                    len(incoming),
                    exc,
                    backoff,
                )
                for one in incoming:
                    one.span.add_event("transient failure, retrying", {"exception.type": type(exc).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self.transactions_total += 1
        now = self._clock.now()
        for one in incoming:
            with trace.use_span(one.span, end_on_exit=False):
                if one.event.id not in fresh:
                    self.duplicates_total += 1
                    self._count(consumer, "duplicate")
                    continue
                fresh.discard(one.event.id)  # the same event twice in one batch: the 2nd is a duplicate
                self.processed_total += 1
                self._count(consumer, "processed")
                # ce_time is the time of the producer's unit of work (its clock); ours has committed.
                latency = (now - one.event.time).total_seconds()
                self._telemetry.handoff_latency.labels(consumer, one.event.type).observe(max(latency, 0.0))

    async def _commit(self, incoming: list[_Incoming], consumer: str, handler: Handler) -> set[str]:
        """One unit of work for the batch; returns the ids it handled (not already in the inbox).

        Anything but a transient error (a refusal, a bug in the handler, a statement Postgres
        refuses) rolls it back and comes out as :class:`_Unbatchable`, so the record behind it
        is dead-lettered rather than retried for ever.
        """
        now = self._clock.now()
        try:
            async with unit_of_work(
                self._pool(),
                now=now,
                source=self._source,
                outbox_channel=self._channel,
                signer=self._signer(),
            ) as uow:
                fresh = await uow.claim_all(consumer, [one.event for one in incoming])
                pending = set(fresh)
                for one in incoming:
                    if one.event.id not in pending:
                        continue
                    pending.discard(one.event.id)
                    # Each record at its own time on a virtual clock (a replay runs ahead of it).
                    uow.now = work_time(self._clock, one.event.time, now=now)
                    with trace.use_span(one.span, end_on_exit=False):
                        await handler(uow, one.event)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            raise _Unbatchable() from exc
        return fresh

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
