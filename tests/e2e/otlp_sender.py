"""A separate process sending one dossier's trace to an OTLP/HTTP endpoint, as a service would.

Two "services" (two resources, two tracer providers) make one trace: the desk's span, the
registry's child span carried over a W3C ``traceparent``, and a grandchild without the
dossier attribute (found through its trace, not its own attribute). Spans are exported with
the real OTLP/HTTP protobuf exporter, its headers from the standard variable a service would
set (``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>``); the exit code says whether
the endpoint accepted them.

    OTEL_EXPORTER_OTLP_HEADERS=... python tests/e2e/otlp_sender.py ENDPOINT DOSSIER_ID
    → prints the trace id; exit 0 if exported, 1 if the endpoint refused
"""

from __future__ import annotations

import argparse
import sys

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

DESK = "probe-desk"
REGISTRY = "probe-registry"


def main(argv: list[str] | None = None) -> int:
    """Record the spans, then export them in one OTLP request."""
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("dossier_id")
    args = parser.parse_args(argv)

    recorded = InMemorySpanExporter()
    providers = {}
    for name in (DESK, REGISTRY):
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(SimpleSpanProcessor(recorded))
        providers[name] = provider

    desk = providers[DESK].get_tracer("probe")
    registry = providers[REGISTRY].get_tracer("probe")
    carrier: dict[str, str] = {}
    with desk.start_as_current_span(
        "POST /dossiers", kind=trace.SpanKind.SERVER, attributes={"dossier.id": args.dossier_id}
    ) as root:
        with desk.start_as_current_span("publish handoffs.land_registry", kind=trace.SpanKind.PRODUCER):
            propagate.inject(carrier)  # what travels in the Kafka headers
        trace_id = format(root.get_span_context().trace_id, "032x")
    with (
        registry.start_as_current_span(
            "appraise",
            context=propagate.extract(carrier),
            kind=trace.SpanKind.CONSUMER,
            attributes={"dossier.id": args.dossier_id, "dossier.agency": "land_registry", "dossier.step": 1},
        ),
        registry.start_as_current_span("land price lookup") as lookup,
    ):
        lookup.set_attribute("db.system", "postgresql")

    exporter = OTLPSpanExporter(endpoint=args.endpoint, timeout=10)  # headers from the environment
    result = exporter.export(recorded.get_finished_spans())
    print(trace_id)
    return 0 if result is SpanExportResult.SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main())
