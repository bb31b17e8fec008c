"""Wiring of the intake service (the one-stop desk): settings, catalog, calendar, runtime, API."""

from __future__ import annotations

from pathlib import Path

import yaml
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
CATALOG_FILE = Path(__file__).parent / "catalog" / "procedures.yaml"


def load_catalog(path: Path = CATALOG_FILE) -> Catalog:
    """Read and check the procedure catalog file."""
    return Catalog.from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")))


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
