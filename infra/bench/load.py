"""Our system under load: land-transfer dossiers over HTTP, handoff latency from Postgres.

A dossier's route is the one a citizen drives: ``POST /dossiers``, wait until the desk says
``awaiting_payment``, ``POST /dossiers/{id}/payments``, wait until ``returned``. The waiting is
done by one watcher polling ``intake.dossiers`` for every dossier in flight at once, so the
bench does not add thousands of ``GET /dossiers/{id}`` requests to the desk's load.

**Handoff latency** of a hop is measured from the two Postgres clocks (one server, so they
agree): the producer's ``outbox.created_at`` for the event → the consumer's ``inbox.received_at``
for the same event id. Both are ``now()`` inside their transaction, i.e. the *start* of the
producer's and of the consumer's transaction. So a hop covers the rest of the producer's
transaction and its commit, the relay (NOTIFY, select, send, Kafka's ack), the consumer's
fetch, decoding and the inbox insert; it leaves out the consumer's own commit (the same few
milliseconds the producer side includes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.bench.common import percentile, say
from services import manifest
from services.replay.replay import payment_for
from services.runtime.kafka_access import KafkaAccess

SERVICE_SCHEMAS = manifest.names()
"""Every schema that may have an outbox and an inbox: one per service (its manifest)."""

POLL_SECONDS = 0.05
DOSSIER_TIMEOUT_SECONDS = 300.0
DRAIN_TIMEOUT_SECONDS = 600.0

LAND_DOCUMENTS = (
    "REGISTRATION_FORM",
    "TRANSFER_CONTRACT",
    "LAND_CERTIFICATE",
    "REGISTRATION_FEE_DECLARATION",
    "PIT_DECLARATION",
)
WARDS = (("phuong-1", "ODT"), ("phuong-6", "CLN"), ("huong-tho-phu", "LUC"), ("khanh-hau", "ODT"))


def land_transfer(n: int) -> dict[str, Any]:
    """A complete land-transfer dossier, varied by ``n`` (parcels above and below the price table)."""
    ward, land_use = WARDS[n % len(WARDS)]
    return {
        "procedure_code": "LAND-TRANSFER",
        "applicant": {
            "full_name": f"Nguyễn Văn An {n}",
            "id_number": f"0790880{n % 100_000:05d}",
            "phone": "0912345678",
            "email": f"an{n}@example.vn",
        },
        "documents": list(LAND_DOCUMENTS),
        "details": {
            "certificate_number": "CS 123456",
            "parcel": {
                "ward": ward,
                "map_sheet": 12,
                "parcel_number": 1 + n % 5000,
                "area_m2": 50 + 7.5 * (n % 40),
                "land_use_code": land_use,
            },
            "transferee": {"full_name": "Trần Thị Bình", "id_number": f"0790900{n % 100_000:05d}"},
            "transfer_price_vnd": 200_000_000 + 37_000_000 * (n % 50),
        },
    }


class DossierFailed(RuntimeError):
    """A dossier was refused or did not get through its route in time."""


class StatusWatcher:
    """Polls ``intake.dossiers`` for every dossier someone waits on, one query per round."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._waiting: dict[str, tuple[frozenset[str], asyncio.Future[str]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run(), name="bench-status-watcher")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self, dossier_id: str, statuses: frozenset[str]) -> str:
        """Wait until the dossier's status is one of ``statuses``; return it."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[dossier_id] = (statuses, future)
        try:
            async with asyncio.timeout(DOSSIER_TIMEOUT_SECONDS):
                return await future
        except TimeoutError:
            raise DossierFailed(f"{dossier_id} did not reach {sorted(statuses)} in time") from None
        finally:
            self._waiting.pop(dossier_id, None)

    async def _run(self) -> None:
        while True:
            if self._waiting:
                rows = await self._pool.fetch(
                    "SELECT id, status FROM intake.dossiers WHERE id = ANY($1::text[])", list(self._waiting)
                )
                for row in rows:
                    entry = self._waiting.get(row["id"])
                    if entry is not None and row["status"] in entry[0] and not entry[1].done():
                        entry[1].set_result(row["status"])
            await asyncio.sleep(POLL_SECONDS)


@dataclass
class Trip:
    """One dossier's way through the system, by the bench's clock (``time.perf_counter``)."""

    dossier_id: str
    submitted: float
    awaiting_payment: float
    returned: float


@dataclass
class Phase:
    """What one load phase did and measured."""

    name: str
    dossiers: int
    seconds: float
    """First submission to last ``returned``."""
    dossiers_per_s: float
    offered_per_s: float | None
    concurrency: int | None
    route_p50_s: float | None
    """Submission to ``returned`` of a dossier, the citizen's payment included (paid at once)."""
    route_p99_s: float | None
    drained_seconds: float | None = None
    """First submission to every consumer group of the services caught up (notices, console)."""
    drained_dossiers_per_s: float | None = None
    events_published: int = 0
    records_handled: int = 0
    """Inbox rows: events a consumer took in (one per hop)."""
    hops_per_s: float = 0.0
    """Inbox rows over ``drained_seconds``: every hop of the phase's dossiers was done by then."""
    handoff_ms: dict[str, float | None] = field(default_factory=dict)
    per_hop: list[dict[str, Any]] = field(default_factory=list)
    cpu_percent: dict[str, float] = field(default_factory=dict)
    """CPU used by each component from the first submission until drained; 100 = one core busy."""
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """The same in CPU seconds (over the whole phase)."""
    dossier_ids: list[str] = field(default_factory=list, repr=False)


