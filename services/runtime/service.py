"""The shape every service shares: one pool on its own schema, one broker, one outbox relay.

A service is a FastAPI app (``services.runtime.http_app``: ``/health`` and, for intake, the public
API) whose lifespan starts and stops a :class:`ServiceRuntime`: its lifecycle, subscriptions,
consumer offsets and health live here. Subscribers are registered on the runtime before
start; each one runs its handler through the same :class:`RecordProcessor` rules. Tracing and
metrics (``telemetry.py``) are wired here: FastStream's middlewares on the broker, a query
logger on the pool, spans in the relay. Beside it: ``batches`` (how records reach a
subscription), ``provisioning`` (the topics checked at start), ``http_app`` (the app).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from contracts import topics
from contracts.agencies import source_uri
from contracts.events import DossierEvent
from contracts.signing import KeyRegistry, SigningKey
from services.runtime.batches import PromptBatchSubscriber, raw_records, tolerant_parser
from services.runtime.clock import REQUEST_EVENT_TIME, Clock, clock_from_env, work_time
from services.runtime.consumer import DeadLetters, Handler, Prepare, RecordProcessor
from services.runtime.database import Connection, Migration, create_pool, migrate
from services.runtime.outbox_relay import OutboxRelay
from services.runtime.provisioning import ensure_topics
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


DueProbe = Callable[[Connection, datetime], Awaitable[datetime | None]]
"""When the earliest piece of scheduled work (a deadline alarm) falls due, None if there is none."""

Lead = Callable[[datetime], datetime]
"""The earliest time work scheduled by an input at ``now`` or later can fall due."""


@dataclass(frozen=True)
class Schedule:
    """A service's timed work as a replay sees it (``GET /clock``).

    ``next_due``: the earliest work already scheduled, None if none. ``horizon``: nothing can
    fall due before it, scheduled already or by any input from the clock's time on; a replay
    hands the service every input before the horizon without waiting, and stops the clock there.
    """

    now: datetime
    next_due: datetime | None
    horizon: datetime | None


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
        self._schedules: list[tuple[DueProbe, Lead]] = []
        self._handled: dict[str, dict[int, int]] = {}
        """Per consumer group and partition: the offset every record before has been handled at."""
        self._tasks: list[asyncio.Task[None]] = []
        self._recall: asyncio.Task[None] | None = None
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
            settings.kafka.servers,
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
        prepare: Prepare | None = None,
    ) -> None:
        """Run ``handler`` for every event on ``topic`` of the types in ``accepts``.

        ``consumer`` names the Kafka consumer group and the inbox; keep it stable, or
        the service would read the topic again from the start. ``prepare`` (optional) is
        entered with each batch's events before its transaction and left after it: work
        that needs no database, started for the whole batch at once.
        """
        self.subscriptions.append(Subscription(topic, consumer, accepts))
        self._topics.add(topic)

        # Offsets are committed only after the handler returned, i.e. after the transaction
        # committed (NACK_ON_ERROR: FastStream's default ACK_FIRST would be at-most-once).
        # Records come in batches: one transaction per batch instead of per record (see
        # RecordProcessor), and offsets committed when caught up or every CONSUMER_COMMIT_MS
        # (see Commits); order within a partition is kept.
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
        subscriber = PromptBatchSubscriber.adopt(
            subscriber, commit_interval=self.settings.consumer_commit_seconds
        )
        self._subscribers.append((consumer, subscriber))

        # The handler takes the decoded body (the records themselves, see raw_records), not a
        # ``message: KafkaMessage`` parameter: FastStream resolves that context field in a
        # thread-pool hop per call, which cost a quarter of a bare relay's throughput.
        @subscriber
        async def on_records(records: Any) -> None:
            await self.processor.process_batch(
                records, consumer=consumer, accepts=accepts, handler=handler, prepare=prepare
            )
            handled = self._handled.setdefault(consumer, {})
            for record in records:
                handled[record.partition] = max(handled.get(record.partition, 0), record.offset + 1)

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

    def schedules_work(self, next_due: DueProbe, lead: Lead) -> None:
        """Declare timed work (deadline alarms): when the next falls due, and how soon a new one can.

        A replay reads both (``GET /clock``) to hand over inputs in bulk and stop the clock only
        where something can fall due (see :class:`Schedule`).
        """
        self._schedules.append((next_due, lead))

    async def schedule(self) -> Schedule:
        """The service's time, its earliest scheduled work and its horizon (None: no timed work)."""
        now = self.clock.now()
        if not self._schedules:
            return Schedule(now, None, None)
        async with self.pool.acquire() as conn:
            due = [d for probe, _ in self._schedules if (d := await probe(conn, now)) is not None]
        next_due = min(due, default=None)
        return Schedule(now, next_due, min([*due, *(lead(now) for _, lead in self._schedules)]))

    async def consumed(self) -> dict[str, dict[int, int]]:
        """Per topic (logical name) and partition: the offset every group of ours has handled up to.

        A record at offset ``o`` has been handled (or skipped, or dead-lettered) by this service
        once the figure for its partition is above ``o``. A replay waits on it to keep a
        dossier's inputs in order across topics. Kept in memory as batches are handled (from the
        committed offsets at start), so asking after every window costs no round trip to Kafka.
        """
        groups: dict[str, list[str]] = {}
        for s in self.subscriptions:
            groups.setdefault(s.topic, []).append(s.consumer)
        positions: dict[str, dict[int, int]] = {}
        for topic, consumers in groups.items():
            partitions = await self._partitions(self.kafka_name(topic))
            positions[topic] = {
                p.partition: min(self._handled.get(c, {}).get(p.partition, 0) for c in consumers)
                for p in partitions
            }
        return positions

    async def _recall_handled(self) -> None:
        """Start ``consumed()`` from the groups' committed offsets (a restart resumes there).

        Retried until the broker answers: on a fresh broker the group coordinator comes up
        after the service does.
        """
        for s in self.subscriptions:
            while True:
                try:
                    partitions = await self._partitions(self.kafka_name(s.topic))
                    committed = await self._committed(self.kafka_name(s.consumer), partitions)
                    break
                except Exception as exc:  # any broker error: the next try may succeed
                    log.debug("%s: committed offsets of %s not known yet (%r)", self.name, s.consumer, exc)
                    await asyncio.sleep(0.5)
            handled = self._handled.setdefault(s.consumer, {})
            for partition, offset in committed.items():
                handled[partition.partition] = max(handled.get(partition.partition, 0), offset)

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

    async def wait_for_stall(self, *, every: float | None = None) -> list[str]:
        """Look at the consumers' progress every ``every`` seconds; the stalled ones, once there are.

        ``every`` defaults to a quarter of ``consumer_stall_seconds`` (at most 10 s). A look that
        fails (Kafka away a moment) is skipped: the next one decides.
        """
        interval = every or min(10.0, self.settings.consumer_stall_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(5):
                    stalled = await self.stalled_consumers()
            except Exception:
                log.warning("%s: consumer progress check failed", self.name, exc_info=True)
                continue
            if stalled:
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
        """A transaction for work that does not start from a Kafka record (an HTTP request).

        It runs at the request's ``Event-Time`` on a virtual clock (a replayed desk action).
        """
        return unit_of_work(
            self.pool,
            now=work_time(self.clock, REQUEST_EVENT_TIME.get()),
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
        self._recall = asyncio.create_task(self._recall_handled(), name=f"{self.name}:recall")
        await self.broker.start()
        log.info("%s: started", self.name)

    async def stop(self) -> None:
        """Stop consuming first, then relaying, then close connections."""
        await self.broker.stop()
        for task in [*self._tasks, *([self._recall] if self._recall else [])]:
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
