"""A dossier's whole route through the four real services, over real Kafka and Postgres."""

from __future__ import annotations

import asyncio
import tomllib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from infra.stack import Stack
from tests.dossier_samples import (
    certified_copy,
    eventually_equal,
    land_transfer,
    pay,
    signed_in,
    wait_for_status,
)

pytestmark = pytest.mark.real

PRICES = tomllib.loads(
    (Path(__file__).parents[2] / "services/land_registry/domain/land_prices.toml").read_text()
)["prices"]

EXPECTED_ROUTE = [
    ("citizen", "one_stop", "receive"),
    ("one_stop", "land_registry", "appraise"),
    ("land_registry", "tax", "assess"),
    ("tax", "citizen", "pay"),
    ("citizen", "one_stop", "receive_payment_proof"),
    ("one_stop", "land_registry", "issue_certificate"),
    ("land_registry", "one_stop", "return_result"),
]


def expected_tax(dossier: dict[str, Any]) -> int:
    """Registration fee 0.5% + personal income tax 2% of max(contract price, table value)."""
    parcel = dossier["details"]["parcel"]
    table_value = (
        Decimal(str(parcel["area_m2"])) * PRICES[parcel["ward"]][parcel["land_use_code"]]
    ).quantize(Decimal(1), ROUND_HALF_UP)
    base = max(Decimal(dossier["details"]["transfer_price_vnd"]), table_value)
    fee = min((base * Decimal("0.005")).quantize(Decimal(1), ROUND_HALF_UP), 500_000_000)
    pit = (base * Decimal("0.02")).quantize(Decimal(1), ROUND_HALF_UP)
    return int(fee + pit)


@pytest.fixture
async def intake(services: Stack) -> Any:
    async with signed_in(services, "intake") as client:
        yield client


