"""Wiring of the operator console."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import services.console
from services.console import auth
from services.console.api import api_router, otlp_router
from services.console.auth import ConsoleAccess
from services.console.handlers import ReadModel
from services.console.pages import STATIC_DIR, pages_router
from services.console.queries import ConsoleQueries
from services.console.store import MIGRATIONS
from services.runtime.clock import Clock
from services.runtime.http_app import create_service_app
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.runtime.telemetry import Telemetry

log = logging.getLogger(__name__)

SERVICE = "console"
DEFAULT_PORT = services.console.MANIFEST.default_port


class ConsoleTelemetry(Telemetry):
    """The console traces its consumption of the desk's events, not its own HTTP side.

    Its HTTP side is the OTLP receiver and pages that refresh every few seconds: traced, and
    with the services exporting to the console, each batch of spans received would make new
    spans to receive, for ever.
    """

    def instrument(self, app: FastAPI) -> None:
        """No server spans (see the class)."""


def build_runtime(settings: ServiceSettings, *, clock: Clock | None = None) -> ServiceRuntime:
    """The console's runtime: its schema, and the read model's subscription to the desk's events."""
    runtime = ServiceRuntime(
        settings=settings,
        agency=SERVICE,
        migrations=MIGRATIONS,
        clock=clock,
        telemetry=ConsoleTelemetry.from_env(SERVICE, os.environ),
    )
    ReadModel(runtime=runtime).register()
    return runtime


def create_app(
    settings: ServiceSettings | None = None,
    *,
    access: ConsoleAccess | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The console as an ASGI app: pages, ``/api``, ``/v1/traces``, ``/health``; all behind the token."""
    settings = settings or ServiceSettings.from_env(SERVICE, default_port=DEFAULT_PORT)
    access = access or ConsoleAccess.from_env(os.environ)
    runtime = build_runtime(settings, clock=clock)
    queries = ConsoleQueries(pool=lambda: runtime.pool, clock=runtime.clock)
    app = create_service_app(
        runtime,
        title="Operator console",
        description="Dossiers, process-control slips, on-time rates, overdue steps, apologies and traces.",
        # OTLP exporters send batches of up to 512 spans in one request.
        max_body_bytes=16 * 1024 * 1024,
    )
    app.middleware("http")(auth.guard(access))
    app.include_router(api_router(queries))
    app.include_router(otlp_router(lambda: runtime.pool))
    app.include_router(pages_router(queries, access))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _announce_sign_in(app, settings, access)
    return app


def sign_in_url(settings: ServiceSettings, access: ConsoleAccess) -> str:
    """Where an operator signs in; a wildcard bind address is reached on 127.0.0.1."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/login?token={access.token}"


def _announce_sign_in(app: FastAPI, settings: ServiceSettings, access: ConsoleAccess) -> None:
    """Once started, log where to sign in; with a generated token that is the only way to learn it."""
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with started(application) as state:
            if access.generated:
                log.warning(
                    "console: CONSOLE_TOKEN is not set; this run's token was generated. Sign in at %s",
                    sign_in_url(settings, access),
                )
            else:
                log.info(
                    "console: ready on http://%s:%d (token from CONSOLE_TOKEN)", settings.host, settings.port
                )
            yield state

    app.router.lifespan_context = lifespan
