"""A building permit through the urban management office: the agency added from its folder alone.

The office was plugged in by one commit touching only services/urban_management/, the catalog,
contracts/ and generated documents; here its procedure runs end to end on real Kafka and
Postgres, and the operator console names it from the catalog.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from infra.stack import Stack
from services.intake.app import load_catalog
from tests.dossier_samples import applicant, signed_in, wait_for_status

pytestmark = pytest.mark.real


def permit_dossier(n: int, *, storeys: int = 3, built_area_m2: float = 72.0) -> dict[str, Any]:
    """A complete file for a new individual house on a 90 m² parcel."""
    return {
        "procedure_code": "CONSTRUCTION-PERMIT",
        "applicant": applicant(n),
        "documents": ["PERMIT_APPLICATION", "LAND_USE_RIGHT_PAPER", "DESIGN_DRAWINGS"],
        "details": {
            "parcel_ref": f"phuong-3/tờ 12/thửa {400 + n}",
            "parcel_area_m2": 90.0,
            "built_area_m2": built_area_m2,
            "storeys": storeys,
            "total_floor_area_m2": built_area_m2 * storeys,
        },
    }


async def test_a_building_permit_is_reviewed_and_issued_by_the_new_agency(services: Stack) -> None:
    async with signed_in(services, "intake") as intake:
        filed = await intake.post("/dossiers", json=permit_dossier(9701))
        assert filed.status_code == 201, filed.text
        dossier_id = filed.json()["id"]
        returned = await wait_for_status(intake, dossier_id, "returned")

    rows = [(h["to"], h["action"], h["outcome"]) for h in returned["handoffs"]]
    assert ("urban_management", "review_design", "done") in rows
    assert ("urban_management", "issue_construction_permit", "done") in rows
    permit = returned["results"]["issue_construction_permit"]
    assert permit["permit_number"].startswith("GPXD-2026-")
    assert permit["storeys"] == 3
    assert returned["results"]["review_design"]["building_density"] == "0.80"
    assert returned["on_time"] is True

    # The console names the agency and its steps as the catalog does, in Vietnamese.
    catalog = load_catalog()
    token = services.env()["CONSOLE_TOKEN"]
    console = services.services["console"].url
    async with httpx.AsyncClient(base_url=console, headers={"Authorization": f"Bearer {token}"}) as client:
        # The console's read model follows the desk's events a moment later (a fresh clone's
        # run once asked before it had the dossier).
        deadline = time.monotonic() + 30
        while (page := await client.get(f"/dossiers/{dossier_id}")).status_code == 404:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert page.status_code == 200, page.text
    assert catalog.agencies["urban_management"].display_name in page.text
    assert "Cấp giấy phép xây dựng" in page.text


async def test_a_design_over_the_planning_limits_is_refused_by_the_office(services: Stack) -> None:
    async with signed_in(services, "intake") as intake:
        filed = await intake.post("/dossiers", json=permit_dossier(9702, built_area_m2=85.0))
        assert filed.status_code == 201, filed.text
        refused = await wait_for_status(intake, filed.json()["id"], "rejected")
    (review,) = [h for h in refused["handoffs"] if h["action"] == "review_design"]
    assert review["outcome"] == "rejected"
    assert "mật độ xây dựng" in review["note"]
    assert "issue_construction_permit" not in refused["results"]
