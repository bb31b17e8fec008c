"""The fault scenarios' quick variant, and the audit they rely on caught in the act.

``make chaos QUICK=1`` starts its own system (three brokers, two of every service in the
rebalance, the officers' bot) and runs every scenario with short outages; each must lose and
double nothing. Since a harness that cannot see a loss proves nothing, the audit is also run on a
system where a step, a tax assessment and an e-mail have been tampered with: it must name each.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from infra.chaos.audit import Auditor, audit_pool
from infra.chaos.faults import FAULTS
from infra.stack import REPO, Stack
from services import manifest
from tests.dossier_samples import land_transfer, pay, signed_in, wait_for_status
from tests.systems import fresh_system

pytestmark = pytest.mark.real


async def test_the_audit_names_a_lost_step_a_doubled_e_mail_and_a_dead_letter(stack: Stack) -> None:
    async with fresh_system(stack, manifest.names()) as system:
        async with signed_in(system, "intake") as desk:
            filed = [
                (await desk.post("/dossiers", json=land_transfer(9100 + n))).json()["id"] for n in range(2)
            ]
            for dossier in filed:
                await wait_for_status(desk, dossier, "awaiting_payment", timeout=60)
                assert (await pay(desk, dossier)).status_code == 200
            for dossier in filed:
                await wait_for_status(desk, dossier, "returned", timeout=60)
        async with audit_pool(system) as pool:
            auditor = Auditor(system, pool, officers=False)  # the session's agencies decide at once
            await auditor.start()
            before = await auditor.settled(filed, timeout=60)
            assert before.clean, before.details()
            assert before.dossiers == 2

            lost, doubled = filed
            await pool.execute("DELETE FROM tax.assessments WHERE dossier_id = $1", lost)
            await pool.execute(
                "DELETE FROM land_registry.steps_done WHERE dossier_id = $1 AND step_index ="
                " (SELECT max(step_index) FROM land_registry.steps_done WHERE dossier_id = $1)",
                lost,
            )
            # The same e-mail delivered twice: a second copy of one of the dossier's messages.
            assert system.mailbox is not None
            sent = await pool.fetchval(
                "SELECT d.provider_id FROM notification.deliveries d JOIN notification.notices n"
                " ON n.id = d.notice_id WHERE n.dossier_id = $1 AND d.channel = 'email' LIMIT 1",
                doubled,
            )
            copy = next(
                path
                for path in sorted(system.mailbox.directory.glob("*.eml"))
                if sent in path.read_text(errors="replace")
            )
            shutil.copy(copy, copy.with_name("zz-copy-" + copy.name))
            # A malformed record on a handoff topic: dead-lettered by its consumer, so not clean.
            await _produce_garbage(system, "handoffs.tax")

            after = await auditor.audit(filed)
            assert not after.clean
            assert after.lost == {lost: ["land-registry steps: 1 of 2", "tax assessments: 0 of 1"]}, (
                after.details()
            )
            assert after.doubled == {doubled: [f"e-mail {sent} received 2 times"]}, after.details()
            for _ in range(30):
                if any("dead-lettered" in s for s in after.stuck):
                    break
                await asyncio.sleep(1)
                after = await auditor.audit(filed)
            assert "1 records dead-lettered" in after.stuck, after.stuck


async def _produce_garbage(system: Stack, topic: str) -> None:
    producer = AIOKafkaProducer(**system.superuser.client_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(system.topic_prefix + topic, b"{not json")
    finally:
        await producer.stop()


@pytest.mark.timeout(1200)
def test_every_quick_fault_scenario_loses_and_doubles_nothing(tmp_path: Path) -> None:
    results = tmp_path / "chaos.json"
    run = subprocess.run(
        [sys.executable, "-m", "infra.chaos", "--quick", "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    (REPO / "test-artifacts" / "chaos-quick.log").write_text(run.stdout + run.stderr)
    assert results.exists(), run.stderr[-3000:]
    scenarios = json.loads(results.read_text())["scenarios"]
    assert [s["scenario"] for s in scenarios] == [f.name for f in FAULTS]
    for s in scenarios:
        assert s["dossiers"] >= 12, s
        assert (s["lost"], s["doubled"], s["stuck"]) == (0, 0, []), s
    assert run.returncode == 0, run.stdout[-3000:]
