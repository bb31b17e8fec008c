"""One trace per dossier, across the four services, on the real broker and the real database.

The four services run in this process, each with its own tracer provider (so its own
``service.name``) and all exporting to one in-memory exporter. They are isolated from the
services the end-to-end tests run as processes on the same Kafka and Postgres: a fresh
database per test, and ``topic_prefix`` (``KAFKA_TOPIC_PREFIX``) on every topic and consumer
group, so neither set reads the other's events or steals its partitions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contracts.agencies import LAND_REGISTRY, NOTIFICATION, ONE_STOP, TAX
from contracts.events import DossierReceived, DossierReturned, PaymentNoticeIssued, StepOverdue
from infra.stack import Stack
from services.intake import app as intake_app
from services.intake.api import build_router
from services.land_registry import app as land_registry_app
from services.notification import app as notification_app
from services.notification.settings import DeliverySettings
from services.runtime import telemetry
from services.runtime.clock import Clock, VirtualClock
from services.runtime.http_app import create_service_app
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.tax import app as tax_app
from tests.dossier_samples import land_transfer, pay, wait_for_status

pytestmark = pytest.mark.real

AGENCY_OF = {"intake": ONE_STOP, "land_registry": LAND_REGISTRY, "tax": TAX, "notification": NOTIFICATION}


@dataclass(frozen=True)
class Edge:
    """A span named ``parent`` in service ``parent_service`` is the parent of ``count`` spans
    named ``child`` in ``child_service`` (names without the topic prefix)."""

    parent_service: str
    parent: str
    child_service: str
    child: str
    count: int
    at_least: bool = False  # for intake.events, which carries a "progressed" per change


EXPECTED_EDGES = [
    # Across services, through Kafka: the relay's publish span -> the reader's process span.
    Edge("intake", "handoffs.land_registry publish", "land_registry", "handoffs.land_registry process", 2),
    Edge("land_registry", "land_registry.events publish", "intake", "land_registry.events process", 2),
    Edge("intake", "handoffs.tax publish", "tax", "handoffs.tax process", 1),
    Edge("tax", "tax.events publish", "intake", "tax.events process", 2),  # notice (ignored) + step
    Edge("tax", "tax.events publish", "notification", "tax.events process", 2),  # notice + step (ignored)
    Edge(
        "intake", "intake.citizens publish", "notification", "intake.citizens process", 2
    ),  # receipt, result
    # Within a service, through the outbox: the work that wrote a row -> the relay's publish span.
    Edge("intake", "POST /dossiers", "intake", "handoffs.land_registry publish", 1),
    Edge(
        "land_registry", "handoffs.land_registry process", "land_registry", "land_registry.events publish", 2
    ),
    Edge("intake", "land_registry.events process", "intake", "handoffs.tax publish", 1),
    Edge("tax", "handoffs.tax process", "tax", "tax.events publish", 2),
    Edge("intake", "land_registry.events process", "intake", "intake.events publish", 1, at_least=True),
    Edge("intake", "POST /dossiers", "intake", "intake.citizens publish", 1),  # the receipt
    # The payment: the desk's work continues the dossier's trace (and links to the request).
    Edge("intake", "POST /dossiers", "intake", "record payment", 1),
    Edge("intake", "record payment", "intake", "handoffs.land_registry publish", 1),
]


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def attr(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)


AGENCIES = {"intake": ONE_STOP, "land_registry": LAND_REGISTRY, "tax": TAX}
"""Who each service that publishes publishes as (its signing key)."""


class Services:
    """Services of this test, started in-process against the session's Kafka and a fresh database."""

    def __init__(self, stack: Stack, database_url: str, exporter: InMemorySpanExporter) -> None:
        self.stack = stack
        self.database_url = database_url
        self.exporter = exporter
        self.prefix = f"t{uuid.uuid4().hex[:8]}."
        self.runtimes: dict[str, ServiceRuntime] = {}
        self.apps: dict[str, FastAPI] = {}

    def notification(self, settings: ServiceSettings) -> ServiceRuntime:
        """The notification service, signing letters with the stack's agency certificates."""
        delivery = replace(DeliverySettings.from_env(), letter_signing_dir=self.stack.letter_signing_dir())
        return notification_app.build_runtime(settings, delivery=delivery)

    def settings(self, name: str) -> ServiceSettings:
        return self.stack.settings_for(
            name, agency=AGENCIES.get(name), database_url=self.database_url, topic_prefix=self.prefix
        )

    async def start(self, *names: str, intake_clock: Clock | None = None) -> None:
        for name in names:
            if name == "intake":
                runtime, desk = intake_app.build_runtime(self.settings(name), clock=intake_clock)
                app = create_service_app(runtime, title=name, access=self.stack.access())
                app.include_router(build_router(desk, self.stack.access()))
            else:
                build = {
                    "land_registry": land_registry_app.build_runtime,
                    "tax": tax_app.build_runtime,
                    "notification": self.notification,
                }[name]
                runtime = build(self.settings(name))
                app = create_service_app(runtime, title=name)
            runtime.telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
            self.runtimes[name], self.apps[name] = runtime, app
            await runtime.start()

    async def stop(self) -> None:
        for runtime in reversed(self.runtimes.values()):
            await runtime.stop()

    def client(self, name: str) -> httpx.AsyncClient:
        token = self.stack.token("desk_officer", "payment_gateway", subject="tracing-test")
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.apps[name]),
            base_url=f"http://{name}",
            headers={"Authorization": f"Bearer {token}"},
        )

    def name(self, span_name: str) -> str:
        """A span name as recorded: topics carry the prefix."""
        return self.prefix + span_name if span_name.endswith((" publish", " process")) else span_name

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    async def wait_for(self, what: str, found: Callable[[Iterable[ReadableSpan]], bool]) -> None:
        deadline = time.monotonic() + 60
        while not found(self.spans()):
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}; spans: {sorted({s.name for s in self.spans()})}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def database(stack: Stack) -> AsyncIterator[str]:
    """A database of its own on the session's server (the services use fixed schema names)."""
    name = f"trace_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(stack.database_url)._replace(path=f"/{name}"))
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def services(stack: Stack, database: str) -> AsyncIterator[Services]:
    running = Services(stack, database, InMemorySpanExporter())
    try:
        yield running
    finally:
        await running.stop()


