"""The shape every service shares: one pool on its own schema, one broker, one outbox relay.

A service is a FastAPI app (for ``/health`` and, for intake, the public API) whose lifespan
starts and stops a :class:`ServiceRuntime`. Subscribers are registered on the runtime before
start; each one runs its handler through the same :class:`RecordProcessor` rules. Tracing and
metrics (``telemetry.py``) are wired here: FastStream's middlewares on the broker, a query
logger on the pool, spans in the relay, the HTTP server traced, ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts import topics
from contracts.agencies import source_uri
from contracts.events import DossierEvent
from contracts.signing import KeyRegistry, SigningKey
from services.runtime.access import AUTH_RESPONSES, Access, Role
from services.runtime.clock import Clock, VirtualClock, clock_from_env
from services.runtime.consumer import DeadLetters, Handler, RecordProcessor
from services.runtime.database import Connection, Migration, create_pool, migrate
from services.runtime.kafka_access import KafkaAccess
from services.runtime.outbox_relay import OutboxRelay
from services.runtime.settings import ConfigurationError, ServiceSettings
from services.runtime.telemetry import Telemetry
from services.runtime.unit_of_work import UnitOfWork, unit_of_work

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    """A service reads ``accepts`` from ``topic`` as consumer group ``consumer``."""

    topic: str
    consumer: str
    accepts: tuple[type[DossierEvent], ...]


@dataclass(frozen=True)
class Publication:
    """A service writes ``events`` to ``topic`` (through its outbox)."""

    topic: str
    events: tuple[type[DossierEvent], ...]


BacklogProbe = Callable[[Connection, datetime], Awaitable[int]]
"""Counts work still owed, on a connection to the service's schema, at the service's time."""


async def _unpublished_outbox(conn: Connection, _: datetime) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


class ServiceRuntime:
    """Settings, Postgres pool, Kafka broker and producer, outbox relay, dead letters, telemetry.

    Topic and consumer-group names given to it are logical (``handoffs.tax``); it adds the
    settings' ``topic_prefix`` where it talks to Kafka.
    """

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        agency: str,
        migrations: tuple[Migration, ...],
        topics_used: Iterable[str] = (),
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.service
        self.agency = agency
        self.source = source_uri(agency)
        self.clock: Clock = clock or clock_from_env(dict(os.environ))
        self.telemetry = telemetry or Telemetry.from_env(self.name, os.environ)
        self._migrations = migrations
        self._topics = {*topics_used, topics.dead_letters(self.name)}
        self._subscribers: list[tuple[str, Any]] = []
        self.subscriptions: list[Subscription] = []
        self.publications: list[Publication] = []
        self._background: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._backlog_probes: dict[str, BacklogProbe] = {"outbox": _unpublished_outbox}
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._coordinators: dict[str, int] = {}
        self._topic_partitions: dict[str, list[TopicPartition]] = {}
        self._last_progress: dict[str, tuple[int, float]] = {}
        """Per subscription: the committed offsets' sum when last seen to move, and when."""
        self._relay: OutboxRelay | None = None
        self._dead_letters: DeadLetters | None = None
        self._outbox_channel = f"outbox_{self.name}"
        self.broker = KafkaBroker(
            settings.kafka.bootstrap_servers,
            security=settings.kafka.security(),
            client_id=self.name,
            logger=log,
            graceful_timeout=10,
            middlewares=self.telemetry.broker_middlewares(),
        )
        self.keys = KeyRegistry(settings.key_registry)
        """Every agency's public keys: what this service consumes is verified against them."""
        self._signer: SigningKey | None = None
        self.processor = RecordProcessor(
            pool=lambda: self.pool,
            clock=self.clock,
            source=self.source,
            outbox_channel=self._outbox_channel,
            dead_letters=lambda: self.dead_letters,
            keys=self.keys,
            signer=lambda: self._signer,
            telemetry=self.telemetry,
            agency=agency,
            topic_prefix=settings.topic_prefix,
        )

    def kafka_name(self, name: str) -> str:
        """The name Kafka knows a topic or consumer group by (the settings' prefix added)."""
        return self.settings.topic_prefix + name

    @property
    def pool(self) -> asyncpg.Pool:
        """The service's connection pool (search_path = its own schema)."""
        if self._pool is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._pool

    @property
    def dead_letters(self) -> DeadLetters:
        """Where bad records go."""
        if self._dead_letters is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._dead_letters

    def subscribe(
        self,
        topic: str,
        *,
        consumer: str,
        accepts: tuple[type[DossierEvent], ...],
        handler: Handler,
    ) -> None:
        """Run ``handler`` for every event on ``topic`` of the types in ``accepts``.

        ``consumer`` names the Kafka consumer group and the inbox; keep it stable, or
        the service would read the topic again from the start.
        """
        self.subscriptions.append(Subscription(topic, consumer, accepts))
        self._topics.add(topic)

        # Offsets are committed only after the handler returned, i.e. after the transaction
        # committed (NACK_ON_ERROR: FastStream's default ACK_FIRST would be at-most-once).
        # Records come in batches: one transaction and one offset commit per batch instead of
        # per record (see RecordProcessor); order within a partition is kept.
        subscriber = self.broker.subscriber(
            self.kafka_name(topic),
            group_id=self.kafka_name(consumer),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            title=f"{consumer}:{topic}",
            batch=True,
            max_records=self.settings.consumer_batch_size,
            parser=tolerant_parser,
            decoder=raw_records,
        )
        subscriber.__class__ = PromptBatchSubscriber
        self._subscribers.append((consumer, subscriber))

        # The handler takes the decoded body (the records themselves, see raw_records), not a
        # ``message: KafkaMessage`` parameter: FastStream resolves that context field in a
        # thread-pool hop per call, which cost a quarter of a bare relay's throughput.
        @subscriber
        async def on_records(records: Any) -> None:
            await self.processor.process_batch(records, consumer=consumer, accepts=accepts, handler=handler)

    def publishes(self, topic: str, *events: type[DossierEvent]) -> None:
        """Declare that this service writes ``events`` to ``topic``.

        The outbox relay does the writing; the declaration creates the topic at start and puts
        the events' schemas into the AsyncAPI document and the event catalog.
        """
        self.publications.append(Publication(topic, events))
        self._topics.add(topic)
        for event in events:
            self.broker.publisher(
                self.kafka_name(topic),
                schema=event,
                title=f"{topic}:{event.TYPE}",
                description=(event.__doc__ or "").strip().splitlines()[0],
            )

    def counts_backlog(self, name: str, probe: BacklogProbe) -> None:
        """Add a count of work the service still owes (shown by ``GET /backlog``).

        Replays and tests wait for every count to reach 0 before they move virtual time on.
        """
        self._backlog_probes[name] = probe

    async def backlog(self) -> dict[str, int]:
        """Work the service owes: records not yet consumed, unpublished outbox rows, the probes'."""
        counts = {"unconsumed": await self._unconsumed()}
        async with self.pool.acquire() as conn:
            for name, probe in self._backlog_probes.items():
                counts[name] = await probe(conn, self.clock.now())
        return counts

    async def _unconsumed(self) -> int:
        """Records on our topics past our groups' committed offsets, asked of the broker now."""
        return sum(behind for behind, _ in (await self._group_offsets()).values())

    async def _group_offsets(self) -> dict[str, tuple[int, int]]:
        """Per subscription (``<group> on <topic>``): records waiting, and committed offsets' sum.

        Waiting = past the group's committed offsets. Every partition of the topic counts,
        assigned to a consumer yet or not: a group that has not joined is behind by all that
        was written (it reads from the earliest).
        """

        async def offsets(topic: str, group: str) -> tuple[int, int]:
            partitions = await self._partitions(topic)
            ends, committed = await asyncio.gather(
                self._offsets_reader().end_offsets(partitions), self._committed(group, partitions)
            )
            behind = sum(max(ends[p] - committed.get(p, 0), 0) for p in partitions)
            return behind, sum(committed.values())

        found = await asyncio.gather(
            *(offsets(self.kafka_name(s.topic), self.kafka_name(s.consumer)) for s in self.subscriptions)
        )
        return {f"{s.consumer} on {s.topic}": f for s, f in zip(self.subscriptions, found, strict=True)}

    async def stalled_consumers(self) -> list[str]:
        """Subscriptions with records waiting whose group committed nothing for ``consumer_stall_seconds``.

        Measured between calls (``/health`` makes them): the first look only takes a reading.
        A group that is caught up, or whose committed offsets moved since the last look, is fine.
        """
        now = time.monotonic()
        stalled = []
        for group, (behind, committed) in (await self._group_offsets()).items():
            last = self._last_progress.get(group)
            if behind == 0 or last is None or last[0] != committed:
                self._last_progress[group] = (committed, now)
            elif now - last[1] >= self.settings.consumer_stall_seconds:
                stalled.append(group)
        return stalled

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions, asked once (the service created the topic at start)."""
        if topic not in self._topic_partitions:
            if self._admin is None:
                raise RuntimeError(f"{self.name} is not started")
            (described,) = await self._admin.describe_topics([topic])
            found = sorted(p["partition"] for p in described["partitions"])
            if not found:
                raise RuntimeError(f"{topic}: the broker lists no partitions ({described})")
            self._topic_partitions[topic] = [TopicPartition(topic, p) for p in found]
        return self._topic_partitions[topic]

    def _offsets_reader(self) -> AIOKafkaConsumer:
        if self._offsets is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._offsets

    async def _committed(self, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets: one OffsetFetch to its (remembered) coordinator."""
        if self._admin is None:
            raise RuntimeError(f"{self.name} is not started")
        if group not in self._coordinators:
            self._coordinators[group] = await self._admin.find_coordinator(group)
        try:
            offsets = await self._admin.list_consumer_group_offsets(
                group, self._coordinators[group], partitions
            )
        except Exception:
            self._coordinators.pop(group, None)  # the coordinator may have moved: find it again
            raise
        return {p: max(o.offset, 0) for p, o in offsets.items()}

    def run_in_background(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``loop()`` as a task from start to stop (a deadline watcher, a delivery worker).

        The loop should run forever and survive its own errors; if it ends anyway the
        service's health turns red, so a supervisor restarts the process.
        """
        self._background.append((name, loop))

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A transaction for work that does not start from a Kafka record (an HTTP request)."""
        return unit_of_work(
            self.pool,
            now=self.clock.now(),
            source=self.source,
            outbox_channel=self._outbox_channel,
            signer=self._signer,
        )

    def _load_signing_key(self) -> SigningKey | None:
        """The service's key, checked against the registry; None for a service that publishes nothing."""
        path = self.settings.signing_key_file
        if path is None:
            if self.publications:
                raise ConfigurationError(f"{self.name} publishes events but SIGNING_KEY_FILE is not set")
            return None
        try:
            key = SigningKey.load(path)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"SIGNING_KEY_FILE: {exc}") from exc
        published = self.keys.get(key.key_id)
        if key.agency != self.agency:
            raise ConfigurationError(f"SIGNING_KEY_FILE {path} is {key.agency}'s key, not {self.agency}'s")
        if published is None or published.status != "active":
            state = "not in" if published is None else f"{published.status} in"
            raise ConfigurationError(
                f"signing key {key.key_id} is {state} the key registry"
                f" ({', '.join(map(str, self.keys.paths)) or 'SIGNING_KEY_REGISTRY unset'}):"
                " its events would be dead-lettered by every consumer"
            )
        return key

    async def start(self) -> None:
        """Connect, migrate, create topics, start relaying and consuming."""
        self._signer = self._load_signing_key()
        self._pool = await create_pool(
            self.settings.database_url,
            schema=self.name,
            size=self.settings.db_pool_size,
            query_logger=self.telemetry.record_query,
        )
        applied = await migrate(self._pool, schema=self.name, migrations=self._migrations)
        if applied:
            log.info("%s: applied migrations %s", self.name, ", ".join(applied))
        await ensure_topics(self.settings.kafka, sorted(self.kafka_name(t) for t in self._topics))
        self._producer = AIOKafkaProducer(
            **self.settings.kafka.client_kwargs(),
            client_id=f"{self.name}-relay",
            enable_idempotence=True,  # no duplicates from the producer's own retries
            linger_ms=2,
        )
        await self._producer.start()
        # End offsets for GET /backlog, on a connection of their own: asked on the subscribers'
        # consumers, the ListOffsets request queues behind their fetch long-poll (up to
        # fetch_max_wait_ms, 500 ms) and a replay waiting for /backlog crawls.
        self._offsets = AIOKafkaConsumer(
            **self.settings.kafka.client_kwargs(),
            client_id=f"{self.name}-backlog",
            enable_auto_commit=False,
        )
        await self._offsets.start()
        self._admin = AIOKafkaAdminClient(
            **self.settings.kafka.client_kwargs(), client_id=f"{self.name}-backlog"
        )
        await self._admin.start()
        self._dead_letters = DeadLetters(
            producer=self._producer, topic=self.kafka_name(topics.dead_letters(self.name)), clock=self.clock
        )
        self._relay = OutboxRelay(
            pool=self._pool,
            producer=self._producer,
            schema=self.name,
            channel=self._outbox_channel,
            topic_prefix=self.settings.topic_prefix,
            agency=self.agency,
            tracer=self.telemetry.tracer,
        )
        await self._relay.start()
        self._tasks = [
            asyncio.create_task(loop(), name=f"{self.name}:{name}") for name, loop in self._background
        ]
        await self.broker.start()
        log.info("%s: started", self.name)

    async def stop(self) -> None:
        """Stop consuming first, then relaying, then close connections."""
        await self.broker.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._relay is not None:
            await self._relay.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._offsets is not None:
            await self._offsets.stop()
        if self._admin is not None:
            await self._admin.close()
        if self._pool is not None:
            await self._pool.close()
        await self.telemetry.flush()

    async def health(self) -> dict[str, bool]:
        """Readiness of each dependency; all True means the service can do its work."""
        checks = {"postgres": False, "kafka": False, "outbox_relay": False, "consumers": False}
        for task in self._tasks:
            checks[task.get_name().split(":", 1)[1]] = not task.done()
        if self._pool is not None:
            try:
                async with asyncio.timeout(2):
                    checks["postgres"] = await self._pool.fetchval("SELECT true") is True
            except Exception:
                log.warning("%s: postgres health check failed", self.name, exc_info=True)
        try:
            checks["kafka"] = await self.broker.ping(timeout=2)
        except Exception:
            log.warning("%s: kafka health check failed", self.name, exc_info=True)
        checks["outbox_relay"] = self._relay is not None and self._relay.running
        try:
            async with asyncio.timeout(2):
                stalled = await self.stalled_consumers()
            checks["consumers"] = not stalled
            if stalled:
                log.error(
                    "%s: consumers stalled (records waiting, nothing committed for %.0f s): %s",
                    self.name,
                    self.settings.consumer_stall_seconds,
                    ", ".join(stalled),
                )
        except Exception:
            log.warning("%s: consumer progress check failed", self.name, exc_info=True)
        return checks

    async def refresh_gauges(self) -> None:
        """Bring the gauges up to date before a scrape: outbox backlog, consumer lag.

        Best effort: ``/metrics`` answers (with the last values) even when Postgres is away.
        """
        try:
            async with asyncio.timeout(2):
                backlog = await self.pool.fetchrow(
                    "SELECT count(*) AS n,"
                    " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
                    " FROM outbox WHERE published_at IS NULL"
                )
                assert backlog is not None
                self.telemetry.outbox_unpublished.set(backlog["n"])
                self.telemetry.outbox_oldest_age.set(float(backlog["age"]))
                for consumer, subscriber in self._subscribers:
                    kafka = subscriber.consumer
                    for partition in kafka.assignment() if kafka is not None else ():
                        # Only partitions fetched at least once: their position is known, no wait.
                        high = kafka.highwater(partition)
                        if high is not None:
                            lag = high - await kafka.position(partition)
                            labels = (consumer, partition.topic, partition.partition)
                            self.telemetry.consumer_lag.labels(*labels).set(lag)
        except Exception:
            log.warning("%s: could not refresh the gauges", self.name, exc_info=True)


