"""Wiring of the notification service."""

from __future__ import annotations

from fastapi import FastAPI

from contracts import topics
from contracts.agencies import NOTIFICATION, TAX
from services.notification import store
from services.notification.handlers import NoticeWriter
from services.runtime.clock import Clock
from services.runtime.service import ServiceRuntime, create_service_app
from services.runtime.settings import ServiceSettings

DEFAULT_PORT = 8003


def create_app(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The notification service as an ASGI app (``/health``)."""
    settings = settings or ServiceSettings.from_env(NOTIFICATION, default_port=DEFAULT_PORT)
    runtime = ServiceRuntime(
        settings=settings,
        agency=NOTIFICATION,
        migrations=store.MIGRATIONS,
        topics_used=[topics.INTAKE_EVENTS, topics.agency_events(TAX)],
        clock=clock,
    )
    NoticeWriter(runtime=runtime).register_subscribers()
    return create_service_app(runtime, title="Notification service")
