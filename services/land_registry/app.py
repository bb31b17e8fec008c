"""Wiring of the land registry service."""

from __future__ import annotations

from fastapi import FastAPI

import services.land_registry
from contracts.agencies import LAND_REGISTRY
from services.land_registry import store
from services.land_registry.api import build_router
from services.land_registry.decisions import Decisions
from services.land_registry.domain.registry import LandPriceTable
from services.land_registry.handlers import Registry, WorkQueue
from services.land_registry.officer_bot import OfficerBot
from services.runtime.access import Access
from services.runtime.clock import Clock
from services.runtime.http_app import create_service_app
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.runtime.working_days import WorkingDayCalendar

DEFAULT_PORT = services.land_registry.MANIFEST.default_port


def build_registry(
    settings: ServiceSettings, *, clock: Clock | None = None, decisions: Decisions | None = None
) -> tuple[ServiceRuntime, WorkQueue]:
    """The registry's runtime (declared, not started) and its work queue.

    Without ``decisions`` every step is decided by its rule at once.
    """
    runtime = ServiceRuntime(
        settings=settings, agency=LAND_REGISTRY, migrations=store.MIGRATIONS, clock=clock
    )
    registry = Registry(runtime=runtime, prices=LandPriceTable.load(), decisions=decisions)
    registry.register()
    return runtime, WorkQueue(registry)


def build_runtime(settings: ServiceSettings, *, clock: Clock | None = None) -> ServiceRuntime:
    """The registry's runtime with its subscriptions and publications declared (not started)."""
    return build_registry(settings, clock=clock)[0]


def create_app(
    settings: ServiceSettings | None = None,
    *,
    clock: Clock | None = None,
    access: Access | None = None,
    decisions: Decisions | None = None,
) -> FastAPI:
    """The land registry service as an ASGI app (``/health``, the work queue, ``/officer``)."""
    settings = settings or ServiceSettings.from_env(LAND_REGISTRY, default_port=DEFAULT_PORT)
    decisions = decisions or Decisions.from_env()
    access = access or Access.from_env()
    calendar = WorkingDayCalendar()
    runtime, queue = build_registry(settings, clock=clock, decisions=decisions)
    if decisions.bot:
        runtime.run_in_background("officer-bot", OfficerBot(queue, calendar, decisions.bot_delay_hours).run)
    app = create_service_app(runtime, title="Land registry office", access=access)
    app.include_router(build_router(queue, access, calendar))
    return app