# FastStream parses and decodes a record before the handler runs; a failure there is raised
# again on every redelivery (NACK_ON_ERROR re-seeks), so one poison record would block its
# partition for good. These two never fail: the handler gets the record as it came and
# RecordProcessor decides, dead-lettering what it cannot read.


async def tolerant_parser(
    records: tuple[ConsumerRecord, ...],
    original: Callable[[tuple[ConsumerRecord, ...]], Awaitable[StreamMessage[tuple[ConsumerRecord, ...]]]],
) -> StreamMessage[tuple[ConsumerRecord, ...]]:
    """FastStream's batch parser, surviving header values that are not UTF-8."""
    try:
        return await original(records)
    except UnicodeDecodeError:
        readable = tuple(
            dataclasses.replace(
                record, headers=[(n, v.decode(errors="replace").encode()) for n, v in record.headers]
            )
            for record in records
        )
        message = await original(readable)
        message.raw_message = records  # the original bytes go to the dead-letter topic
        return message


async def raw_records(message: StreamMessage[tuple[ConsumerRecord, ...]]) -> tuple[ConsumerRecord, ...]:
    """No decoding in FastStream: the handler gets the Kafka records as they came.

    Malformed JSON must reach the dead-letter logic, with the topic, partition, offset, key and
    headers it came with.
    """
    return message.raw_message