async def test_fifty_concurrent_land_transfers_all_returned(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # Varied parcels: prices below and above the land table, urban and rural land.
    wards = [("phuong-1", "ODT"), ("phuong-6", "CLN"), ("huong-tho-phu", "LUC"), ("khanh-hau", "ODT")]
    filed = [
        land_transfer(
            1000 + n,
            ward=wards[n % 4][0],
            land_use_code=wards[n % 4][1],
            area_m2=50 + 7.5 * n,
            price_vnd=200_000_000 + 37_000_000 * n,
        )
        for n in range(50)
    ]
    responses = await asyncio.gather(*(intake.post("/dossiers", json=d) for d in filed))
    assert [r.status_code for r in responses] == [201] * 50
    receipts = [r.json() for r in responses]
    ids = [r["id"] for r in receipts]
    assert len(set(ids)) == 50
    assert all(r["appointment_date"] > r["received_at"] for r in receipts)

    awaiting = await asyncio.gather(*(wait_for_status(intake, i, "awaiting_payment") for i in ids))
    for dossier, state in zip(filed, awaiting, strict=True):
        assert state["results"]["assess"]["total_vnd"] == expected_tax(dossier), state["id"]

    paid = await asyncio.gather(*(pay(intake, i) for i in ids))
    assert [r.status_code for r in paid] == [200] * 50
    returned = await asyncio.gather(*(wait_for_status(intake, i, "returned") for i in ids))

    for state in returned:
        slip = state["handoffs"]
        assert [(h["from"], h["to"], h["action"]) for h in slip] == EXPECTED_ROUTE
        assert all(h["completed_at"] and h["outcome"] == "done" for h in slip)
        assert all(h["sent_at"] <= h["received_at"] <= h["completed_at"] for h in slip)
        assert state["results"]["issue_certificate"]["certificate_serial"].startswith("TA ")
        assert state["on_time"] is True

    # Each citizen got each notice exactly once: receipt, tax notice, result (the last ones
    # may still be on their way when the desk says "returned").
    async def notice_counts() -> dict[tuple[str, str], int]:
        rows = await db.fetch(
            "SELECT dossier_id, kind, count(*) AS n FROM notification.notices"
            " WHERE dossier_id = ANY($1::text[]) GROUP BY dossier_id, kind",
            ids,
        )
        return {(r["dossier_id"], r["kind"]): r["n"] for r in rows}

    await eventually_equal(
        notice_counts, {(i, k): 1 for i in ids for k in ("receipt", "tax_notice", "result")}
    )
    # The tax notice the citizen reads states the same amount the desk recorded.
    notice = await db.fetchval(
        "SELECT body FROM notification.notices WHERE dossier_id = $1 AND kind = 'tax_notice'", ids[0]
    )
    assert f"{expected_tax(filed[0]):,}".replace(",", ".") + " đồng" in notice
    # Certificates are never issued twice.
    certificates = await db.fetchval(
        "SELECT count(*) FROM land_registry.steps_done WHERE dossier_id = ANY($1::text[])"
        " AND action = 'issue_certificate'",
        ids,
    )
    assert certificates == 50


async def test_ward_procedure_is_settled_by_the_desk_alone(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    response = await intake.post("/dossiers", json=certified_copy(2001, pages=4))
    assert response.status_code == 201, response.text
    dossier = response.json()
    assert dossier["fees_vnd"] == 8000  # 2,000 VND a page
    state = await wait_for_status(intake, dossier["id"], "returned")
    assert [h["to"] for h in state["handoffs"]] == ["one_stop", "one_stop", "one_stop"]
    kinds = "SELECT array_agg(kind ORDER BY id) FROM notification.notices WHERE dossier_id = $1"
    await eventually_equal(lambda: db.fetchval(kinds, dossier["id"]), ["receipt", "result"])


@pytest.mark.parametrize(
    ("change", "expected_problem"),
    [
        (lambda d: d.update(procedure_code="NO-SUCH"), "unknown procedure 'NO-SUCH'"),
        (lambda d: d["documents"].remove("PIT_DECLARATION"), "missing required document PIT_DECLARATION"),
        (lambda d: d["details"]["parcel"].update(area_m2=-5), "details['parcel']['area_m2']"),
        (lambda d: d["details"].pop("transferee"), "'transferee' is a required property"),
    ],
)
async def test_refused_dossier_gets_422_and_nothing_is_published(
    intake: httpx.AsyncClient, db: asyncpg.Pool, change: Any, expected_problem: str
) -> None:
    dossier = land_transfer(3001)
    change(dossier)
    outbox_before = await db.fetchval("SELECT count(*) FROM intake.outbox")
    dossiers_before = await db.fetchval("SELECT count(*) FROM intake.dossiers")
    response = await intake.post("/dossiers", json=dossier)
    assert response.status_code == 422
    body = response.json()
    assert any(expected_problem in p for p in body["problems"]), body
    assert await db.fetchval("SELECT count(*) FROM intake.outbox") == outbox_before
    assert await db.fetchval("SELECT count(*) FROM intake.dossiers") == dossiers_before


async def test_oversized_request_is_refused_with_413(intake: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    dossier = land_transfer(3500)
    dossier["details"]["padding"] = "x" * (2 * 1024 * 1024)
    before = await db.fetchval("SELECT count(*) FROM intake.dossiers")
    response = await intake.post("/dossiers", json=dossier)
    assert response.status_code == 413
    assert "over the limit" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM intake.dossiers") == before


async def test_paying_twice_is_refused(intake: httpx.AsyncClient) -> None:
    response = await intake.post("/dossiers", json=land_transfer(4001))
    dossier_id = response.json()["id"]
    await wait_for_status(intake, dossier_id, "awaiting_payment")
    assert (await pay(intake, dossier_id)).status_code == 200
    second = await pay(intake, dossier_id)
    assert second.status_code == 409
    assert "not awaiting payment" in second.json()["detail"]


async def test_catalog_and_health_are_published(intake: httpx.AsyncClient) -> None:
    procedures = (await intake.get("/procedures")).json()
    land = next(p for p in procedures if p["code"] == "LAND-TRANSFER")
    assert land["statutory_limit_days"] == "8"
    assert [s["agency"] for s in land["steps"]][:3] == ["one_stop", "land_registry", "tax"]
    assert land["details_schema"]["required"] == [
        "certificate_number",
        "parcel",
        "transferee",
        "transfer_price_vnd",
    ]
    health = (await intake.get("/health")).json()
    assert health == {
        "service": "intake",
        "ready": True,
        "checks": {
            "postgres": True,
            "kafka": True,
            "outbox_relay": True,
            "consumers": True,
            "deadline_watcher": True,
        },
    }
    assert "/dossiers/{dossier_id}/payments" in (await intake.get("/openapi.json")).json()["paths"]
