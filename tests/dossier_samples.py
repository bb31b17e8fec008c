"""Sample dossiers as a citizen would file them, and polling helpers for the HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx

from contracts.events import Applicant, DossierHandedOver
from infra.stack import Stack
from services.intake.app import load_catalog
from services.intake.domain.dossier import Dossier
from services.replay.replay import payment_for
from services.runtime.working_days import WorkingDayCalendar

LAND_DOCUMENTS = [
    "REGISTRATION_FORM",
    "TRANSFER_CONTRACT",
    "LAND_CERTIFICATE",
    "REGISTRATION_FEE_DECLARATION",
    "PIT_DECLARATION",
]


STAFF = ("desk_officer", "operator", "payment_gateway")
"""The roles of the tests' everyday client: files and supplements, sees everything, confirms payments."""


def signed_in(system: Stack, service: str, *roles: str, timeout: float = 30) -> httpx.AsyncClient:
    """A client of ``system``'s ``service`` bearing a token with ``roles`` (default: ``STAFF``)."""
    token = system.token(*(roles or STAFF), subject=f"test-{'-'.join(roles or ('staff',))}")
    return httpx.AsyncClient(
        base_url=system.services[service].url, timeout=timeout, headers={"Authorization": f"Bearer {token}"}
    )


async def pay(client: httpx.AsyncClient, dossier_id: str) -> httpx.Response:
    """Confirm the dossier's tax notice paid, as the treasury does: the notice's number and amount.

    ``client`` must be able to read the dossier and confirm payments (``STAFF`` can).
    """
    dossier = await client.get(f"/dossiers/{dossier_id}")
    dossier.raise_for_status()
    return await client.post(f"/dossiers/{dossier_id}/payments", json=payment_for(dossier.json()))


def applicant(n: int = 0) -> dict[str, str]:
    """A distinct applicant per ``n``."""
    return {
        "full_name": f"Nguyễn Văn An {n}",
        "id_number": f"0790880{n:05d}",
        "phone": "0912345678",
        "email": f"an{n}@example.vn",
    }


def land_transfer(
    n: int = 0,
    *,
    ward: str = "phuong-3",
    area_m2: float = 100.0,
    land_use_code: str = "ODT",
    price_vnd: int = 1_500_000_000,
) -> dict[str, Any]:
    """A complete land-transfer dossier."""
    return {
        "procedure_code": "LAND-TRANSFER",
        "applicant": applicant(n),
        "documents": list(LAND_DOCUMENTS),
        "details": {
            "certificate_number": "CS 123456",
            "parcel": {
                "ward": ward,
                "map_sheet": 12,
                "parcel_number": 300 + n,
                "area_m2": area_m2,
                "land_use_code": land_use_code,
            },
            "transferee": {"full_name": "Trần Thị Bình", "id_number": f"0790900{n:05d}"},
            "transfer_price_vnd": price_vnd,
        },
    }


def received_land_transfer(dossier_id: str, now: datetime) -> tuple[Dossier, DossierHandedOver]:
    """A land transfer taken in at the desk at ``now`` (domain only), and its handoff to the registry."""
    filed = land_transfer(1)
    dossier, events = Dossier.receive(
        dossier_id=dossier_id,
        procedure=load_catalog().get("LAND-TRANSFER"),
        procedure_code="LAND-TRANSFER",
        applicant=Applicant.model_validate(filed["applicant"]),
        documents=filed["documents"],
        details=filed["details"],
        now=now,
        calendar=WorkingDayCalendar(),
    )
    handover = events[-1]
    assert isinstance(handover, DossierHandedOver)
    return dossier, handover


def certified_copy(n: int = 0, *, pages: int = 3) -> dict[str, Any]:
    """A ward-level certified-copy dossier."""
    return {
        "procedure_code": "CERTIFIED-COPY",
        "applicant": applicant(n),
        "documents": ["ORIGINAL_DOCUMENT", "COPY_TO_CERTIFY"],
        "details": {"document_title": "Bằng tốt nghiệp đại học", "pages": pages},
    }


async def wait_for_status(
    client: httpx.AsyncClient, dossier_id: str, status: str, *, timeout: float = 60
) -> dict[str, Any]:
    """Poll the dossier until it reaches ``status``; fail with its last state if it does not."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/dossiers/{dossier_id}")
        response.raise_for_status()
        last = response.json()
        if last["status"] == status:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{dossier_id} did not reach {status!r} in {timeout}s; last state: {last}")


async def eventually_equal(read: Callable[[], Awaitable[Any]], expected: Any, *, timeout: float = 30) -> None:
    """Poll ``read()`` until it returns ``expected`` (events arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    value = await read()
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        value = await read()
    assert value == expected