class PromptBatchSubscriber(BatchSubscriber):
    """FastStream's batch subscriber, waiting for records the way its one-record subscriber does.

    FastStream 0.7's ``BatchSubscriber`` polls ``getmany(batch_timeout_ms)`` and, after an empty
    poll, sleeps as long again: a record reaching a quiet topic then waits out the sleep
    (measured with ``make bench``: handoff p50 12 → 24 ms at 5 dossiers/s with 20 ms polls; 2 ms
    polls cost that much in CPU instead). This one waits in ``getone()`` for the first record,
    as the one-record subscriber does (no polling when idle), then takes what else has already
    been fetched, without waiting, up to ``max_records``. Order within a partition is kept:
    ``getone`` returns the oldest fetched record of its partition and ``getmany`` the rest.
    """

    __slots__ = ()

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        """Block until a record is there; return it with every record fetched behind it."""
        first = await consumer.getone()
        room = (self.max_records or 1) - 1
        if room < 1:
            return (first,)
        more = await consumer.getmany(timeout_ms=0, max_records=room)
        return (first, *itertools.chain.from_iterable(more.values()))


async def ensure_topics(
    access: KafkaAccess,
    names: Sequence[str],
    *,
    partitions: int | None = None,
    client_id: str = "topic-setup",
) -> None:
    """Create the topics among ``names`` that are missing (idempotent).

    Partitions and replication from ``KAFKA_PARTITIONS`` (6) and ``KAFKA_REPLICATION_FACTOR`` (1)
    unless ``partitions`` is given. Provisioning creates every declared topic with the admin
    principal; a service's own principal may not create topics, so for a service this only
    confirms that its topics are there, and says which are not.
    """
    partitions = partitions or int(os.environ.get("KAFKA_PARTITIONS", "6"))
    replication = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    admin = AIOKafkaAdminClient(**access.client_kwargs(), client_id=client_id)
    await admin.start()
    try:
        # A principal sees only the topics it may describe: missing may also mean "not yours".
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in missing]
        )
        # Another service may create one between our list and create: "already exists" is fine.
        refused = {
            topic: for_code(code).__name__
            for topic, code, *_ in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        }
        if refused:
            raise TopicsNotProvisioned(
                f"{access.principal} may not use or create {', '.join(sorted(refused))}"
                f" ({', '.join(sorted(set(refused.values())))}): topics and their ACLs are provisioned"
                " from the services' declarations (`python -m infra.kafka.acls apply`; make run does it)"
            )
    finally:
        await admin.close()


