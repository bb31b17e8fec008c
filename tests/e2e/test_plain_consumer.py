"""An agency plugs in from the published contracts alone: the committed schemas suffice."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from infra.kafka.acls import OPERATOR
from infra.stack import Stack
from tests.dossier_samples import land_transfer, pay, signed_in, wait_for_status

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[2]


async def test_plain_aiokafka_consumer_validates_a_whole_dossier(services: Stack) -> None:
    async with signed_in(services, "intake") as intake:
        dossier_id = (await intake.post("/dossiers", json=land_transfer(9500))).json()["id"]
        await wait_for_status(intake, dossier_id, "awaiting_payment")
        await pay(intake, dossier_id)
        await wait_for_status(intake, dossier_id, "returned")
    topics = [
        "intake.events",
        "intake.citizens",
        "handoffs.land_registry",
        "handoffs.tax",
        "land_registry.events",
        "tax.events",
    ]
    # -I: isolated mode, the way an outside program runs (no cwd on the path).
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", str(REPO / "tests/e2e/plain_consumer.py"), services.bootstrap_servers,
        str(REPO / "contracts/schemas"), dossier_id, *topics,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **services.kafka_access(OPERATOR).env(), **services.signing_env()},
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    seen = [json.loads(line) for line in out.decode().splitlines()]
    assert all(e["verified_by"] for e in seen)  # every record's signature checked from the JWKS alone
    snapshots = [e for e in seen if e["type"] == "vn.gov.dossier.progressed.v2"]
    assert len(snapshots) >= 5  # the desk's state after each change, validated too
    assert sorted((e["topic"], e["type"]) for e in seen if e not in snapshots) == sorted(
        [
            ("intake.citizens", "vn.gov.dossier.received.v2"),
            ("handoffs.land_registry", "vn.gov.dossier.handed_over.v1"),
            ("land_registry.events", "vn.gov.dossier.step_completed.v1"),
            ("handoffs.tax", "vn.gov.dossier.handed_over.v1"),
            ("tax.events", "vn.gov.tax.payment_notice_issued.v1"),
            ("tax.events", "vn.gov.dossier.step_completed.v1"),
            ("intake.events", "vn.gov.dossier.payment_received.v1"),
            ("handoffs.land_registry", "vn.gov.dossier.handed_over.v1"),
            ("land_registry.events", "vn.gov.dossier.step_completed.v1"),
            ("intake.citizens", "vn.gov.dossier.returned.v1"),
        ]
    )
