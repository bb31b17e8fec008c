"""Wiring of the urban management office."""

from __future__ import annotations

from fastapi import FastAPI

import services.urban_management
from contracts.agencies import URBAN_MANAGEMENT
from services.runtime.clock import Clock
from services.runtime.http_app import create_service_app
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.urban_management import store
from services.urban_management.handlers import UrbanManagementOffice

DEFAULT_PORT = services.urban_management.MANIFEST.default_port


def build_runtime(settings: ServiceSettings, *, clock: Clock | None = None) -> ServiceRuntime:
    """The office's runtime with its subscription and publication declared."""
    runtime = ServiceRuntime(
        settings=settings, agency=URBAN_MANAGEMENT, migrations=store.MIGRATIONS, clock=clock
    )
    UrbanManagementOffice(runtime=runtime).register()
    return runtime


def create_app(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The urban management office as an ASGI app (``/health``)."""
    settings = settings or ServiceSettings.from_env(URBAN_MANAGEMENT, default_port=DEFAULT_PORT)
    return create_service_app(build_runtime(settings, clock=clock), title="Urban management office")
