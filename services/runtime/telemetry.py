"""Traces and metrics of a service: OpenTelemetry configured by ``OTEL_*``, Prometheus on ``/metrics``.

One trace per dossier. The citizen's ``POST /dossiers`` starts it; every event written to the
outbox carries the W3C ``traceparent`` of the work that wrote it (``UnitOfWork.publish``); the
relay publishes each row in a PRODUCER span that is a child of that stored context (never of
the relay's own background task), and FastStream's telemetry middleware makes the reading
service's ``<topic> process`` span a child of it. Work that does not start from a Kafka record
continues the trace stored with the dossier (``intake.dossiers.trace_context``):

- the deadline watcher's ``deadline alarm`` span is a *child* of the stored context;
- a later request about the dossier (``POST /dossiers/{id}/payments``, supplements) has its own
  HTTP server span in the request's own trace; the desk's work on it (``record payment``, ...)
  is a child of the stored context with a *link* to that server span.

Exporters, from the standard variables (nothing set: spans are made and propagated, not exported):

- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` or ``none`` (comma-separated); unset means
  ``otlp`` when an OTLP endpoint is set, else ``none``.
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or ``..._TRACES_PROTOCOL``): ``http/protobuf`` (default) or ``grpc``.
- ``OTEL_EXPORTER_OTLP_ENDPOINT``: base URL, e.g. ``http://127.0.0.1:8080`` for the operator
  console; over HTTP ``/v1/traces`` is added. ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as is.
  Defaults when only the exporter is named: ``http://localhost:4318/v1/traces``, gRPC ``:4317``.

Spans leave through a batch processor on its own thread: a collector that is down costs log
lines and dropped spans, never a failed request or a stuck consumer. ``OTEL_SDK_DISABLED=true``
turns tracing off; ``OTEL_RESOURCE_ATTRIBUTES`` adds resource attributes. ``service.name`` is the
service's own name whatever ``OTEL_SERVICE_NAME`` says, so one environment can serve every service.

Domain attributes use one prefix, ``dossier.``; the registry is ``telemetry_attributes.md``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from asyncpg.connection import LoggedQuery
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.runtime.settings import ConfigurationError

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

# --- the attribute registry (kept in step with telemetry_attributes.md by a unit test) -------------

PREFIX: Final = "dossier."
DOSSIER_ID: Final = "dossier.id"
EVENT_TYPE: Final = "dossier.event_type"
EVENT_ID: Final = "dossier.event_id"
AGENCY: Final = "dossier.agency"
PROCEDURE: Final = "dossier.procedure"
STEP: Final = "dossier.step"
ACTION: Final = "dossier.action"
STEP_AGENCY: Final = "dossier.step_agency"
BUDGET_DAYS: Final = "dossier.budget_days"
DUE_AT: Final = "dossier.due_at"
LATE_BY_DAYS: Final = "dossier.late_by_days"
OUTCOME: Final = "dossier.outcome"
STATUS: Final = "dossier.status"
CONSUMER: Final = "dossier.consumer"
HANDLING: Final = "dossier.handling"
DEAD_LETTER_REASON: Final = "dossier.dead_letter_reason"

ATTRIBUTES: Final[dict[str, type]] = {
    DOSSIER_ID: str,
    EVENT_TYPE: str,
    EVENT_ID: str,
    AGENCY: str,
    PROCEDURE: str,
    STEP: int,
    ACTION: str,
    STEP_AGENCY: str,
    BUDGET_DAYS: float,
    DUE_AT: datetime,
    LATE_BY_DAYS: float,
    OUTCOME: str,
    STATUS: str,
    CONSUMER: str,
    HANDLING: str,
    DEAD_LETTER_REASON: str,
}
"""Every domain attribute a span may carry, with its value type (datetime: ISO 8601 string, UTC)."""

_EVENT_FIELDS: Final = {
    "dossier_id": DOSSIER_ID,
    "procedure_code": PROCEDURE,
    "step_index": STEP,
    "action": ACTION,
    "to_agency": STEP_AGENCY,  # a handoff: the agency that must do the step
    "agency": STEP_AGENCY,  # a step completed, overdue or escalated: the agency concerned
    "budget_days": BUDGET_DAYS,
    "due_at": DUE_AT,
    "outcome": OUTCOME,
    "status": STATUS,
}
"""Event fields that become span attributes, whichever event carries them."""


def attribute(name: str, value: object) -> AttributeValue:
    """``value`` as the registered type of attribute ``name`` (a time as ISO 8601 in UTC)."""
    kind = ATTRIBUTES[name]
    if kind is datetime:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.astimezone(UTC).isoformat()
    if kind is str:
        return str(value)
    if kind is int:
        return int(str(value))
    return float(value) if isinstance(value, int | float | Decimal) else float(str(value))


def event_attributes(fields: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Domain attributes of an event, from its fields (a model's, or the JSON of an outbox row)."""
    found: dict[str, AttributeValue] = {}
    for field_name, name in _EVENT_FIELDS.items():
        value = fields.get(field_name)
        if value is not None and not isinstance(value, dict | list):
            found[name] = attribute(name, value)
    return found


