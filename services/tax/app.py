"""Wiring of the tax service."""

from __future__ import annotations

from fastapi import FastAPI

import services.tax
from contracts.agencies import TAX
from services.runtime.clock import Clock
from services.runtime.http_app import create_service_app
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.tax import store
from services.tax.handlers import TaxOffice

DEFAULT_PORT = services.tax.MANIFEST.default_port


def build_runtime(settings: ServiceSettings, *, clock: Clock | None = None) -> ServiceRuntime:
    """The tax authority's runtime with its subscriptions and publications declared."""
    runtime = ServiceRuntime(settings=settings, agency=TAX, migrations=store.MIGRATIONS, clock=clock)
    TaxOffice(runtime=runtime).register()
    return runtime


def create_app(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The tax service as an ASGI app (``/health``)."""
    settings = settings or ServiceSettings.from_env(TAX, default_port=DEFAULT_PORT)
    return create_service_app(build_runtime(settings, clock=clock), title="Tax authority")
