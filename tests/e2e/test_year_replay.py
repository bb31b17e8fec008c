"""A generated year of the seed city at 1%, replayed through the real desk on the real broker.

The full year is ``make replay-year``; here the same generator, replayer and report run at 1% of
the volume (969 dossiers, 1,396 boundary events, 1,088 moments of virtual time: a few minutes),
and the report the system produces must match what was generated, figure for figure, in the
seed's terms.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from infra.fresh import target_of
from infra.stack import Stack
from services.intake.app import load_catalog
from services.replay.recording import RecordingHeader, signed_as_published, write_recording
from services.replay.replay import replay
from services.replay.report import expected, measured
from services.replay.year import generate
from tests.systems import fresh_system

pytestmark = pytest.mark.real


@pytest.mark.timeout(1200)
async def test_a_scaled_down_year_reports_what_was_generated(stack: Stack, tmp_path: Path) -> None:
    year = generate(scale=0.01)
    recording = tmp_path / "year.jsonl.gz"
    header = RecordingHeader(
        recorded_at=year.first_moment, source="generator", topics=(), records=len(year.records)
    )
    write_recording(recording, header, signed_as_published(year.records, stack.secrets.signing_key))
    start = (year.first_moment - timedelta(days=1)).isoformat()
    async with fresh_system(stack, ("intake", "notification", "console"), start=start) as fresh:
        report = await replay(recording, target_of(fresh), progress=False)
        system = await measured(fresh.database_url, load_catalog())

    assert report.refused == []
    assert report.inputs == len(year.records)
    figures = system.figures()
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
