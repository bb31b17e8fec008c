"""OTLP trace exports, as SDK exporters send them, parsed into the spans the console keeps."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from services.console.domain.spans import JSON, PROTOBUF, OtlpError, export_response, parse_export


def recorded_spans() -> list[ReadableSpan]:
    """A desk span with a child from another service, linked and failed, as the SDK records them."""
    recorded = InMemorySpanExporter()
    providers = []
    for name in ("intake", "tax"):
        provider = TracerProvider(resource=Resource.create({"service.name": name, "host.name": "h1"}))
        provider.add_span_processor(SimpleSpanProcessor(recorded))
        providers.append(provider)
    desk, tax = (p.get_tracer("test") for p in providers)
    with desk.start_as_current_span(
        "POST /dossiers", kind=trace.SpanKind.SERVER, attributes={"dossier.id": "HS-1", "http.status": 201}
    ) as root:
        root_context = root.get_span_context()
        with tax.start_as_current_span(
            "assess",
            kind=trace.SpanKind.CONSUMER,
            links=[Link(root_context, {"messaging.batch": True})],
            attributes={
                "dossier.id": "HS-1",
                "dossier.step": 2,
                "dossier.ratio": 0.5,
                "dossier.documents": ["A", "B"],
            },
        ) as child:
            child.add_event("notice issued", {"total_vnd": 37_500_000})
            child.set_status(Status(StatusCode.ERROR, "tax table missing"))
    return list(recorded.get_finished_spans())


def protobuf_body(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def test_protobuf_export_from_the_sdk() -> None:
    spans = recorded_spans()
    parsed = parse_export(protobuf_body(spans), PROTOBUF)
    assert parsed.rejected == 0
    by_name = {s.name: s for s in parsed.spans}
    root, child = by_name["POST /dossiers"], by_name["assess"]
    sdk_root = next(s for s in spans if s.name == "POST /dossiers")
    assert sdk_root.context is not None
    assert root.trace_id == format(sdk_root.context.trace_id, "032x")
    assert root.span_id == format(sdk_root.context.span_id, "016x")
    assert root.parent_span_id is None
    assert child.trace_id == root.trace_id
    assert child.parent_span_id == root.span_id
    assert (root.service_name, child.service_name) == ("intake", "tax")
    assert root.resource_attributes["host.name"] == "h1"
    assert (root.kind, child.kind) == ("SERVER", "CONSUMER")
    assert root.dossier_id == child.dossier_id == "HS-1"
    assert root.attributes["http.status"] == 201
    assert child.attributes["dossier.ratio"] == 0.5
    assert child.attributes["dossier.documents"] == ["A", "B"]
    assert (child.status_code, child.status_message) == ("ERROR", "tax table missing")
    assert root.status_code == "UNSET"
    assert child.links == [
        {"trace_id": root.trace_id, "span_id": root.span_id, "attributes": {"messaging.batch": True}}
    ]
    assert child.events[0]["name"] == "notice issued"
    assert child.events[0]["attributes"] == {"total_vnd": 37_500_000}
    assert sdk_root.start_time is not None
    assert root.start_unix_nano == sdk_root.start_time
    assert root.end_unix_nano >= root.start_unix_nano
    assert root.start.tzinfo is not None


def test_json_export_uses_hex_ids_and_protobuf_json_for_the_rest() -> None:
    # Shaped as the OTLP specification's JSON example: hex ids, camelCase, int64 as strings,
    # enums as numbers; plus a field this receiver does not know, which must be ignored.
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "land_registry"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual", "version": "1.0"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "EEE19B7EC3C1B173",
                                "name": "appraise",
                                "kind": 5,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {"key": "dossier.id", "value": {"stringValue": "HS-2"}},
                                    {"key": "dossier.step", "value": {"intValue": "1"}},
                                    {"key": "dossier.urgent", "value": {"boolValue": True}},
                                    {
                                        "key": "dossier.parcel",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "ward", "value": {"stringValue": "phuong-3"}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "status": {"code": 1},
                                "links": [
                                    {
                                        "traceId": "00000000000000000000000000000001",
                                        "spanId": "0000000000000002",
                                    }
                                ],
                                "somethingNewer": {"x": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    parsed = parse_export(json.dumps(body).encode(), "application/json; charset=utf-8")
    [span] = parsed.spans
    assert span.trace_id == "5b8efff798038103d269b633813fc60c"
    assert span.span_id == "eee19b7ec3c1b174"
    assert span.parent_span_id == "eee19b7ec3c1b173"
    assert span.service_name == "land_registry"
    assert span.scope_name == "manual"
    assert span.kind == "CONSUMER"
    assert span.status_code == "OK"
    assert span.start_unix_nano == 1544712660000000000
    assert (span.end - span.start).total_seconds() == 1
    assert span.dossier_id == "HS-2"
    assert span.attributes == {
        "dossier.id": "HS-2",
        "dossier.step": 1,
        "dossier.urgent": True,
        "dossier.parcel": {"ward": "phuong-3"},
    }
    assert span.links[0]["trace_id"] == "00000000000000000000000000000001"


def test_the_same_spans_read_alike_in_both_encodings() -> None:
    request = encode_spans(recorded_spans())
    as_json = json_format.MessageToDict(request)
    # Protobuf's JSON writes ids as base64; OTLP/JSON writes them as hex.
    for resource in as_json["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = _base64_to_hex(span[key])
                for link in span.get("links", []):
                    link["traceId"], link["spanId"] = (
                        _base64_to_hex(link["traceId"]),
                        _base64_to_hex(link["spanId"]),
                    )
    from_json = parse_export(json.dumps(as_json).encode(), JSON).spans
    from_protobuf = parse_export(request.SerializeToString(), PROTOBUF).spans
    assert from_json == from_protobuf


def _base64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def test_a_span_without_dossier_attribute_has_no_dossier() -> None:
    body: dict[str, Any] = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "relay",
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                            }
                        ]
                    }
                ]
            }
        ]
    }
    [span] = parse_export(json.dumps(body).encode(), JSON).spans
    assert span.dossier_id is None
    assert span.parent_span_id is None
    assert span.service_name == "unknown_service"  # no resource: the SDKs' own fallback name


def test_spans_with_invalid_ids_are_refused_and_reported() -> None:
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": "", "spanId": "b7ad6b7169203331", "name": "no trace"},
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad",
                                "name": "short",
                            },
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "ok",
                            },
                        ]
                    }
                ]
            }
        ]
    }
    parsed = parse_export(json.dumps(body).encode(), JSON)
    assert [s.name for s in parsed.spans] == ["ok"]
    assert parsed.rejected == 2
    response = ExportTraceServiceResponse()
    response.ParseFromString(export_response(parsed, PROTOBUF))
    assert response.partial_success.rejected_spans == 2
    assert "invalid" in response.partial_success.error_message
    assert json.loads(export_response(parsed, JSON))["partialSuccess"]["rejectedSpans"] == "2"


def test_a_complete_export_answers_an_empty_response() -> None:
    parsed = parse_export(protobuf_body(recorded_spans()), PROTOBUF)
    assert export_response(parsed, PROTOBUF) == b""
    assert json.loads(export_response(parsed, JSON)) == {}


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"\xff\xff\xff\xff", PROTOBUF, "not an ExportTraceServiceRequest"),
        (b"{not json", JSON, "malformed JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON, "not hex"),
        (b'{"resourceSpans": 3}', JSON, "not an OTLP/JSON"),
        (b'"AAA"', JSON, "not an OTLP/JSON"),
        (b"[]", JSON, "not an OTLP/JSON"),
        (b"x", "text/plain", "unsupported content type"),
    ],
)
def test_what_is_not_an_otlp_export_is_refused(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(OtlpError, match=message):
        parse_export(body, content_type)


def test_values_postgres_cannot_store_are_made_safe() -> None:
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "a\u0000b",
                                "attributes": [
                                    {"key": "nan", "value": {"doubleValue": "NaN"}},
                                    {"key": "bytes", "value": {"bytesValue": "AAE="}},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    [span] = parse_export(json.dumps(body).encode(), JSON).spans
    assert "\x00" not in span.name
    assert span.attributes == {"nan": "nan", "bytes": "0001"}
