"""Wiring of the intake service (the one-stop desk): settings, catalog, calendar, runtime, API."""

from __future__ import annotations

from fastapi import FastAPI

import services.intake
from contracts.agencies import ONE_STOP
from services.intake import store
from services.intake.api import build_router
from services.intake.domain.catalog import Catalog
from services.intake.handlers import Desk
from services.runtime.access import Access
from services.runtime.clock import Clock
from services.runtime.http_app import create_service_app
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.runtime.working_days import WorkingDayCalendar

DEFAULT_PORT = services.intake.MANIFEST.default_port


def load_catalog() -> Catalog:
    """The published procedure catalog, read and checked (``Catalog.load``)."""
    return Catalog.load()


def build_runtime(settings: ServiceSettings, *, clock: Clock | None = None) -> tuple[ServiceRuntime, Desk]:
    """The desk's runtime with its subscriptions and publications declared (not started)."""
    runtime = ServiceRuntime(settings=settings, agency=ONE_STOP, migrations=store.MIGRATIONS, clock=clock)
    desk = Desk(runtime=runtime, catalog=load_catalog(), calendar=WorkingDayCalendar())
    desk.register()
    return runtime, desk


def create_app(
    settings: ServiceSettings | None = None, *, clock: Clock | None = None, access: Access | None = None
) -> FastAPI:
    """The intake service as an ASGI app; ``access`` (default: from ``AUTH_*``) checks tokens."""
    access = access or Access.from_env()
    runtime, desk = build_runtime(
        settings or ServiceSettings.from_env("intake", default_port=DEFAULT_PORT), clock=clock
    )
    app = create_service_app(
        runtime,
        access=access,
        title="One-stop desk (intake)",
        description="File administrative dossiers, follow them agency by agency, pay, collect.",
    )
    app.include_router(build_router(desk, access))
    return app