class TopicsNotProvisioned(RuntimeError):
    """A service's topics are missing or not granted to its principal."""


DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""Largest HTTP request body a service reads; a dossier is a few kilobytes."""


class BodyLimit:
    """Refuses, with 413 and before reading it, a request body declared over ``max_body_bytes``.

    Checked on the declared Content-Length, which ordinary clients send; a chunked upload without
    one is not checked here (a reverse proxy's body limit covers that case). A plain ASGI
    middleware: Starlette's ``@app.middleware("http")`` runs every request through an extra task
    group and response stream, which showed in intake's profile at saturation.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 for an over-long declared body; pass everything else on."""
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                limit = self.max_body_bytes
                detail = f"request body of {declared} bytes is over the limit of {limit}"
                response = JSONResponse({"detail": detail}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ListsEveryMethod(APIRoute):
    """A route whose 405 names every method its path allows, not only its own.

    Starlette answers a method no route takes from the first route matching the path, so with
    ``GET /clock`` and ``PUT /clock`` as two routes, ``OPTIONS /clock`` said ``Allow: GET``.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 405 with the path's methods (all its routes'); run the route otherwise."""
        if self.methods and scope["method"] not in self.methods:
            routes = getattr(scope.get("router"), "routes", ())
            allowed = {
                method
                for route in routes
                if isinstance(route, APIRoute) and route.path_format == self.path_format
                for method in route.methods or ()
            }
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        await super().handle(scope, receive, send)


MALFORMED_BODY: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON (or not in the declared content type)"},
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "The request body is over the service's limit (refused before it is read)"},
}


