"""Wiring of the notification service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Response

import services.notification
from contracts.agencies import NOTIFICATION
from services.intake.domain.catalog import Catalog
from services.notification import store
from services.notification.delivery import DeliveryWorker
from services.notification.document_signing import LetterSigner
from services.notification.handlers import NoticeWriter
from services.notification.letter_press import LetterPress
from services.notification.settings import DeliverySettings
from services.runtime.access import AUTH_RESPONSES, Access, Role
from services.runtime.clock import Clock
from services.runtime.http_app import create_service_app
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.runtime.working_days import VIETNAM_TZ

DEFAULT_PORT = services.notification.MANIFEST.default_port

log = logging.getLogger(__name__)


def build_runtime(
    settings: ServiceSettings,
    *,
    clock: Clock | None = None,
    delivery: DeliverySettings | None = None,
    press: LetterPress | None = None,
) -> ServiceRuntime:
    """The notification service's runtime with its subscriptions and delivery worker declared.

    ``press`` renders and signs the letters; by default with the keys ``LETTER_SIGNING_DIR``
    holds if it is set. Without either the service is only wired (for its declarations: ACLs,
    the AsyncAPI document) and signs nothing, so a letter it met would be dead-lettered, never
    sent unsigned; :func:`create_app` requires one.
    """
    delivery = delivery or DeliverySettings.from_env()
    runtime = ServiceRuntime(settings=settings, agency=NOTIFICATION, migrations=store.MIGRATIONS, clock=clock)
    channels = delivery.channels()
    if press is None:
        press = (
            delivery.letter_press(issuers())
            if delivery.letter_signing_dir
            else LetterPress(LetterSigner({}), place=delivery.letter_place, issuers=issuers())
        )
    NoticeWriter(runtime=runtime, press=press, channels=tuple(channels)).register()
    runtime.run_in_background("letter_press", press.run)
    worker = DeliveryWorker(
        pool=lambda: runtime.pool, clock=runtime.clock, channels=channels, policy=delivery.retry
    )
    runtime.run_in_background("delivery", worker.run)
    runtime.counts_backlog("deliveries_due", worker.count_due)
    return runtime


def issuers() -> dict[str, str]:
    """Every agency of the catalog, by machine name, as its letters print it."""
    return {agency: info.name for agency, info in Catalog.load().agencies.items()}


def create_app(
    settings: ServiceSettings | None = None,
    *,
    clock: Clock | None = None,
    delivery: DeliverySettings | None = None,
    access: Access | None = None,
) -> FastAPI:
    """The notification service as an ASGI app (``/health``, ``/notices`` for desk officers and operators)."""
    settings = settings or ServiceSettings.from_env(NOTIFICATION, default_port=DEFAULT_PORT)
    access = access or Access.from_env()
    delivery = delivery or DeliverySettings.from_env()
    press = delivery.letter_press(issuers())
    log.info(
        "letters are signed for %s, on %s",
        ", ".join(sorted(press.signer.agencies)),
        f"{press.workers} letter workers" if press.parallel else "the service's own process",
    )
    runtime = build_runtime(settings, clock=clock, delivery=delivery, press=press)
    app = create_service_app(runtime, title="Notification service", access=access)
    app.include_router(notices_router(lambda: runtime.pool, access))
    return app


MAX_BIGINT = 2**63 - 1
"""Notice ids are Postgres ``bigint``: a larger number is no notice (and asyncpg could not send it)."""


def notices_router(pool: Callable[[], asyncpg.Pool], access: Access) -> APIRouter:
    """What was written to citizens and how far each delivery got: personal data, so behind a role."""
    router = APIRouter(
        tags=["notices"],
        dependencies=[access.requires(Role.DESK_OFFICER, Role.OPERATOR)],
        responses=AUTH_RESPONSES,
    )

    @router.get("/notices", summary="A dossier's notices with their delivery status")
    async def list_notices(
        # No NUL: Postgres text cannot hold one (the query failed with 500).
        dossier_id: str = Query(min_length=1, max_length=64, pattern=r"^[^\x00]+$"),
    ) -> list[dict[str, Any]]:
        async with pool().acquire() as conn:
            notices = await store.list_notices(conn, dossier_id)
        for notice in notices:
            notice["attachment_url"] = (
                f"/notices/{notice['id']}/attachment" if notice["attachment_name"] else None
            )
        return [_local_times(n) for n in notices]

    @router.get(
        "/notices/{notice_id}/attachment",
        summary="The letter as sent (PDF)",
        response_class=Response,
        responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "No such attachment"}},
    )
    async def attachment(notice_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)]) -> Response:
        async with pool().acquire() as conn:
            found = await store.attachment_of(conn, notice_id)
        if found is None:
            raise HTTPException(404, f"notice {notice_id} has no attachment")
        filename, content_type, data = found
        return Response(
            data, media_type=content_type, headers={"Content-Disposition": f'inline; filename="{filename}"'}
        )

    return router


def _local_times(value: Any) -> Any:
    """Times in Vietnam time (+07:00), as every API of the system returns them."""
    if isinstance(value, datetime):
        return value.astimezone(VIETNAM_TZ).isoformat()
    if isinstance(value, dict):
        return {k: _local_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_local_times(v) for v in value]
    return value
