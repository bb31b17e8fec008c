"""A generated year of the seed city at 0.05%, replayed through the real desk on the real broker.

The full year is ``make replay-year``; here the same generator, replayer and report run at 0.05%
of the volume, and the report the system produces must match what was generated, figure for
figure, in the seed's terms.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from infra.stack import Stack
from services.intake.app import load_catalog
from services.replay.recording import RecordingHeader, write_recording
from services.replay.replay import replay
from services.replay.report import expected, measured
from services.replay.year import generate
from tests.systems import fresh_system, target_of

pytestmark = pytest.mark.real


@pytest.mark.timeout(600)
async def test_a_scaled_down_year_reports_what_was_generated(stack: Stack, tmp_path: Path) -> None:
    year = generate(scale=0.0005)
    recording = tmp_path / "year.jsonl.gz"
    header = RecordingHeader(
        recorded_at=year.first_moment, source="generator", topics=(), records=len(year.records)
    )
    write_recording(recording, header, year.records)
    start = (year.first_moment - timedelta(days=1)).isoformat()
    async with fresh_system(stack, ("intake", "notification", "console"), start=start) as fresh:
        report = await replay(recording, target_of(fresh), progress=False)
        system = await measured(fresh.database_url, load_catalog())

    assert report.refused == []
    assert report.inputs == len(year.records)
    figures = system.figures()
    # The seed's figures at 0.05%: 23,602 → 12 city dossiers, 19,482 → 10 on time; 73,334 → 37 ward.
    assert figures["level city"] == (12, 12, 10, 2, 2)
    assert figures["level ward"] == (37, 37, 37, 0, 0)
    assert figures == expected(year).figures()
    # Every late dossier got one apology, signed by the agency whose step overran.
    assert sum(line.apologies for line in system.agencies.values()) == 2
    assert set(system.agencies) <= {"land_registry", "tax"}
