"""Telemetry configuration, the attribute registry, and the spans made without Kafka or SQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from asyncpg.connection import LoggedQuery
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from contracts.agencies import ONE_STOP
from contracts.events import Applicant, DossierHandedOver
from services.runtime import telemetry
from services.runtime.outbox_relay import OutboxRelay, _headers
from services.runtime.settings import ConfigurationError
from services.runtime.telemetry import Telemetry, TelemetrySettings, continue_trace, trace_carrier
from tests.dossier_samples import applicant

REGISTRY_FILE = Path(telemetry.__file__).with_name("telemetry_attributes.md")
WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("env", "exporters", "protocol", "endpoint"),
    [
        # Nothing set: spans are made and propagated, but sent nowhere (no connection errors).
        ({}, (), "http/protobuf", "http://localhost:4318/v1/traces"),
        # An endpoint alone turns OTLP/HTTP on; the signal path is added to a base URL.
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:8080/"},
            ("otlp",),
            "http/protobuf",
            "http://127.0.0.1:8080/v1/traces",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            ("otlp",),
            "grpc",
            "http://collector:4317",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:8080/v1/traces",
            },
            ("otlp",),
            "http/protobuf",
            "http://127.0.0.1:8080/v1/traces",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
            (),
            "http/protobuf",
            "http://localhost:4318/v1/traces",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",), "http/protobuf", "http://localhost:4318/v1/traces"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            ("otlp",),
            "grpc",
            "http://localhost:4317",
        ),
        ({"OTEL_TRACES_EXPORTER": "Console, otlp"}, ("console", "otlp"), "http/protobuf", None),
        # "none" wins over an endpoint: an operator can switch export off without unsetting it.
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, (), None, None),
    ],
)
def test_exporter_settings_follow_the_otel_variables(
    env: dict[str, str], exporters: tuple[str, ...], protocol: str | None, endpoint: str | None
) -> None:
    settings = TelemetrySettings.from_env(env)
    assert settings.exporters == exporters
    if protocol is not None:
        assert settings.protocol == protocol
    if endpoint:
        assert settings.endpoint == endpoint


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_EXPORTER": "jaeger"},
        {"OTEL_TRACES_EXPORTER": "otlp,zipkin"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
    ],
)
def test_a_misspelt_exporter_or_protocol_is_refused_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="OTEL_"):
        TelemetrySettings.from_env(env)


def test_span_exporters_are_built_for_the_protocol() -> None:
    http = TelemetrySettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:8080"})
    grpc = TelemetrySettings.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )
    console = TelemetrySettings.from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert [type(e) for e in http.span_exporters()] == [HttpExporter]
    assert [type(e) for e in grpc.span_exporters()] == [GrpcExporter]
    assert [type(e) for e in console.span_exporters()] == [ConsoleSpanExporter]
    assert TelemetrySettings.from_env({}).span_exporters() == []


def test_service_name_is_the_service_whatever_otel_service_name_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shared-name")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=training")
    resource = Telemetry.from_env("tax", {}).tracer_provider.resource
    assert resource.attributes["service.name"] == "tax"
    assert resource.attributes["deployment.environment"] == "training"


async def test_a_collector_that_is_down_fails_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A closed port: the export fails in the processor's thread, the span and the flush do not.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # the exporter gives up sooner
    service = Telemetry.from_env("tax", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    with service.tracer.start_as_current_span("work"):
        pass
    await service.flush(timeout_seconds=1)
    service.tracer_provider.shutdown()


# --- the attribute registry ------------------------------------------------------------------------


def documented_attributes() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z_.]+)` \| (\w+) \|", REGISTRY_FILE.read_text(), flags=re.MULTILINE)
    return dict(rows)


def test_every_attribute_is_documented_once_with_its_type_and_one_prefix() -> None:
    otel_type = {str: "string", int: "int", float: "double", datetime: "string"}
    documented = documented_attributes()
    assert documented == {name: otel_type[kind] for name, kind in telemetry.ATTRIBUTES.items()}
    assert all(name.startswith(telemetry.PREFIX) for name in telemetry.ATTRIBUTES)
    constants = {
        v for k, v in vars(telemetry).items() if k.isupper() and isinstance(v, str) and v != "dossier."
    }
    assert {c for c in constants if c.startswith(telemetry.PREFIX)} == set(telemetry.ATTRIBUTES)


def handover() -> DossierHandedOver:
    return DossierHandedOver(
        dossier_id="HS-T-1",
        procedure_code="LAND-TRANSFER",
        step_index=1,
        from_agency=ONE_STOP,
        to_agency="land_registry",
        action="appraise",
        budget_days=Decimal("3.5"),
        sent_at=WHEN,
        due_at=WHEN,
        applicant=Applicant.model_validate(applicant(1)),
        details={"parcel": {"ward": "phuong-3"}},
    )


def test_event_attributes_are_the_same_from_the_model_and_from_the_outbox_json() -> None:
    event = handover()
    from_model = telemetry.event_attributes(dict(event))
    from_json = telemetry.event_attributes(json.loads(event.model_dump_json()))
    assert (
        from_model
        == from_json
        == {
            telemetry.DOSSIER_ID: "HS-T-1",
            telemetry.PROCEDURE: "LAND-TRANSFER",
            telemetry.STEP: 1,
            telemetry.ACTION: "appraise",
            telemetry.STEP_AGENCY: "land_registry",
            telemetry.BUDGET_DAYS: 3.5,
            telemetry.DUE_AT: "2026-03-09T01:00:00+00:00",
        }
    )


# --- spans made by the runtime -----------------------------------------------------------------------


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def traced() -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_the_relay_span_is_a_child_of_the_stored_context_and_travels_in_the_headers() -> None:
    tracer, exporter = traced()
    with tracer.start_as_current_span("receipt") as receipt:
        stored = trace_carrier()
    event = handover()
    row = {
        "topic": "handoffs.land_registry",
        "key": event.dossier_id.encode(),
        "value": event.model_dump_json().encode(),
        "headers": json.dumps([["ce_id", "e-1"], ["ce_type", event.TYPE], *stored.items()]),
    }
    relay = OutboxRelay(
        pool=cast(Any, None),
        producer=cast(Any, None),
        schema="intake",
        channel="outbox_intake",
        topic_prefix="staging.",
        agency=ONE_STOP,
        tracer=tracer,
    )
    # In another "task": no span is current, as in the relay's background loop.
    span = relay._publish_span(cast(Any, row))
    headers = dict(_headers(cast(Any, row), span))
    span.end()
    (published,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert published.name == "staging.handoffs.land_registry publish"
    assert published.context.trace_id == receipt.get_span_context().trace_id
    assert parent_id(published) == receipt.get_span_context().span_id
    assert headers["traceparent"].decode().split("-")[2] == f"{published.context.span_id:016x}"
    assert headers["ce_id"] == b"e-1"
    assert published.attributes is not None
    assert published.attributes[telemetry.AGENCY] == ONE_STOP
    assert published.attributes[telemetry.EVENT_TYPE] == event.TYPE
    assert published.attributes[telemetry.STEP_AGENCY] == "land_registry"


def test_a_row_written_without_tracing_keeps_its_headers() -> None:
    row = {
        "headers": json.dumps([["ce_id", "e-1"], ["traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01"]])
    }
    headers = dict(_headers(cast(Any, row), trace.INVALID_SPAN))
    assert headers["traceparent"] == ("00-" + "1" * 32 + "-" + "2" * 16 + "-01").encode()


def test_continue_trace_is_a_child_of_the_dossier_and_links_to_the_request() -> None:
    tracer, exporter = traced()
    with tracer.start_as_current_span("POST /dossiers") as receipt:
        stored = trace_carrier()
    with (
        tracer.start_as_current_span("POST /dossiers/{dossier_id}/payments") as request,
        continue_trace(tracer, "record payment", stored, {telemetry.DOSSIER_ID: "HS-T-1"}),
    ):
        pass
    (work,) = [s for s in exporter.get_finished_spans() if s.name == "record payment"]
    assert work.context.trace_id == receipt.get_span_context().trace_id
    assert parent_id(work) == receipt.get_span_context().span_id
    assert [link.context.span_id for link in work.links] == [request.get_span_context().span_id]
    # Without a current span (the deadline watcher) it is a plain child, with no link.
    with continue_trace(tracer, "deadline alarm", stored, {}):
        pass
    (alarm,) = [s for s in exporter.get_finished_spans() if s.name == "deadline alarm"]
    assert parent_id(alarm) == receipt.get_span_context().span_id
    assert list(alarm.links) == []


def logged(query: str, *, exception: BaseException | None = None) -> LoggedQuery:
    return LoggedQuery(
        query=query,
        args=("secret",),
        timeout=None,
        elapsed=0.002,
        exception=exception,
        conn_addr=("127.0.0.1", 5432),
        conn_params=cast(Any, None),
    )


def test_queries_are_spans_under_the_current_span_only() -> None:
    exporter = InMemorySpanExporter()
    service = Telemetry.from_env("tax", {})
    service.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    service.record_query(logged("SELECT 1"))  # relay or watcher polling: no trace to join
    assert exporter.get_finished_spans() == ()
    with service.tracer.start_as_current_span("handoffs.tax process") as parent:
        service.record_query(logged("  insert into inbox VALUES ($1)"))
        service.record_query(logged("UPDATE x", exception=TimeoutError()))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["INSERT"].parent is not None
    assert spans["INSERT"].parent.span_id == parent.get_span_context().span_id
    assert spans["INSERT"].kind is SpanKind.CLIENT
    assert spans["INSERT"].attributes is not None
    assert spans["INSERT"].attributes["db.query.text"] == "insert into inbox VALUES ($1)"
    assert "secret" not in json.dumps(dict(spans["INSERT"].attributes))
    assert spans["UPDATE"].status.status_code is StatusCode.ERROR
