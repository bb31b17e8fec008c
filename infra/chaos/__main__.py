"""``python -m infra.chaos [--quick] [--scenario NAME ...]``: the fault scenarios, one table.

Starts its own system under /tmp (three brokers, embedded Postgres, the mailbox, every service
on free ports of 127.0.0.1), runs the scenarios, prints the table, writes the results as JSON
and stops everything. Exit status 1 when any scenario lost, doubled or left something stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.chaos.faults import FAULTS, FULL, QUICK, Durations, Fault
from infra.chaos.harness import Harness, Outcome, table
from infra.kafka import free_port
from infra.stack import REPO, Stack, interrupt_on_signals
from services import manifest

START = datetime.fromisoformat("2026-03-09T08:00:00+07:00")
"""A Monday morning: the virtual clocks start here and move one working hour per tick."""
WALL_CLOCK = frozenset({"notification"})
"""Services left on the wall clock: the delivery retries and the mail server's outage are real time."""


def system_for(run_dir: Path) -> Stack:
    """The system the scenarios run on: a three-broker cluster, officers deciding after delays."""
    return Stack(
        run_dir=run_dir,
        brokers=3,
        ports={name: free_port() for name in manifest.names()},
        extra_env={
            "LOG_LEVEL": "WARNING",
            "CLOCK": "virtual",
            "VIRTUAL_CLOCK_START": START.isoformat(),
            "CONSOLE_TOKEN": secrets.token_urlsafe(24),
            # Officers (the bot) take 2 to 26 working hours on steps budgeted 24 and 28: a few late.
            "AGENCY_DECISIONS": "catalog",
            "OFFICER_BOT": "on",
            "OFFICER_BOT_DELAY_HOURS": "2,26",
            # Retries every few seconds, for long enough to outlast the mail server's outage.
            "DELIVERY_BACKOFF_SECONDS": "2",
            "DELIVERY_BACKOFF_MAX_SECONDS": "15",
            "DELIVERY_MAX_ATTEMPTS": "100",
            # A send cut off by a SIGKILL is taken up again when its lease runs out: soon here,
            # so the audit sees it delivered (SMTP to the local mailbox answers in milliseconds).
            "DELIVERY_LEASE_SECONDS": "20",
            "SMTP_TIMEOUT_SECONDS": "5",
        },
        per_service_env={name: {"CLOCK": "wall"} for name in WALL_CLOCK},
    )


async def run(faults: list[Fault], durations: Durations, *, seed: int, tick: float) -> list[Outcome]:
    """Start a system, run ``faults`` one at a time, stop it; each scenario's outcome."""
    run_dir = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))  # short: Postgres' socket path
    system = system_for(run_dir)
    outcomes: list[Outcome] = []
    try:
        await asyncio.to_thread(system.start)
        async with Harness(system, start=START, tick=tick, wall_clock=WALL_CLOCK, seed=seed) as harness:
            for fault in faults:
                _say(f"{fault.name}: {fault.what}")
                outcome = await harness.scenario(fault, durations, settle_timeout=180)
                outcomes.append(outcome)
                verdict = "clean" if outcome.audit.clean else "FOUND: " + " | ".join(outcome.audit.details())
                _say(f"{fault.name}: {outcome.audit.dossiers} dossiers, {verdict}")
                if outcome.restarted:
                    _say(f"{fault.name}: stopped by themselves, restarted: {', '.join(outcome.restarted)}")
    finally:
        await asyncio.to_thread(system.stop)
        logs = REPO / "test-artifacts" / "chaos-logs"
        if (run_dir / "logs").exists():
            shutil.copytree(run_dir / "logs", logs, dirs_exist_ok=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    return outcomes


def as_json(outcomes: list[Outcome], *, quick: bool, seed: int, seconds: float) -> dict[str, Any]:
    """The results file's content."""
    return {
        "mode": "quick" if quick else "full",
        "seed": seed,
        "seconds": round(seconds, 1),
        "scenarios": [
            {
                "scenario": o.scenario,
                "dossiers": o.audit.dossiers,
                "lost": len(o.audit.lost),
                "doubled": len(o.audit.doubled),
                "stuck": o.audit.stuck,
                "alarms_fired": o.audit.alarms,
                "apologies": o.audit.apologies,
                "fault_seconds": round(o.fault_seconds, 1),
                "first_recovered_seconds": _round(o.first_recovered_seconds),
                "recovered_seconds": _round(o.recovered_seconds),
                "settled_seconds": round(o.settled_seconds, 1),
                "restarted_by_supervisor": o.restarted,
                "findings": o.audit.details(limit=50),
            }
            for o in outcomes
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the table, write the JSON; 1 if anything was lost, doubled or stuck."""
    parser = argparse.ArgumentParser(prog="python -m infra.chaos", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="short windows and outages (the test suite's run)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        help="run only scenarios whose name contains this (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "0")) or None)
    parser.add_argument("--tick", type=float, default=0.2, help="wall seconds per virtual working hour")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # While Postgres is down by design, the harness's own pool retries with a traceback a second.
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
    interrupt_on_signals()
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    faults = [f for f in FAULTS if not args.scenario or any(s in f.name for s in args.scenario)]
    if not faults:
        parser.error(f"no scenario matches {args.scenario}; they are: {', '.join(f.name for f in FAULTS)}")
    durations = QUICK if args.quick else FULL
    _say(f"{len(faults)} scenarios, seed {seed} (CHAOS_SEED={seed} repeats the random moments)")
    started = time.monotonic()
    outcomes = asyncio.run(run(faults, durations, seed=seed, tick=args.tick))
    results = as_json(outcomes, quick=args.quick, seed=seed, seconds=time.monotonic() - started)
    path = args.json or (
        REPO / "test-artifacts" / "chaos-quick.json" if args.quick else REPO / "chaos-results.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(table(outcomes))
    print(f"\n{len(outcomes)} scenarios in {results['seconds']:.0f} s; results in {path}")
    failed = [o.scenario for o in outcomes if not o.audit.clean]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _say(message: str) -> None:
    print(f"[chaos] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
