"""A generated year of the seed city at 1%, replayed through the real desk on the real broker.

The full year is ``make replay-year``; here the same generator, replayer and report run at 1% of
the volume (969 dossiers, 1,376 boundary events), three times into three fresh systems:

* the report the system produces must match what was generated, figure for figure, in the
  seed's terms;
* a second replay of the same file gives the same report, the same apology letters (numbers,
  dates, agencies) and the same tables, row for row: the replay does not depend on timing;
* a third replay, whose desk is killed (SIGKILL) a third of the way and started again, still
  ends with the same report, letters and tables.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from infra.fresh import target_of
from infra.stack import Stack
from services.intake.app import load_catalog
from services.replay.recording import RecordingHeader, signed_as_published, write_recording
from services.replay.replay import ReplayReport, replay
from services.replay.report import expected, measured, render
from services.replay.year import GeneratedYear, generate
from tests.systems import differences, fresh_system, table_contents

pytestmark = pytest.mark.real

REPLAYED = ("intake", "notification", "console")


@dataclass(frozen=True)
class Outcome:
    """What a replay left behind: its report, the report's table, the letters, the tables."""

    report: ReplayReport
    figures: dict[str, tuple[int, int, int, int, int]]
    table: str
    letters: list[tuple[Any, ...]]
    state: dict[str, Any]


async def replayed(
    stack: Stack,
    year: GeneratedYear,
    recording: Path,
    *,
    meanwhile: Callable[[Stack], Awaitable[None]] | None = None,
) -> Outcome:
    """Replay ``recording`` into a fresh system (running ``meanwhile`` beside it); what it left."""
    start = (year.first_moment - timedelta(days=1)).isoformat()
    async with fresh_system(stack, REPLAYED, start=start) as fresh:
        replaying = asyncio.create_task(replay(recording, target_of(fresh), progress=False))
        if meanwhile is not None:
            await meanwhile(fresh)
        report = await replaying
        system = await measured(fresh.database_url, load_catalog())
        conn = await asyncpg.connect(fresh.database_url)
        try:
            letters = [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT letter_number, dossier_id, issued_by_agency, issued_at, new_appointment_at"
                    " FROM console.apologies ORDER BY letter_number"
                )
            ]
        finally:
            await conn.close()
        state = {schema: await table_contents(fresh.database_url, schema) for schema in REPLAYED}
    return Outcome(report, system.figures(), render(system, expected(year)), letters, state)


async def kill_the_desk_a_third_of_the_way(fresh: Stack) -> None:
    """SIGKILL intake once a third of the year's dossiers are in, and start it again."""
    conn = await asyncpg.connect(fresh.database_url)
    try:
        while (await conn.fetchval("SELECT count(*) FROM intake.dossiers")) < 320:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # nothing to wait on but the desk's table
    finally:
        await conn.close()
    await asyncio.to_thread(fresh.stop_service, "intake", sig=signal.SIGKILL)
    await asyncio.to_thread(fresh.start_service, "intake")
    await asyncio.to_thread(fresh.wait_healthy, "intake")


@pytest.mark.timeout(1200)
async def test_a_scaled_down_year_replays_to_the_same_report_every_time(stack: Stack, tmp_path: Path) -> None:
    year = generate(scale=0.01)
    recording = tmp_path / "year.jsonl.gz"
    header = RecordingHeader(
        recorded_at=year.first_moment, source="generator", topics=(), records=len(year.records)
    )
    write_recording(recording, header, signed_as_published(year.records, stack.secrets.signing_key))

    first = await replayed(stack, year, recording)
    assert first.report.refused == []
    assert first.report.inputs == len(year.records)
    figures = first.figures
    # The seed's figures at 1%: 23,602 → 236 city dossiers, 19,482 → 195 on time; 73,334 → 733 ward.
    # (received, settled, on time, late, apology letters)
    assert figures["level city"] == (236, 236, 195, 41, 41)
    assert figures["level ward"] == (733, 733, 733, 0, 0)
    # Each late dossier was late at one agency, which signed its one apology; the desk never.
    assert figures["agency one_stop"] == (969, 969, 969, 0, 0)
    late_at = {a: figures[f"agency {a}"][3] for a in ("land_registry", "tax")}
    assert sum(late_at.values()) == 41
    assert all(figures[f"agency {a}"][4] == n for a, n in late_at.items())
    assert figures == expected(year).figures()
    assert [number for number, *_ in first.letters] == [f"PXL-2026-{n:06d}" for n in range(1, 42)]

    second = await replayed(stack, year, recording)
    assert second.table == first.table
    assert second.letters == first.letters
    assert not differences(first.state, second.state), "\n".join(differences(first.state, second.state))

    killed = await replayed(stack, year, recording, meanwhile=kill_the_desk_a_third_of_the_way)
    assert killed.report.refused == []
    assert killed.table == first.table
    assert killed.letters == first.letters
    assert not differences(first.state, killed.state), "\n".join(differences(first.state, killed.state))