def trace_of(spans: Iterable[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context.trace_id == trace_id]


def dangling_parents(spans: list[ReadableSpan]) -> set[int]:
    """Parents referenced in the trace but not (yet) exported: empty once the trace is complete."""
    ids = {s.context.span_id for s in spans}
    return {s.parent.span_id for s in spans if s.parent is not None and s.parent.span_id not in ids}


async def test_a_land_transfer_is_one_trace_across_the_four_services(services: Services) -> None:
    await services.start("intake", "land_registry", "tax", "notification")
    async with services.client("intake") as client:
        response = await client.post("/dossiers", json=land_transfer(77))
        assert response.status_code == 201, response.text
        dossier_id = response.json()["id"]
        await wait_for_status(client, dossier_id, "awaiting_payment")
        (await pay(client, dossier_id)).raise_for_status()
        await wait_for_status(client, dossier_id, "returned")

    (receipt,) = [s for s in services.spans() if s.name == "POST /dossiers"]
    trace_id = receipt.context.trace_id
    await services.wait_for(
        "notification processing the result",
        lambda spans: any(
            service_of(s) == "notification"
            and attr(s, telemetry.EVENT_TYPE) == DossierReturned.TYPE
            and attr(s, telemetry.HANDLING) == "processed"
            for s in spans
        ),
    )
    await services.wait_for("the whole trace", lambda spans: not dangling_parents(trace_of(spans, trace_id)))
    spans = trace_of(services.spans(), trace_id)
    by_id = {s.context.span_id: s for s in spans}

    # One trace: everything about the dossier is in it, it has one root, the citizen's POST.
    about_dossier = [s for s in services.spans() if attr(s, telemetry.DOSSIER_ID) == dossier_id]
    assert {s.context.trace_id for s in about_dossier} == {trace_id}
    assert [s.name for s in spans if s.parent is None] == ["POST /dossiers"]
    assert receipt.kind is SpanKind.SERVER
    assert service_of(receipt) == "intake"
    assert {service_of(s) for s in spans} == set(AGENCY_OF)

    # The declared edges between (and within) services hold, each as often as the route says.
    edges = Counter(
        (service_of(by_id[s.parent.span_id]), by_id[s.parent.span_id].name, service_of(s), s.name)
        for s in spans
        if s.parent is not None
    )
    for edge in EXPECTED_EDGES:
        key = (edge.parent_service, services.name(edge.parent), edge.child_service, services.name(edge.child))
        if edge.at_least:
            assert edges[key] >= edge.count, (edge, edges[key])
        else:
            assert edges[key] == edge.count, (edge, edges[key])

    # Producer and consumer spans carry the dossier's attributes, each in its own service's name.
    for span in spans:
        if span.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
            assert attr(span, telemetry.DOSSIER_ID) == dossier_id, span.name
            assert attr(span, telemetry.AGENCY) == AGENCY_OF[service_of(span)], span.name
            assert str(attr(span, telemetry.EVENT_TYPE)).startswith("vn.gov."), span.name
    handoffs = [s for s in spans if s.name == services.name("handoffs.land_registry process")]
    assert sorted(str(attr(s, telemetry.ACTION)) for s in handoffs) == ["appraise", "issue_certificate"]
    assert all(attr(s, telemetry.BUDGET_DAYS) and attr(s, telemetry.DUE_AT) for s in handoffs)
    received = [
        s
        for s in spans
        if service_of(s) == "notification" and attr(s, telemetry.EVENT_TYPE) == DossierReceived.TYPE
    ]
    assert [attr(s, telemetry.HANDLING) for s in received] == ["processed"]
    notices = [s for s in spans if attr(s, telemetry.EVENT_TYPE) == PaymentNoticeIssued.TYPE]
    assert {(service_of(s), attr(s, telemetry.HANDLING)) for s in notices if s.kind is SpanKind.CONSUMER} == {
        ("notification", "processed"),
        ("intake", "ignored"),
    }

    # Every service's queries are in the trace, under the span that ran them.
    assert {service_of(s) for s in spans if attr(s, "db.system.name") == "postgresql"} == set(AGENCY_OF)

    # The payment request has its own trace; the desk's work on it is in the dossier's, linked.
    (payment_work,) = [s for s in spans if s.name == "record payment"]
    (link,) = payment_work.links
    (request,) = [s for s in services.spans() if s.context.span_id == link.context.span_id]
    assert request.name == "POST /dossiers/{dossier_id}/payments"
    assert request.kind is SpanKind.SERVER
    assert request.context.trace_id != trace_id

    # The handoff latency was measured where the dossier was taken in.
    async with services.client("land_registry") as client:
        metrics = (await client.get("/metrics")).text
    assert (
        'dossier_handoff_latency_seconds_count{consumer="land_registry.handoffs",'
        'event_type="vn.gov.dossier.handed_over.v1"} 2.0' in metrics
    )
    assert 'dossier_records_total{consumer="land_registry.handoffs",handling="processed"} 2.0' in metrics
    assert "dossier_outbox_unpublished_rows" in metrics
    assert "dossier_outbox_oldest_unpublished_age_seconds" in metrics
    assert "faststream_received_messages_total" in metrics
    assert 'dossier_consumer_lag_records{consumer="land_registry.handoffs",partition=' in metrics


async def test_the_deadline_watcher_continues_the_dossiers_trace(services: Services) -> None:
    # Only the desk: nobody answers its handoff, and virtual time runs past the deadline.
    start = datetime.now(UTC)
    clock = VirtualClock(start)
    await services.start("intake", intake_clock=clock)
    async with services.client("intake") as client:
        response = await client.post("/dossiers", json=land_transfer(78))
        assert response.status_code == 201, response.text
        dossier_id = response.json()["id"]
        clock.set(start + timedelta(days=30))
        await services.wait_for(
            "the overdue step published",
            lambda spans: any(
                s.kind is SpanKind.PRODUCER
                and attr(s, telemetry.EVENT_TYPE) == StepOverdue.TYPE
                and attr(s, telemetry.DOSSIER_ID) == dossier_id
                for s in spans
            ),
        )
        metrics = (await client.get("/metrics")).text

    (receipt,) = [s for s in services.spans() if s.name == "POST /dossiers"]
    alarms = [s for s in services.spans() if s.name == "deadline alarm"]
    assert alarms
    for alarm in alarms:
        # A child of the dossier's receipt, in its trace; no link (nothing else caused it).
        assert alarm.context.trace_id == receipt.context.trace_id
        assert alarm.parent is not None
        assert alarm.parent.span_id == receipt.context.span_id
        assert list(alarm.links) == []
        assert attr(alarm, telemetry.DOSSIER_ID) == dossier_id
        assert attr(alarm, telemetry.STEP_AGENCY) == LAND_REGISTRY
        assert attr(alarm, telemetry.ACTION) == "appraise"
        late_by = attr(alarm, telemetry.LATE_BY_DAYS)
        assert isinstance(late_by, float)
        assert late_by > 0
    (overdue,) = [
        s
        for s in services.spans()
        if s.kind is SpanKind.PRODUCER and attr(s, telemetry.EVENT_TYPE) == StepOverdue.TYPE
    ]
    assert overdue.parent is not None
    assert overdue.parent.span_id in {a.context.span_id for a in alarms}
    assert 'dossier_steps_overdue_total{agency="land_registry"} 1.0' in metrics
    assert 'dossier_apologies_total{agency="land_registry"} 1.0' in metrics