# --- configuration --------------------------------------------------------------------------------

EXPORTERS: Final = ("otlp", "console")
PROTOCOLS: Final = ("http/protobuf", "grpc")


@dataclass(frozen=True)
class TelemetrySettings:
    """Where spans go, read from the standard ``OTEL_*`` variables."""

    exporters: tuple[str, ...]
    """``otlp`` and/or ``console``; empty: spans are not exported (but still propagated)."""
    protocol: str
    endpoint: str
    """The OTLP traces endpoint the exporter sends to (a full URL for HTTP)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TelemetrySettings:
        """Parse the variables; a misspelt exporter or protocol is an error at start, not silence."""
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
        if not chosen:
            # The spec's default is otlp to localhost; we export only where someone said to.
            chosen = "otlp" if base or traces else "none"
        names = tuple(n.strip() for n in chosen.split(",") if n.strip() and n.strip() != "none")
        unknown = [n for n in names if n not in EXPORTERS]
        if unknown:
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER={chosen!r}: unknown {', '.join(unknown)} (use otlp, console or none)"
            )
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
            or "http/protobuf"
        )
        if protocol not in PROTOCOLS:
            raise ConfigurationError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use http/protobuf or grpc")
        if traces:
            endpoint = traces
        elif protocol == "grpc":
            endpoint = base or "http://localhost:4317"
        else:
            endpoint = (base or "http://localhost:4318").rstrip("/") + "/v1/traces"
        return cls(exporters=names, protocol=protocol, endpoint=endpoint)

    def span_exporters(self) -> list[SpanExporter]:
        """The configured exporters (other OTLP settings, headers and timeouts, come from env)."""
        exporters: list[SpanExporter] = []
        for name in self.exporters:
            if name == "console":
                exporters.append(ConsoleSpanExporter())
            elif self.protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

                exporters.append(Grpc(endpoint=self.endpoint))
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

                exporters.append(Http(endpoint=self.endpoint))
        return exporters


# --- the service's telemetry ----------------------------------------------------------------------

HANDOFF_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)


class Telemetry:
    """A service's tracer provider and Prometheus registry, with the metrics every service has.

    Each service has its own provider and registry rather than the process-wide globals, so
    several services can run in one process (the tracing test does) and still be told apart.
    """

    def __init__(self, *, service: str, tracer_provider: TracerProvider, registry: CollectorRegistry) -> None:
        self.service = service
        self.tracer_provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("services.runtime")
        self.registry = registry
        self.handoff_latency = Histogram(
            "dossier_handoff_latency_seconds",
            "From an event's ce_time (the time of the transaction that wrote it) to the commit of"
            " the transaction that handled it here.",
            ["consumer", "event_type"],
            buckets=HANDOFF_BUCKETS,
            registry=registry,
        )
        self.records = Counter(
            "dossier_records",
            "Kafka records by what the consumer did with them.",
            ["consumer", "handling"],
            registry=registry,
        )
        self.outbox_unpublished = Gauge(
            "dossier_outbox_unpublished_rows", "Outbox rows not yet published to Kafka.", registry=registry
        )
        self.outbox_oldest_age = Gauge(
            "dossier_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none).",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "dossier_consumer_lag_records",
            "Records on a partition not yet taken by this service's consumer (last known high water).",
            ["consumer", "topic", "partition"],
            registry=registry,
        )

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str]) -> Telemetry:
        """Provider with ``service.name`` = ``service`` and the exporters the variables ask for."""
        settings = TelemetrySettings.from_env(env)
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service, "service.namespace": "dossier-routing"})
        )
        for exporter in settings.span_exporters():
            provider.add_span_processor(BatchSpanProcessor(exporter))
        if settings.exporters:
            exporting = ",".join(settings.exporters)
            log.info("%s: exporting traces (%s) to %s", service, exporting, settings.endpoint)
        return cls(service=service, tracer_provider=provider, registry=CollectorRegistry())

    def broker_middlewares(self) -> tuple[KafkaTelemetryMiddleware, KafkaPrometheusMiddleware]:
        """FastStream's tracing (W3C context from record headers) and Prometheus middlewares."""
        return (
            KafkaTelemetryMiddleware(tracer_provider=self.tracer_provider),
            KafkaPrometheusMiddleware(registry=self.registry, app_name=self.service),
        )

    def instrument(self, app: FastAPI) -> None:
        """Trace the app's HTTP requests (server spans), except the operators' polling endpoints."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.tracer_provider,
            excluded_urls="/health,/metrics,/clock,/backlog,/consumed",
            exclude_spans=["receive", "send"],
        )

    def record_query(self, query: LoggedQuery) -> None:
        """An asyncpg query logger: one CLIENT span per query, under the span that ran it.

        asyncpg calls it with the context of the task that ran the query. Queries outside any
        span (the relay's and the watcher's polling, health checks) are not traced: they
        would each start a trace of their own.
        """
        parent = trace.get_current_span()
        if not parent.get_span_context().is_valid:
            return
        end = time.time_ns()
        text = query.query.strip()
        operation = text.split(None, 1)[0].upper() if text else "QUERY"
        params = query.conn_params
        span = self.tracer.start_span(
            operation,
            kind=SpanKind.CLIENT,
            start_time=end - int(query.elapsed * 1e9),
            attributes={
                "db.system.name": "postgresql",
                "db.operation.name": operation,
                "db.query.text": text[:2000],  # the statement only: arguments may be personal data
                "db.namespace": str(getattr(params, "database", "") or ""),
            },
        )
        if query.exception is not None:
            span.set_status(Status(StatusCode.ERROR, type(query.exception).__name__))
        span.end(end_time=end)

    async def flush(self, timeout_seconds: float = 5.0) -> None:
        """Send what is buffered, in a thread and bounded: a collector that is down must not hang a stop."""
        try:
            async with asyncio.timeout(timeout_seconds + 1):
                await asyncio.to_thread(self.tracer_provider.force_flush, int(timeout_seconds * 1000))
        except TimeoutError:
            log.warning("%s: spans not flushed within %.0f s", self.service, timeout_seconds)


# --- continuing a dossier's trace -----------------------------------------------------------------


def trace_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``...), to store with a dossier."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def continue_trace(
    tracer: trace.Tracer, name: str, carrier: Mapping[str, str], attributes: Mapping[str, AttributeValue]
) -> Iterator[Span]:
    """A span that is a child of the context stored in ``carrier`` (a dossier's trace).

    If a span is current (an HTTP request's), the new span links to it: the request keeps its
    own trace and the dossier's trace says which request caused this work.
    """
    current = trace.get_current_span().get_span_context()
    with tracer.start_as_current_span(
        name,
        context=propagate.extract(dict(carrier)),
        links=[Link(current)] if current.is_valid else [],
        attributes=attributes,
    ) as span:
        yield span
