"""The HTTP side every service shares: the app, its operations endpoints, body limits, documented statuses.

``create_service_app`` wraps a :class:`~services.runtime.service.ServiceRuntime` in a FastAPI app
whose lifespan starts and stops it, with ``/health``, ``/metrics``, ``/backlog``, ``/consumed``
and ``/clock``; on a virtual clock it honours a request's ``Event-Time`` (:class:`EventTime`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from services.runtime.access import AUTH_RESPONSES, Access, Role
from services.runtime.clock import REQUEST_EVENT_TIME, VirtualClock
from services.runtime.service import Schedule, ServiceRuntime
from services.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

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


class EventTime:
    """Serves a request carrying ``Event-Time`` at that time, on a virtual clock only.

    A replay does a recorded desk action again ahead of the service's clock; the header says
    when it happened, so the work is stamped and timed as it was (never earlier than the clock:
    ``clock.work_time``). A wall
    clock refuses the header with 400 rather than ignore it: in production nobody may say when
    their request happened.
    """

    HEADER = b"event-time"

    def __init__(self, app: ASGIApp, *, virtual: bool) -> None:
        self.app = app
        self.virtual = virtual

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set the request's event time for the units of work it opens; 400 if it cannot be."""
        raw = dict(scope["headers"]).get(self.HEADER) if scope["type"] == "http" else None
        if raw is None:
            await self.app(scope, receive, send)
            return
        when = _aware(raw.decode("latin-1"))
        problem = (
            "Event-Time is honoured only on a virtual clock (CLOCK=virtual, replays)"
            if not self.virtual
            else None
            if when is not None
            else "Event-Time must be an ISO-8601 time with its UTC offset"
        )
        if problem is not None or when is None:
            await JSONResponse({"detail": problem}, status_code=400)(scope, receive, send)
            return
        token = REQUEST_EVENT_TIME.set(when)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_EVENT_TIME.reset(token)


def _aware(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


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


class ClockReading(BaseModel):
    """A service's time, and (for a service with timed work) what a replay needs to know of it."""

    now: AwareDatetime
    clock: str
    """``virtual`` or ``wall``."""
    next_due: AwareDatetime | None = None
    """The earliest scheduled work (a deadline alarm) not yet done; None if there is none."""
    horizon: AwareDatetime | None = None
    """Nothing can fall due before this, whatever arrives from ``now`` on; None: no timed work."""

    @classmethod
    def of(cls, schedule: Schedule, clock: str) -> ClockReading:
        """The reading of ``schedule``."""
        return cls(now=schedule.now, clock=clock, next_due=schedule.next_due, horizon=schedule.horizon)


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
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        # Only a service process (``serve``) stops itself; an app run inside a test does not.
        watchdog = (
            asyncio.create_task(_stop_when_stalled(runtime))
            if getattr(app.state, "stop_when_stalled", False)
            else None
        )
        try:
            yield
        finally:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            await runtime.stop()

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    app.router.route_class = ListsEveryMethod
    document_common_responses(app)
    runtime.telemetry.instrument(app)

    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)
    app.add_middleware(EventTime, virtual=isinstance(runtime.clock, VirtualClock))

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

    @app.get(
        "/consumed",
        tags=["operations"],
        summary="Per topic and partition, the offset this service has handled every record before",
    )
    async def read_consumed() -> dict[str, dict[int, int]]:
        return await runtime.consumed()

    kind = "virtual" if isinstance(runtime.clock, VirtualClock) else "wall"

    @app.get("/clock", tags=["operations"], summary="The service's time, its next due work and horizon")
    async def read_clock() -> ClockReading:
        return ClockReading.of(await runtime.schedule(), kind)

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
        async def set_clock(body: ClockSetting) -> ClockReading:
            clock.set(body.now)
            return ClockReading.of(await runtime.schedule(), kind)

    return app


STOP_GRACE_SECONDS = 30.0
"""How long a service stopping itself over a stall may take to finish in-flight work."""
EXIT_STALLED = 3
"""The exit status when the graceful stop over a stall did not finish in time."""


async def _stop_when_stalled(runtime: ServiceRuntime) -> None:
    """Stop this process once a consumer has stalled, for its supervisor to start it afresh.

    aiokafka can stop fetching for good after a broker restart or a group coordinator moving
    (aiokafka #1154, #847; ``make chaos`` saw four services stall when Kafka moved leaders back
    to their preferred brokers), with no error anywhere. A new process resumes from the
    committed offsets and its inbox skips what was done, so a restart loses and doubles nothing.
    """
    stalled = await runtime.wait_for_stall()
    log.error(
        "%s: consumers stalled (records waiting, nothing committed for %.0f s): %s;"
        " stopping, for the supervisor to start the service again",
        runtime.name,
        runtime.settings.consumer_stall_seconds,
        ", ".join(stalled),
    )
    # The graceful stop can hang on the stuck consumer itself; leaving abruptly loses nothing.
    deadline = threading.Timer(STOP_GRACE_SECONDS, os._exit, args=(EXIT_STALLED,))
    deadline.daemon = True  # a graceful stop in time exits without waiting for it
    deadline.start()
    signal.raise_signal(signal.SIGTERM)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run a service's app until SIGTERM/SIGINT (graceful: in-flight work finishes).

    A service whose consumers stall for ``CONSUMER_STALL_SECONDS`` stops itself the same way
    (:func:`_stop_when_stalled`); its supervisor starts it again.
    """
    app.state.stop_when_stalled = True
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {settings.service} %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka logs every rebalance at INFO; keep the service's own lines readable.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
