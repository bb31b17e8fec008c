"""OTLP trace export requests (protobuf or JSON) turned into flat spans the console keeps.

OTLP/HTTP sends ``ExportTraceServiceRequest``: resources, each with scopes, each with spans.
The console keeps one row per span with its resource's ``service.name`` and, when the span
carries it, the dossier it is about (the ``dossier.id`` attribute: every domain attribute the
services set is under the ``dossier.`` prefix).

OTLP/JSON is the protobuf JSON mapping with two differences a plain protobuf JSON parser gets
wrong: trace and span ids are hex, not base64, and field names may be lowerCamelCase or the
original snake_case. Unknown fields must be ignored (the protocol grows).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

DOSSIER_ATTRIBUTE = "dossier.id"
"""The span attribute naming the dossier a span works on."""

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


class OtlpError(ValueError):
    """The request body is not an OTLP trace export of a supported encoding."""


@dataclass(frozen=True)
class Span:
    """One finished span, as stored: ids in lower-case hex, times in Unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service_name: str
    scope_name: str
    start_unix_nano: int
    end_unix_nano: int
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    status_code: str
    status_message: str
    links: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dossier_id(self) -> str | None:
        """The dossier this span works on, if it says so."""
        value = self.attributes.get(DOSSIER_ATTRIBUTE)
        return None if value is None or value == "" else str(value)

    @property
    def start(self) -> datetime:
        """Start time (microsecond precision; the nanoseconds stay in ``start_unix_nano``)."""
        return from_unix_nano(self.start_unix_nano)

    @property
    def end(self) -> datetime:
        """End time."""
        return from_unix_nano(self.end_unix_nano)


@dataclass(frozen=True)
class ParsedExport:
    """The spans of one request, and how many were refused (bad ids) with why."""

    spans: list[Span]
    rejected: int = 0
    error_message: str = ""


def from_unix_nano(nanos: int) -> datetime:
    """A timestamp from Unix nanoseconds, in UTC."""
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def parse_export(body: bytes, content_type: str) -> ParsedExport:
    """Decode an OTLP/HTTP trace export body of ``content_type`` (protobuf or JSON)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    request = ExportTraceServiceRequest()
    if media_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpError(f"not an ExportTraceServiceRequest: {exc}") from exc
    elif media_type == JSON:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OtlpError(f"malformed JSON: {exc}") from exc
        if not isinstance(document, dict):
            # ParseDict would take a string or a number for an empty export.
            raise OtlpError(f"not an OTLP/JSON trace export: a JSON {type(document).__name__}, not an object")
        try:
            json_format.ParseDict(_hex_ids_as_base64(document), request, ignore_unknown_fields=True)
        except (json_format.ParseError, TypeError, AttributeError) as exc:
            raise OtlpError(f"not an OTLP/JSON trace export: {exc}") from exc
    else:
        raise OtlpError(f"unsupported content type {content_type!r}: send {PROTOBUF} or {JSON}")
    return _flatten(request)


def export_response(parsed: ParsedExport, content_type: str) -> bytes:
    """The success body in the request's encoding, with ``partial_success`` when spans were refused."""
    response = ExportTraceServiceResponse()
    if parsed.rejected:
        response.partial_success.rejected_spans = parsed.rejected
        response.partial_success.error_message = parsed.error_message
    if content_type.split(";", 1)[0].strip().lower() == JSON:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return response.SerializeToString()


def _flatten(request: ExportTraceServiceRequest) -> ParsedExport:
    spans: list[Span] = []
    rejected = 0
    problems: list[str] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service_name = str(resource.get("service.name") or "unknown_service")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
                if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id):
                    rejected += 1
                    problems.append(f"span {span.name!r}: invalid trace or span id")
                    continue
                spans.append(
                    Span(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=_text(span.name),
                        kind=_kind(span.kind),
                        service_name=_text(service_name),
                        scope_name=_text(scope_spans.scope.name),
                        start_unix_nano=span.start_time_unix_nano,
                        end_unix_nano=max(span.end_time_unix_nano, span.start_time_unix_nano),
                        attributes=_attributes(span.attributes),
                        resource_attributes=resource,
                        status_code=_status(span.status.code),
                        status_message=_text(span.status.message),
                        links=[
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": _attributes(link.attributes),
                            }
                            for link in span.links
                        ],
                        events=[
                            {
                                "name": _text(event.name),
                                "time_unix_nano": event.time_unix_nano,
                                "attributes": _attributes(event.attributes),
                            }
                            for event in span.events
                        ],
                    )
                )
    return ParsedExport(spans=spans, rejected=rejected, error_message="; ".join(problems[:5]))


def _kind(kind: ProtoSpan.SpanKind.ValueType) -> str:
    name = ProtoSpan.SpanKind.Name(kind) if kind in ProtoSpan.SpanKind.values() else "SPAN_KIND_UNSPECIFIED"
    return name.removeprefix("SPAN_KIND_")


def _status(code: Status.StatusCode.ValueType) -> str:
    name = Status.StatusCode.Name(code) if code in Status.StatusCode.values() else "STATUS_CODE_UNSET"
    return name.removeprefix("STATUS_CODE_")


def _attributes(pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[_text(pair.key)] = _value(pair.value)
    return result


def _value(value: AnyValue) -> Any:
    """An attribute value as JSON (Postgres JSONB takes no NaN and no NUL character)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _text(value.string_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def _text(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _hex_ids_as_base64(node: Any) -> Any:
    """OTLP/JSON's hex ids rewritten to protobuf JSON's base64 bytes, everywhere they occur."""
    if isinstance(node, list):
        return [_hex_ids_as_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ID_FIELDS and isinstance(value, str):
            try:
                value = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError as exc:
                raise OtlpError(f"{key} {value!r} is not hex") from exc
        else:
            value = _hex_ids_as_base64(value)
        converted[key] = value
    return converted
