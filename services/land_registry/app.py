"""Wiring of the land registry service."""

from __future__ import annotations

from fastapi import FastAPI

import services.land_registry
from contracts.agencies import LAND_REGISTRY
from services.land_registry import store
from services.land_registry.domain.registry import LandPriceTable
from services.land_registry.handlers import Registry
from services.runtime.clock import Clock
from services.runtime.http_app import create_service_app
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings

DEFAULT_PORT = services.land_registry.MANIFEST.default_port


def build_runtime(settings: ServiceSettings, *, clock: Clock | None = None) -> ServiceRuntime:
    """The registry's runtime with its subscriptions and publications declared (not started)."""
    runtime = ServiceRuntime(
        settings=settings, agency=LAND_REGISTRY, migrations=store.MIGRATIONS, clock=clock
    )
    Registry(runtime=runtime, prices=LandPriceTable.load()).register()
    return runtime


def create_app(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The land registry service as an ASGI app (``/health``)."""
    settings = settings or ServiceSettings.from_env(LAND_REGISTRY, default_port=DEFAULT_PORT)
    return create_service_app(build_runtime(settings, clock=clock), title="Land registry office")
