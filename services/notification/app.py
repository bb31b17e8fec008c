"""Wiring of the notification service."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.agencies import NOTIFICATION
from services.notification import store
from services.notification.handlers import NoticeWriter
from services.runtime.clock import Clock
from services.runtime.service import ServiceRuntime, create_service_app
from services.runtime.settings import ServiceSettings

DEFAULT_PORT = 8003


def build_runtime(settings: ServiceSettings, *, clock: Clock | None = None) -> ServiceRuntime:
    """The notification service's runtime with its subscriptions declared (not started)."""
    runtime = ServiceRuntime(settings=settings, agency=NOTIFICATION, migrations=store.MIGRATIONS, clock=clock)
    NoticeWriter(runtime=runtime).register()
    return runtime


def create_app(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The notification service as an ASGI app (``/health``)."""
    settings = settings or ServiceSettings.from_env(NOTIFICATION, default_port=DEFAULT_PORT)
    return create_service_app(build_runtime(settings, clock=clock), title="Notification service")
