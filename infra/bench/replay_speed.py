"""Replay speed: a slice of the generated year replayed into a fresh system on virtual time.

The slice is the year's first working days at the seed's full density (``services.replay.year``
with ``working_days``), so a stretch of virtual time carries as many dossiers as in the real
year. It goes into a fresh desk, notification service and console (own topic prefix, own
database, virtual clocks) beside the bench's stack, exactly as ``make replay-year`` does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from infra.bench.common import say
from infra.fresh import fresh_system, target_of
from infra.stack import Stack
from services.replay.recording import RecordingHeader, signed_as_published, write_recording
from services.replay.replay import default_services, replay
from services.replay.year import generate

REPLAYED = default_services()


@dataclass(frozen=True)
class ReplaySpeed:
    """What the replay did and how fast."""

    scale: float
    working_days: int
    dossiers: int
    events: int
    moments: int
    """Clock stops (barriers) the replayer made."""
    windows: int
    """Runs of inputs handed over between two stops."""
    wall_seconds: float
    events_per_s: float
    refused: int


async def measure(stack: Stack, *, scale: float, working_days: int, work_dir: Path) -> ReplaySpeed:
    """Replay the year's first ``working_days`` at ``scale`` into a fresh system beside ``stack``."""
    year = generate(scale=scale, working_days=working_days)
    recording = work_dir / "replay-slice.jsonl.gz"
    header = RecordingHeader(
        recorded_at=year.first_moment, source="generator", topics=(), records=len(year.records)
    )
    write_recording(recording, header, signed_as_published(year.records, stack.secrets.signing_key))
    say(
        f"replay: {len(year.dossiers)} dossiers, {len(year.records)} events ({working_days} working days"
        f" of the year at scale {scale:g}) into a fresh desk, notification and console"
    )
    start = (year.first_moment - timedelta(days=1)).isoformat()
    async with fresh_system(stack, REPLAYED, start=start, log_level="WARNING") as system:
        report = await replay(recording, target_of(system), progress=False)
    return ReplaySpeed(
        scale=scale,
        working_days=working_days,
        dossiers=len(year.dossiers),
        events=report.inputs,
        moments=report.moments,
        windows=report.windows,
        wall_seconds=report.wall_seconds,
        events_per_s=report.events_per_s,
        refused=len(report.refused),
    )
