"""The console's JSON API (``/api/…``) and its OTLP/HTTP trace receiver (``/v1/traces``)."""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BeforeValidator

from services.console.domain.on_time import Grouping, Period, Rate
from services.console.domain.spans import JSON, PROTOBUF, OtlpError, export_response, parse_export
from services.console.handlers import keep_spans
from services.console.queries import ConsoleQueries, OnTimeReport
from services.runtime.working_days import VIETNAM_TZ

log = logging.getLogger(__name__)

MAX_OTLP_BYTES = 8 * 1024 * 1024
"""Largest export accepted, compressed or not (an SDK's default batch is far smaller)."""


def to_json(value: Any) -> Any:
    """Times in Vietnam time (``+07:00``) as the other services return them; decimals as strings."""
    if isinstance(value, datetime):
        return value.astimezone(VIETNAM_TZ).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def iso_day(value: object) -> object:
    """Only ``YYYY-MM-DD`` is a day: pydantic alone would read ``0`` as 1970-01-01 (a timestamp)."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a day is written YYYY-MM-DD")
    return value


Day = Annotated[date | None, BeforeValidator(iso_day)]


def period_of(first_day: date | None, last_day: date | None) -> Period:
    """The period of ``from``/``to``; 422 when it ends before it starts."""
    try:
        return Period(first_day, last_day)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


def rate_json(rate: Rate) -> dict[str, Any]:
    """One rate: counts and the percentage on time (null when nothing was measured)."""
    percent = rate.percent
    return {
        "key": rate.key,
        "label": rate.label,
        "total": rate.total,
        "on_time": rate.on_time,
        "late": rate.late,
        "percent": None if percent is None else float(percent),
    }


def report_json(report: OnTimeReport) -> dict[str, Any]:
    """The on-time report as the API returns it."""
    return {
        "from": report.period.first_day.isoformat() if report.period.first_day else None,
        "to": report.period.last_day.isoformat() if report.period.last_day else None,
        "by": report.by.value,
        "measure": report.measure,
        "overall": rate_json(report.overall)
        | {"measure": "share of dossiers returned by their first promised date"},
        "groups": [rate_json(rate) for rate in report.groups],
    }


def api_router(queries: ConsoleQueries) -> APIRouter:
    """Read-only JSON for operators' tools (the pages use the same queries)."""
    router = APIRouter(prefix="/api", tags=["console"])

    @router.get("/dossiers", summary="Dossiers with status, promised date and lateness; search and filters")
    async def list_dossiers(
        q: Annotated[str, Query(max_length=200, description="dossier id, citizen name or id number")] = "",
        status: Annotated[str | None, Query(max_length=40)] = None,
        late: Annotated[bool | None, Query(description="true: late or overdue; false: the others")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        return [to_json(d) for d in await queries.dossiers(q=q, status=status, late=late, limit=limit)]

    @router.get(
        "/dossiers/{dossier_id}",
        summary="A dossier with its process-control slip",
        responses={404: {"description": "No such dossier in the console's read model"}},
    )
    async def read_dossier(dossier_id: str) -> dict[str, Any]:
        found = await queries.dossier(dossier_id)
        if found is None:
            raise HTTPException(404, f"no dossier {dossier_id}")
        return dict(to_json(found))

    @router.get(
        "/dossiers/{dossier_id}/trace", summary="Every span of the dossier's trace(s), in start order"
    )
    async def read_trace(dossier_id: str) -> dict[str, Any]:
        spans = await queries.trace(dossier_id)
        return {
            "dossier_id": dossier_id,
            "trace_ids": sorted({s["trace_id"] for s in spans}),
            "spans": [to_json(s) for s in spans],
        }

    @router.get("/on-time", summary="On-time rates over a period, by agency, procedure or level")
    async def on_time(
        first_day: Annotated[Day, Query(alias="from", description="first day, YYYY-MM-DD")] = None,
        last_day: Annotated[Day, Query(alias="to", description="last day, YYYY-MM-DD, included")] = None,
        by: Grouping = Grouping.AGENCY,
    ) -> dict[str, Any]:
        return report_json(await queries.on_time(period=period_of(first_day, last_day), by=by))

    @router.get("/overdue", summary="Steps found past their due time, newest first")
    async def overdue(open_only: Annotated[bool, Query(alias="open")] = False) -> list[dict[str, Any]]:
        return [to_json(o) for o in await queries.overdue(open_only=open_only)]

    @router.get(
        "/due-soon",
        summary="Steps warned when they entered their last working day, newest first",
        description="With open=true only the steps not completed since: the agency can still report a delay.",
    )
    async def due_soon(open_only: Annotated[bool, Query(alias="open")] = False) -> list[dict[str, Any]]:
        return [to_json(o) for o in await queries.overdue(open_only=open_only, due_soon=True)]

    @router.get(
        "/apologies",
        summary="Apology letters issued, newest first; kind is 'late' or the fault's kind",
    )
    async def apologies(agency: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        return [to_json(a) for a in await queries.apologies(agency=agency, kind=kind)]

    @router.get(
        "/satisfaction",
        summary="Citizens' ratings (SIPAS' five elements, 1 to 5) by agency or procedure",
    )
    async def satisfaction(by: Literal["agency", "procedure"] = "agency") -> list[dict[str, Any]]:
        return [to_json(r) for r in await queries.satisfaction(by=by)]

    @router.get("/escalations", summary="Rescheduled dossiers that slipped again")
    async def escalations() -> list[dict[str, Any]]:
        return [to_json(e) for e in await queries.escalations()]

    return router


def otlp_router(pool: Callable[[], asyncpg.Pool]) -> APIRouter:
    """``POST /v1/traces``: OTLP/HTTP, protobuf or JSON, optionally gzip-compressed."""
    router = APIRouter(tags=["telemetry"])

    @router.post(
        "/v1/traces",
        summary="OTLP/HTTP trace export (application/x-protobuf or application/json)",
        response_class=Response,
        responses={
            200: {"content": {PROTOBUF: {}, JSON: {}}, "description": "What was kept and refused"},
            400: {"description": "A body that is not an export in the declared content type"},
            413: {"description": f"An export over {MAX_OTLP_BYTES} bytes (compressed or not)"},
            415: {"description": "A Content-Encoding other than gzip or none"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "An ExportTraceServiceRequest (OTLP/HTTP), gzip-compressed or not",
                "content": {
                    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                    JSON: {"schema": {"type": "object"}},
                },
            }
        },
    )
    async def receive_traces(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_OTLP_BYTES:
            raise HTTPException(413, f"export larger than {MAX_OTLP_BYTES} bytes")
        body = await request.body()
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        try:
            body = _decompress(body, encoding)
            export = parse_export(body, content_type)
        except OtlpError as exc:
            raise HTTPException(400, str(exc)) from exc
        except UnsupportedEncoding as exc:
            raise HTTPException(415, str(exc)) from exc
        await keep_spans(pool(), export)
        if export.rejected:
            log.warning("OTLP export: %d span(s) refused: %s", export.rejected, export.error_message)
        return Response(export_response(export, content_type), media_type=content_type.split(";")[0])

    return router


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` the receiver does not decode."""


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        data = body
    elif encoding == "gzip":
        try:
            # Bounded: a small bomb must not expand into memory without limit.
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = decompressor.decompress(body, MAX_OTLP_BYTES + 1)
        except zlib.error as exc:
            raise OtlpError(f"bad gzip body: {exc}") from exc
    else:
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} not supported (use gzip or none)")
    if len(data) > MAX_OTLP_BYTES:
        raise OtlpError(f"export larger than {MAX_OTLP_BYTES} bytes once decompressed")
    return data
