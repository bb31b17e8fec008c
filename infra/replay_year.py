"""``make replay-year [SCALE=0.01]``: a generated year of the seed city, replayed end to end.

Starts a fresh Kafka and Postgres (under ``.run/replay-year``), the desk, the notification
service and the console on virtual time, generates the year's stream
(:mod:`services.replay.year`), replays it (:mod:`services.replay.replay`), and prints the
report in the seed's terms beside what was generated, with the wall time and events per second.
Exit status 0 only if every figure matches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from infra.bench.common import cpu_probe
from infra.fresh import without_durability
from infra.kafka import free_port
from infra.kafka.acls import OPERATOR
from infra.stack import REPO, Stack, interrupt_on_signals
from infra.trust import TrustStore
from services.intake.app import load_catalog
from services.replay.recording import RecordingHeader, signed_as_published, write_recording
from services.replay.replay import REPLAY_ROLES, Target, default_services, replay
from services.replay.report import expected, measured, render
from services.replay.year import generate

REPLAYED = default_services()
REPLAYER = "replayer"


async def run(scale: float, run_dir: Path, *, progress: bool = True) -> int:
    """The whole scenario; the exit status."""
    started = time.monotonic()
    year = generate(scale=scale)
    recording = run_dir / f"year-{year.year}-scale-{scale}.jsonl.gz"
    run_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    trust = TrustStore(run_dir / "trust")
    write_recording(
        recording,
        RecordingHeader(
            recorded_at=datetime.now().astimezone(),
            source="generator",
            topics=tuple(sorted({r.topic for r in year.records})),
            records=len(year.records),
            note=f"services.replay.year, scale {scale}",
        ),
        # Signed with the keys of the system it is replayed into, which verifies every record.
        signed_as_published(year.records, trust.signing_key),
    )
    _say(f"generated {len(year.dossiers):,} dossiers, {len(year.records):,} boundary events -> {recording}")
    # The clocks start the day before the first arrival: nothing is due before it.
    start = (year.first_moment - timedelta(days=1)).isoformat()
    stack = Stack(
        run_dir=run_dir,
        kafka_port=free_port(),
        controller_port=free_port(),
        ports={name: free_port() for name in REPLAYED},
        extra_env={
            "CLOCK": "virtual",
            "VIRTUAL_CLOCK_START": start,
            "LOG_LEVEL": "WARNING",
            "AGENCY_DECISIONS": "automatic",
        },
        trust=trust,
    )
    try:
        stack.start(services=False)
        if stack.postgres is not None:
            # Our own embedded server, thrown away after: see infra.fresh.create_database. A
            # DATABASE_URL given by the user keeps its settings.
            await without_durability(stack.database_url)
        for name in stack.ports:
            stack.start_service(name)
        for name in stack.ports:
            stack.wait_healthy(name)
        target = Target(
            kafka=stack.kafka_access(OPERATOR),
            services={name: s.url for name, s in stack.services.items()},
            token=stack.token(*REPLAY_ROLES, subject="replayer"),
        )
        cpu = cpu_probe(stack, own=REPLAYER)
        before = cpu()
        report = await replay(recording, target, progress=progress)
        used = {name: seconds - before.get(name, 0.0) for name, seconds in cpu().items()}
        system = await measured(stack.database_url, load_catalog())
    finally:
        stack.stop()
    generated = expected(year)
    table = render(system, generated)
    print(f"\nA year of the seed city (scale {scale}), replayed through the desk, notification and console\n")
    print(table)
    print(
        f"\n{report.summary()}\nwhere the time went: {report.profile()}\n"
        f"replay: {report.wall_seconds:.1f} s wall for {report.inputs:,} events"
        f" = {report.events_per_s:,.0f} events/s; whole run {time.monotonic() - started:.1f} s"
    )
    print(cpu_profile(used, report.wall_seconds))
    matches = system.figures() == generated.figures() and not report.refused
    print("every figure matches what was generated" if matches else "MISMATCH: see the rows marked NO")
    return 0 if matches else 1


def cpu_profile(used: dict[str, float], wall_seconds: float) -> str:
    """Where the replay's CPU went, by process, largest first, and how many cores that kept busy.

    A service counts with the processes it started (notification's letter workers); Postgres
    with its backends.
    """
    total = sum(used.values())
    parts = ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in sorted(used.items(), key=lambda kv: -kv[1])
    )
    cores = total / wall_seconds if wall_seconds > 0 else 0.0
    busy = f"{cores:.2f} of {os.cpu_count()} cores busy on average"
    return f"CPU during the replay: {total:.1f} s ({busy}): {parts}"


def _say(message: str) -> None:
    print(f"[replay-year] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """The CLI."""
    parser = argparse.ArgumentParser(prog="python -m infra.replay_year", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="share of the seed's volume (default 1)")
    parser.add_argument("--run-dir", type=Path, default=REPO / ".run" / "replay-year")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.run_dir.exists():
        shutil.rmtree(args.run_dir)  # a fresh system every time: a replay into old state proves little
    interrupt_on_signals()  # Ctrl-C or SIGTERM stops the replay, then Kafka, Postgres and the services
    try:
        return asyncio.run(run(args.scale, args.run_dir, progress=not args.no_progress))
    except KeyboardInterrupt:
        _say("interrupted; the stack was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