def document_common_responses(app: FastAPI) -> None:
    """Add to ``app``'s OpenAPI the answers any operation can give besides its own.

    Every operation with a body can answer 400 (a body that does not parse) and 413 (BodyLimit);
    an operation whose 422 is the service's own refusal can also answer FastAPI's validation
    error, so its 422 schema admits both.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        validation = {"$ref": "#/components/schemas/HTTPValidationError"}
        validated = "HTTPValidationError" in schema.get("components", {}).get("schemas", {})
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    for status, response in {**MALFORMED_BODY, **TOO_LARGE}.items():
                        responses.setdefault(str(status), response)
                takes_input = "requestBody" in operation or operation.get("parameters")
                json_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
                own = json_422.get("schema")
                if validated and takes_input and own is not None and own != validation:
                    json_422["schema"] = {"anyOf": [own, validation]}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class ClockSetting(BaseModel):
    """Where to move a virtual clock (never backwards)."""

    now: AwareDatetime


def create_service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str = "",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    access: Access | None = None,
) -> FastAPI:
    """The FastAPI app of a service: lifespan runs the runtime, ``/health`` reports readiness.

    Request bodies over ``max_body_bytes`` are refused with 413 before they are read. With a
    virtual clock, ``PUT /clock`` moves it, for operators only (``access``, default from ``AUTH_*``).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    app.router.route_class = ListsEveryMethod
    document_common_responses(app)
    runtime.telemetry.instrument(app)

    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        await runtime.refresh_gauges()
        return Response(generate_latest(runtime.telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["operations"], summary="Readiness of Kafka, Postgres and the consumers")
    async def health() -> JSONResponse:
        checks = await runtime.health()
        ready = all(checks.values())
        return JSONResponse(
            {"service": runtime.name, "ready": ready, "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/backlog", tags=["operations"], summary="Work accepted but not finished (0 = idle)")
    async def read_backlog() -> dict[str, int]:
        return await runtime.backlog()

    @app.get("/clock", tags=["operations"], summary="The service's current time and clock kind")
    async def read_clock() -> dict[str, str]:
        kind = "virtual" if isinstance(runtime.clock, VirtualClock) else "wall"
        return {"now": runtime.clock.now().isoformat(), "clock": kind}

    if isinstance(runtime.clock, VirtualClock):
        clock = runtime.clock
        operators = (access or Access.from_env()).requires(Role.OPERATOR)

        @app.put(
            "/clock",
            tags=["operations"],
            summary="Move virtual time forward (CLOCK=virtual only; operators)",
            responses=AUTH_RESPONSES,
            dependencies=[operators],
        )
        async def set_clock(body: ClockSetting) -> dict[str, str]:
            return {"now": clock.set(body.now).isoformat(), "clock": "virtual"}

    return app


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run a service's app until SIGTERM/SIGINT (graceful: in-flight work finishes)."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {settings.service} %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka logs every rebalance at INFO; keep the service's own lines readable.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
