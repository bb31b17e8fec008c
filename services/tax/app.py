"""Wiring of the tax service."""

from __future__ import annotations

from fastapi import FastAPI

from contracts import topics
from contracts.agencies import TAX
from services.runtime.clock import Clock
from services.runtime.service import ServiceRuntime, create_service_app
from services.runtime.settings import ServiceSettings
from services.tax import store
from services.tax.handlers import TaxOffice

DEFAULT_PORT = 8002


def create_app(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The tax service as an ASGI app (``/health``)."""
    settings = settings or ServiceSettings.from_env(TAX, default_port=DEFAULT_PORT)
    runtime = ServiceRuntime(
        settings=settings,
        agency=TAX,
        migrations=store.MIGRATIONS,
        topics_used=[topics.handoffs(TAX), topics.agency_events(TAX)],
        clock=clock,
    )
    TaxOffice(runtime=runtime).register_subscribers()
    return create_service_app(runtime, title="Tax authority")