class LoadDriver:
    """Drives dossiers through the running system and reads what they left in Postgres."""

    def __init__(
        self,
        *,
        intake_url: str,
        database_url: str,
        kafka: KafkaAccess,
        topic_prefix: str = "",
        desk_token: str,
        gateway_token: str,
        max_connections: int = 16,
        cpu_probe: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self._desk = {"Authorization": f"Bearer {desk_token}"}
        self._gateway = {"Authorization": f"Bearer {gateway_token}"}
        self._cpu_probe = cpu_probe or dict
        self._cpu_start: tuple[float, dict[str, float]] = (0.0, {})
        self._intake_url = intake_url
        self.desks = [intake_url]
        """The desks dossiers are filed and paid at, in turn (several when intake is scaled out)."""
        self._database_url = database_url
        self._kafka = kafka
        self._topic_prefix = topic_prefix
        self._max_connections = max_connections
        self._numbers = iter(range(1, 10**9))
        self._stack = contextlib.AsyncExitStack()
        self.client: httpx.AsyncClient
        self.pool: asyncpg.Pool
        self.watcher: StatusWatcher

    async def __aenter__(self) -> LoadDriver:
        # Few connections: httpcore checks every pooled connection (a getpeername call each) for
        # every request, so 200 of them made the load generator the machine's biggest CPU user
        # (py-spy: 97% of its samples in httpcore at 300 dossiers in flight); 16 carry the
        # two requests per dossier with room to spare.
        # uvicorn closes a connection idle for 5 s; httpx's default keep-alive expiry is also 5 s, so
        # a request could go out on a connection the server is closing (ReadError). Expire sooner,
        # and retry failed connects (nothing was sent then, so no dossier is filed twice).
        limits = httpx.Limits(
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_connections,
            keepalive_expiry=2.0,
        )
        transport = httpx.AsyncHTTPTransport(limits=limits, retries=3)
        self.client = await self._stack.enter_async_context(
            httpx.AsyncClient(base_url=self._intake_url, timeout=120, transport=transport)
        )
        pool = await asyncpg.create_pool(self._database_url, min_size=1, max_size=3)
        assert pool is not None
        self.pool = pool
        self._stack.push_async_callback(pool.close)
        self.watcher = StatusWatcher(pool)
        self.watcher.start()
        self._stack.push_async_callback(self.watcher.stop)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def trip(self) -> Trip:
        """File one dossier, pay it when asked, return when the desk has returned the result."""
        n = next(self._numbers)
        desk = self.desks[n % len(self.desks)]
        submitted = time.perf_counter()
        response = await self.client.post(f"{desk}/dossiers", json=land_transfer(n), headers=self._desk)
        if response.status_code != 201:
            raise DossierFailed(f"POST /dossiers answered {response.status_code}: {response.text[:500]}")
        dossier_id = response.json()["id"]
        status = await self.watcher.wait(dossier_id, frozenset({"awaiting_payment", "rejected", "returned"}))
        if status != "awaiting_payment":
            raise DossierFailed(f"{dossier_id} ended {status} before payment")
        awaiting = time.perf_counter()
        # The treasury knows the notice it was paid for; the bench reads it where the desk keeps it.
        results = await self.pool.fetchval("SELECT results FROM intake.dossiers WHERE id = $1", dossier_id)
        payment = payment_for({"results": json.loads(results)})
        response = await self.client.post(
            f"{desk}/dossiers/{dossier_id}/payments", json=payment, headers=self._gateway
        )
        if response.status_code != 200:
            raise DossierFailed(
                f"payment of {dossier_id} answered {response.status_code}: {response.text[:500]}"
            )
        status = await self.watcher.wait(dossier_id, frozenset({"returned", "rejected"}))
        if status != "returned":
            raise DossierFailed(f"{dossier_id} ended {status}")
        return Trip(dossier_id, submitted, awaiting, time.perf_counter())

    async def closed_loop(self, name: str, *, dossiers: int, concurrency: int) -> Phase:
        """``dossiers`` dossiers with at most ``concurrency`` in flight: the rate at saturation."""
        gate = asyncio.Semaphore(concurrency)
        finished = 0
        self._cpu_start = (time.perf_counter(), self._cpu_probe())

        async def bounded() -> Trip:
            nonlocal finished
            async with gate:
                trip = await self.trip()
            finished += 1
            if finished % max(1, dossiers // 10) == 0:
                say(f"{name}: {finished}/{dossiers} returned")
            return trip

        trips = await asyncio.gather(*(bounded() for _ in range(dossiers)))
        return await self._phase(name, trips, offered=None, concurrency=concurrency)

    async def open_loop(self, name: str, *, rate: float, seconds: float) -> Phase:
        """Start dossiers at a steady ``rate`` per second for ``seconds``, whatever the system does."""
        count = max(1, round(rate * seconds))
        self._cpu_start = (time.perf_counter(), self._cpu_probe())
        start = time.perf_counter()
        tasks: list[asyncio.Task[Trip]] = []
        try:
            for i in range(count):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.trip()))
            say(f"{name}: {count} dossiers offered at {rate:g}/s; waiting for the last to return")
            trips = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        return await self._phase(name, list(trips), offered=rate, concurrency=None)

    async def _phase(
        self, name: str, trips: Sequence[Trip], *, offered: float | None, concurrency: int | None
    ) -> Phase:
        first = min(t.submitted for t in trips)
        last = max(t.returned for t in trips)
        seconds = last - first
        routes = [t.returned - t.submitted for t in trips]
        # "returned" is the desk's word; notices and the console's read model may still be at work.
        drained_at = await self.wait_drained()
        drained = drained_at - first
        started, cpu_before = self._cpu_start
        cpu_after = self._cpu_probe()
        cpu_used = {name: cpu_after[name] - cpu_before[name] for name in cpu_after if name in cpu_before}
        cpu_percent = {
            name: round(100 * used / (drained_at - started), 1)
            for name, used in cpu_used.items()
            if drained_at > started
        }
        phase = Phase(
            name=name,
            dossiers=len(trips),
            seconds=seconds,
            dossiers_per_s=len(trips) / seconds if seconds > 0 else 0.0,
            offered_per_s=offered,
            concurrency=concurrency,
            route_p50_s=percentile(routes, 50),
            route_p99_s=percentile(routes, 99),
            dossier_ids=[t.dossier_id for t in trips],
            drained_seconds=drained,
            drained_dossiers_per_s=len(trips) / drained if drained > 0 else 0.0,
            cpu_percent=cpu_percent,
            cpu_seconds=cpu_used,
        )
        await self._handoffs(phase, [t.dossier_id for t in trips])
        phase.hops_per_s = phase.records_handled / drained if drained > 0 else 0.0
        return phase

    async def _service_groups(self) -> list[str]:
        """The services' consumer groups: the consumers named in their inboxes, as Kafka knows them."""
        schemas = await self._inbox_schemas()
        union = " UNION ".join(f"SELECT DISTINCT consumer FROM {s}.inbox" for s in schemas)
        return sorted(self._topic_prefix + r["consumer"] for r in await self.pool.fetch(union))

    async def _inbox_schemas(self) -> list[str]:
        return [
            r["table_schema"]
            for r in await self.pool.fetch(
                "SELECT table_schema FROM information_schema.tables"
                " WHERE table_name = 'inbox' AND table_schema = ANY($1::text[])",
                list(SERVICE_SCHEMAS),
            )
        ]

    async def wait_drained(self) -> float:
        """Wait until every service's consumer group has committed all it has to read; return when."""
        groups = await self._service_groups()
        admin = AIOKafkaAdminClient(**self._kafka.client_kwargs(), client_id="bench-lag")
        consumer = AIOKafkaConsumer(**self._kafka.client_kwargs(), client_id="bench-lag")
        await admin.start()
        await consumer.start()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS):
                while True:
                    lag = sum([await _group_lag(admin, consumer, group) for group in groups])
                    if lag == 0:
                        return time.perf_counter()
                    await asyncio.sleep(0.2)
        finally:
            await consumer.stop()
            await admin.close()

    async def _handoffs(self, phase: Phase, dossier_ids: list[str]) -> None:
        schemas = await self._inbox_schemas()
        outboxes = " UNION ALL ".join(
            f"SELECT '{s}' AS producer, event_id, event_type, created_at FROM {s}.outbox"
            " WHERE key = ANY($1::bytea[])"
            for s in schemas
        )
        inboxes = " UNION ALL ".join(
            f"SELECT consumer, event_id, received_at FROM {s}.inbox" for s in schemas
        )
        keys = [d.encode() for d in dossier_ids]
        phase.events_published = await self.pool.fetchval(f"SELECT count(*) FROM ({outboxes}) o", keys)
        rows = await self.pool.fetch(
            f"SELECT o.producer, i.consumer, o.event_type,"
            f" extract(epoch FROM i.received_at - o.created_at) * 1000 AS ms"
            f" FROM ({outboxes}) o JOIN ({inboxes}) i USING (event_id)",
            keys,
        )
        latencies = [float(r["ms"]) for r in rows]
        phase.records_handled = len(rows)
        phase.handoff_ms = {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        }
        by_hop: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            by_hop.setdefault((r["producer"], r["consumer"]), []).append(float(r["ms"]))
        phase.per_hop = [
            {
                "from": producer,
                "consumer": consumer,
                "count": len(values),
                "p50_ms": percentile(values, 50),
                "p99_ms": percentile(values, 99),
            }
            for (producer, consumer), values in sorted(by_hop.items())
        ]


async def _group_lag(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str) -> int:
    """Records on the group's topics it has not committed yet."""
    offsets = await admin.list_consumer_group_offsets(group)
    committed = {tp: meta.offset for tp, meta in offsets.items()}
    # A partition the group has not committed on yet counts from its start.
    partitions = [
        TopicPartition(t["topic"], p["partition"])
        for t in await admin.describe_topics(sorted({tp.topic for tp in committed}))
        for p in t.get("partitions", [])
    ]
    if not partitions:
        return 0
    ends = await consumer.end_offsets(partitions)
    return sum(max(0, ends[tp] - committed.get(tp, 0)) for tp in partitions)
