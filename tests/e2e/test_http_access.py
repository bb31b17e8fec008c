"""Who may do what over HTTP, against the running services: strangers and wrong roles are refused.

Each check is a negative one: it fails if the route's role requirement (or the token check
itself) is removed. Refused requests change nothing: the desk's outbox gains no event.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import httpx
import pytest

from infra.stack import Stack
from infra.tokens import LocalIssuer
from services.replay.replay import payment_for
from tests.dossier_samples import applicant, land_transfer, signed_in, wait_for_status

pytestmark = pytest.mark.real

N = 9600


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def awaiting_payment(services: Stack) -> dict[str, object]:
    """A dossier filed at the counter, now waiting for its tax to be paid (with its look-up code)."""
    async with signed_in(services, "intake", "desk_officer", "operator") as desk:
        filed = await desk.post("/dossiers", json=land_transfer(N))
        assert filed.status_code == 201, filed.text
        view = await wait_for_status(desk, filed.json()["id"], "awaiting_payment")
        return {**view, "lookup_code": filed.json()["lookup_code"]}


async def outbox_size(db: asyncpg.Pool, dossier_id: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM intake.outbox WHERE key = $1", dossier_id.encode()))


async def test_desk_actions_refuse_strangers_and_wrong_roles_and_publish_nothing(
    services: Stack, db: asyncpg.Pool, awaiting_payment: dict[str, object]
) -> None:
    dossier_id = str(awaiting_payment["id"])
    payment = payment_for(awaiting_payment)
    supplement_request = {"missing_documents": ["Bản vẽ"], "reason": "thiếu bản vẽ"}
    citizen = bearer(services.token("citizen", subject="citizen-1"))
    desk = bearer(services.token("desk_officer", subject="desk-1"))
    gateway = bearer(services.token("payment_gateway", subject="treasury"))
    before = await outbox_size(db, dossier_id)
    async with httpx.AsyncClient(base_url=services.services["intake"].url, timeout=30) as intake:
        pay_path = f"/dossiers/{dossier_id}/payments"
        ask_path = f"/dossiers/{dossier_id}/supplement-requests"
        # No token: 401 with a challenge; a citizen: 403; a desk officer cannot confirm payments.
        refused = await intake.post(pay_path, json=payment)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert (await intake.post(pay_path, json=payment, headers=citizen)).status_code == 403
        assert (await intake.post(pay_path, json=payment, headers=desk)).status_code == 403
        assert (await intake.post(ask_path, json=supplement_request)).status_code == 401
        assert (await intake.post(ask_path, json=supplement_request, headers=citizen)).status_code == 403
        assert (await intake.post(ask_path, json=supplement_request, headers=gateway)).status_code == 403
        assert (
            await intake.post(f"/dossiers/{dossier_id}/supplements", json={}, headers=citizen)
        ).status_code == 403
        # The full view (slip, results) needs a role too.
        assert (await intake.get(f"/dossiers/{dossier_id}")).status_code == 401
        assert (await intake.get(f"/dossiers/{dossier_id}", headers=citizen)).status_code == 403
        # Refused before any look-up: a dossier that does not exist answers the same.
        assert (await intake.post("/dossiers/HS-NO-SUCH-ONE/payments", json=payment)).status_code == 401
        assert (await intake.get("/dossiers/HS-NO-SUCH-ONE", headers=citizen)).status_code == 403

        # The treasury with the wrong amount, or another notice: 422, the dossier still waits.
        wrong_amount = {**payment, "amount_vnd": int(str(payment["amount_vnd"])) - 1}
        response = await intake.post(pay_path, json=wrong_amount, headers=gateway)
        assert response.status_code == 422
        assert "VND" in response.json()["detail"]
        wrong_notice = {**payment, "notice_number": "TB-0000-000000"}
        assert (await intake.post(pay_path, json=wrong_notice, headers=gateway)).status_code == 422
        assert await outbox_size(db, dossier_id) == before  # nothing was published for any of them

        # The right notice and amount from the treasury: paid, routed on.
        assert (await intake.post(pay_path, json=payment, headers=gateway)).status_code == 200
        assert await outbox_size(db, dossier_id) > before


async def test_tokens_the_issuer_did_not_sign_or_that_expired_are_refused(
    services: Stack, tmp_path: Path, awaiting_payment: dict[str, object]
) -> None:
    forger = LocalIssuer(tmp_path / "tokens")  # a key pair of its own, not in the services' JWKS
    forged = forger.mint("desk_officer", "operator", subject="intruder")
    expired = services.issuer.mint("operator", subject="yesterday", ttl_seconds=-3600)
    good = services.issuer.mint("operator", subject="today")
    path = f"/dossiers/{awaiting_payment['id']}"
    async with httpx.AsyncClient(base_url=services.services["intake"].url, timeout=30) as intake:
        assert (await intake.get(path, headers=bearer(forged))).status_code == 401
        assert (await intake.get(path, headers=bearer(expired))).status_code == 401
        assert (await intake.get(path, headers={"Authorization": f"Basic {good}"})).status_code == 401
        assert (await intake.get(path, headers=bearer(good + "x"))).status_code == 401
        assert (await intake.get(path, headers=bearer(good))).status_code == 200


async def test_the_public_look_up_shows_status_and_timing_but_nobody(
    services: Stack, awaiting_payment: dict[str, object]
) -> None:
    dossier_id, code = awaiting_payment["id"], str(awaiting_payment["lookup_code"])
    async with httpx.AsyncClient(base_url=services.services["intake"].url, timeout=30) as public:
        response = await public.get(f"/dossiers/{dossier_id}/status", params={"lookup_code": code})
        assert response.status_code == 200, response.text
        shown = response.json()
        assert shown["status"] == "awaiting_payment"
        assert shown["appointment_date"] == awaiting_payment["appointment_date"]
        assert [s["agency"] for s in shown["steps"]][:3] == ["one_stop", "land_registry", "tax"]
        text = json.dumps(shown, ensure_ascii=False)
        person = applicant(N)
        transferee = land_transfer(N)["details"]["transferee"]
        for secret in (*person.values(), *transferee.values()):
            assert secret not in text
        assert not {"applicant", "full_name", "id_number", "phone", "email", "results"} & set(_keys(shown))

        # A wrong code and an unknown dossier get the same answer: the look-up tells a guesser nothing.
        wrong = "A" * len(code) if code != "A" * len(code) else "B" * len(code)
        refused = await public.get(f"/dossiers/{dossier_id}/status", params={"lookup_code": wrong})
        unknown = await public.get("/dossiers/HS-NO-SUCH-ONE/status", params={"lookup_code": code})
        assert refused.status_code == unknown.status_code == 404
        assert refused.json() == unknown.json()


def _keys(value: object) -> list[str]:
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in (key, *_keys(item))]
    if isinstance(value, list):
        return [k for item in value for k in _keys(item)]
    return []


async def test_notices_and_the_virtual_clock_need_a_role_health_and_metrics_stay_open(
    services: Stack,
) -> None:
    citizen = bearer(services.token("citizen"))
    operator = bearer(services.token("operator"))
    notification = services.services["notification"].url
    async with httpx.AsyncClient(timeout=30) as client:
        notices = f"{notification}/notices"
        assert (await client.get(notices, params={"dossier_id": "HS-X"})).status_code == 401
        assert (await client.get(notices, params={"dossier_id": "HS-X"}, headers=citizen)).status_code == 403
        assert (await client.get(notices, params={"dossier_id": "HS-X"}, headers=operator)).status_code == 200
        assert (await client.get(f"{notification}/notices/1/attachment")).status_code == 401
        for name, service in services.services.items():
            assert (await client.get(f"{service.url}/health")).status_code == 200, name
            assert (await client.get(f"{service.url}/metrics")).status_code == 200, name
            now = (await client.get(f"{service.url}/clock")).json()["now"]
            moved = await client.put(f"{service.url}/clock", json={"now": now})
            assert moved.status_code == 401, name
            moved = await client.put(f"{service.url}/clock", json={"now": now}, headers=citizen)
            assert moved.status_code == 403, name
