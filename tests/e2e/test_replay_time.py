"""How time moves in a replay: an alarm and an agency's answer in the same minute, both orders.

A hand-made stream of three mortgages (one land-registry step of 2.5 working days each), each
answered around its due time: 30 seconds before it, exactly at it, 30 seconds after it. The
replayer stops the clock only where an alarm can fall due and hands the answers over between
stops, so these are the cases where it could get the order wrong. What the moment-by-moment
replay gives, and this one must: an answer before the due time settles the step with no
alarm; an alarm due by a moment fires before that moment's inputs, so the answer at the due
time and the one after it are late, each dossier gets one apology, dated the moment its alarm
fired, numbered in the order the alarms fired.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from contracts.agencies import LAND_REGISTRY
from infra.fresh import target_of
from infra.stack import Stack
from services.replay.recording import RecordingHeader, signed_as_published, write_recording
from services.replay.replay import replay
from services.replay.year import dossier_stream
from services.runtime.working_days import WorkingDayCalendar
from tests.systems import START, fresh_system

pytestmark = pytest.mark.real

RECEIVED = datetime.fromisoformat(START)
BUDGET = Decimal("2.5")  # LAND-MORTGAGE's register_mortgage
OFFSETS = {"HS-TIME-BEFORE": -30, "HS-TIME-AT": 0, "HS-TIME-AFTER": 30}
"""Each dossier's answer, in seconds from its step's due time."""


def due(dossier: int) -> datetime:
    """When the n-th dossier's step is due: received an hour apart, 2.5 working days each."""
    return WorkingDayCalendar().add_working_time(RECEIVED + timedelta(hours=dossier), BUDGET)


async def test_an_alarm_and_an_answer_in_the_same_minute_keep_their_order(
    stack: Stack, tmp_path: Path
) -> None:
    records = []
    for n, (dossier, offset) in enumerate(OFFSETS.items()):
        answered = due(n) + timedelta(seconds=offset)
        records += dossier_stream(
            "LAND-MORTGAGE",
            dossier,
            9000 + n,
            RECEIVED + timedelta(hours=n),
            answered_at={"register_mortgage": answered},
        )
    records.sort(key=lambda r: r.timestamp_ms)
    recording = tmp_path / "same-minute.jsonl.gz"
    header = RecordingHeader(recorded_at=RECEIVED, source="hand-made", topics=(), records=len(records))
    write_recording(recording, header, signed_as_published(records, stack.secrets.signing_key))

    async with fresh_system(stack, ("intake", "notification", "console")) as fresh:
        report = await replay(recording, target_of(fresh), progress=False)
        assert report.refused == []
        conn = await asyncpg.connect(fresh.database_url)
        try:
            steps = {
                r["dossier_id"]: r
                for r in await conn.fetch(
                    "SELECT dossier_id, overdue_at, completed_at, late_by_days FROM console.slip_rows"
                    " WHERE to_agency = $1",
                    LAND_REGISTRY,
                )
            }
            apologies = await conn.fetch(
                "SELECT dossier_id, letter_number, issued_at FROM console.apologies ORDER BY letter_number"
            )
            letters = await conn.fetch(
                "SELECT dossier_id FROM notification.notices WHERE kind = 'apology' ORDER BY dossier_id"
            )
        finally:
            await conn.close()

    # 30 s early: settled in time, never overdue.
    before = steps["HS-TIME-BEFORE"]
    assert before["overdue_at"] is None
    assert before["completed_at"] == due(0) - timedelta(seconds=30)
    # At the due time and after it: the alarm came first, at the moment of the answer.
    for n, dossier in ((1, "HS-TIME-AT"), (2, "HS-TIME-AFTER")):
        answered = due(n) + timedelta(seconds=OFFSETS[dossier])
        assert steps[dossier]["overdue_at"] == answered, dossier
        assert steps[dossier]["completed_at"] == answered, dossier
    assert [(a["dossier_id"], a["letter_number"], a["issued_at"]) for a in apologies] == [
        ("HS-TIME-AT", "PXL-2026-000001", due(1)),
        ("HS-TIME-AFTER", "PXL-2026-000002", due(2) + timedelta(seconds=30)),
    ]
    assert [r["dossier_id"] for r in letters] == ["HS-TIME-AFTER", "HS-TIME-AT"]  # one letter each
