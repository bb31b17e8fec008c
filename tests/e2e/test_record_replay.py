"""Record a system's streams, replay them into a fresh one: the same state, the same letters.

The origin system runs every service on virtual time. A few dossiers go through it: an
ordinary land transfer, a certified copy, one whose tax step overruns (the tax office is down
for two days: overdue, apology, late return), and one the desk sends back for a supplement.
Its topics are recorded to a file; the file is replayed into a fresh system (intake,
notification, console; the agencies' answers come from the file) and both systems' tables
are compared row for row. Then the file is replayed again and nothing changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.fresh import prefix_of, target_of
from infra.stack import Stack
from services.replay.record import record
from services.replay.replay import replay
from tests.dossier_samples import certified_copy, land_transfer, pay, signed_in, wait_for_status
from tests.systems import START, differences, fresh_system, set_time, settled, table_contents

pytestmark = pytest.mark.real

T0 = datetime.fromisoformat(START)
EVERY_SERVICE = ("intake", "land_registry", "tax", "notification", "console")
REPLAYED = ("intake", "notification", "console")


async def run_scenario(origin: Stack) -> dict[str, str]:
    """Four dossiers through the origin system; their ids by role."""
    async with signed_in(origin, "intake") as intake:
        normal = (await intake.post("/dossiers", json=land_transfer(7001))).json()["id"]
        copy = (await intake.post("/dossiers", json=certified_copy(7002))).json()["id"]
        await wait_for_status(intake, normal, "awaiting_payment")
        await settled(origin)  # letters go out at the time they were written, before it moves on
        await set_time(origin, T0 + timedelta(hours=3))
        await pay(intake, normal)
        await wait_for_status(intake, normal, "returned")

        # The tax office is down for two working days: its step overruns, the desk apologises.
        origin.stop_service("tax")
        late = (await intake.post("/dossiers", json=land_transfer(7003))).json()["id"]
        supplemented = (await intake.post("/dossiers", json=land_transfer(7004))).json()["id"]
        await settled(origin)  # tax is down: only the running services
        response = await intake.post(
            f"/dossiers/{supplemented}/supplement-requests",
            json={"missing_documents": ["Bản vẽ sơ đồ thửa đất"], "reason": "thiếu bản vẽ"},
        )
        assert response.status_code == 200, response.text
        await settled(origin)  # tax is down: only the running services
        await set_time(origin, T0 + timedelta(days=2, hours=1))  # Wednesday 09:00
        await settled(origin)  # tax is down: only the running services
        origin.start_service("tax")
        origin.wait_healthy("tax")
        await wait_for_status(intake, late, "awaiting_payment")
        await settled(origin)
        await set_time(origin, T0 + timedelta(days=2, hours=2))
        await pay(intake, late)
        await intake.post(f"/dossiers/{supplemented}/supplements", json={"documents": ["LAND_CERTIFICATE"]})
        await wait_for_status(intake, late, "returned")
        await wait_for_status(intake, supplemented, "awaiting_payment")
        await settled(origin)
        await set_time(origin, T0 + timedelta(days=3))
        await pay(intake, supplemented)
        await wait_for_status(intake, supplemented, "returned")
    await settled(origin)
    return {"normal": normal, "copy": copy, "late": late, "supplemented": supplemented}


async def state_of(system: Stack) -> dict[str, Any]:
    """Every business table of the replayed services."""
    return {schema: await table_contents(system.database_url, schema) for schema in REPLAYED}


def letters(system: Stack) -> list[tuple[str, str, str]]:
    """(recipient, subject, text) of every mail the system sent, sorted.

    Not the Message-ID: it names the desk event the notice answers, whose id a replay writes anew.
    """
    assert system.mailbox is not None
    sent = []
    for message in system.mailbox.messages():
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        sent.append((str(message["To"]), str(message["Subject"]), str(body.get_content())))
    return sorted(sent)


def count_rows(state: dict[str, Any], schema: str, table: str) -> int:
    return len(state[schema][table])


async def test_replay_rebuilds_the_same_state_and_letters_and_is_idempotent(
    stack: Stack, tmp_path: Path
) -> None:
    async with fresh_system(stack, EVERY_SERVICE) as origin:
        ids = await run_scenario(origin)
        recording = tmp_path / "origin.jsonl.gz"
        recorded = await record(origin.superuser, recording, prefix=prefix_of(origin), progress=False)
        assert recorded > 40
        expected = await state_of(origin)
        expected_letters = letters(origin)

    # The scenario did what it says: otherwise comparing two empty states would prove nothing.
    dossiers = {row["id"]: row for row in expected["intake"]["dossiers"]}
    assert {dossiers[i]["status"] for i in ids.values()} == {"returned"}
    assert dossiers[ids["late"]]["original_appointment_at"] is not None
    assert count_rows(expected, "console", "apologies") == 1
    assert len(expected_letters) >= 3  # the apology, the supplement request, the payment notices

    async with fresh_system(stack, REPLAYED) as fresh:
        report = await replay(recording, target_of(fresh), progress=False)
        assert report.refused == []
        assert report.reenacted == 4 + 3 + 1 + 1  # 4 filed, 3 paid, 1 supplement requested and given
        assert report.published > 0
        assert report.already_done == 0
        await settled(fresh)
        diff = differences(expected, await state_of(fresh))
        assert not diff, "\n".join(diff)
        assert letters(fresh) == expected_letters

        again = await replay(recording, target_of(fresh), progress=False)
        assert again.refused == []
        assert again.already_done == again.reenacted == report.reenacted
        await settled(fresh)
        diff = differences(expected, await state_of(fresh))
        assert not diff, "\n".join(diff)
        assert letters(fresh) == expected_letters
