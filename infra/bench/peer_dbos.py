"""The benchmark's peer: our land-transfer route as DBOS Transact workflows, measured like ours.

``python -m infra.bench.peer_dbos --database-url URL --dossiers N --concurrency C`` runs, in
this process and on its own database, the route of :mod:`infra.bench.peer_route`: a warm-up, a
closed loop (N dossiers, C in flight: the rate at saturation), then an open loop at a steady
rate (step latency), and prints the figures as one JSON object on stdout. It runs in its own
process because ``DBOS.launch()`` is process-global, and so that its CPU is its own.

The driver plays the citizen as our load generator does: it files a dossier (enqueues its
workflow), waits until the desk asks for payment (the workflow's ``awaiting_payment`` event),
pays at once (a message to the workflow) and waits for the result. It runs in the peer's
process, so the peer's CPU includes it, where our figures count the load generator apart.

:func:`measure` is what the bench calls: it creates the database, runs the subprocess and
returns its figures with Postgres' and the mailbox's CPU over the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dbos import DBOS, AsyncSQLAlchemyDatasource, Queue

from infra.bench.common import cpu_seconds, percentile
from infra.bench.peer_route import (
    AWAITING_PAYMENT,
    PAYMENT,
    QUEUE,
    LandTransferRoute,
    StepTimes,
    install,
    land_transfer_workflow,
    letter_signer,
    prepare_database,
    smtp_channel,
)
from infra.fresh import create_database
from infra.stack import REPO, Stack

QUEUE_POLLING_SECONDS = 0.05
"""DBOS's default (1 s) adds up to a second before a dossier starts; 50 ms keeps the queue's
dequeue query to 20 a second while a dossier waits at most that long."""
WAIT_SECONDS = 300.0


def what_it_does(*, e_mail: bool, signed: bool) -> tuple[str, str]:
    """What the peer does and does not do of what our system does, for the report."""
    does = (
        "the same 11 steps as our services (receive, appraise, route on, assess, route on, payment,"
        " issue certificate, route on, and the three notices), decided by the same domain code, writing"
        " the same rows in the same tables (dossier and slip, steps_done, assessment, notices,"
        " deliveries, delivery attempts), one transaction per step with DBOS's checkpoint in it"
    )
    does += "; the result letter's PDF PAdES-signed" if signed else ""
    does += "; every notice e-mailed over SMTP to the bench's mailbox" if e_mail else ""
    does_not = (
        "no Kafka: no topics between agencies, so no per-agency isolation (one process, one database"
        " user, one set of schemas), no event signatures (Ed25519) and no verification, no outbox relay"
        " or inbox (DBOS's step checkpoint takes their place); no HTTP API and no tokens (the driver"
        " enqueues in-process); no console read model (the DossierProgressed projection); no deadline"
        " watcher; notices sent in the workflow's order, not by a separate delivery worker"
    )
    does_not += "" if signed else "; letters not signed"
    does_not += "" if e_mail else "; notices recorded but not e-mailed"
    return does, does_not


@dataclass
class PeerPhase:
    """What one load phase of the peer did and measured."""

    name: str
    dossiers: int
    returned: int
    seconds: float
    dossiers_per_s: float
    concurrency: int | None
    offered_per_s: float | None
    route_p50_s: float | None
    route_p99_s: float | None
    step_ms: dict[str, float | None]
    """One step's end to the next one's start (the citizen's payment left out): our handoff's analogue."""
    steps: int
    cpu_seconds: dict[str, float]
    """The peer process itself, and each process given with ``--watch``."""


class Driver:
    """Files dossiers on the queue and plays the citizen, as :class:`infra.bench.load.LoadDriver` does."""

    def __init__(self, queue: Queue, times: StepTimes, watch: dict[str, int]) -> None:
        self.queue = queue
        self.times = times
        self.watch = watch
        self.run = uuid.uuid4().hex[:6].upper()
        self.numbers = iter(range(1, 10**9))

    async def trip(self) -> tuple[str, str, float]:
        """One dossier from filing to its result: (workflow id, final status, seconds)."""
        n = next(self.numbers)
        started = time.perf_counter()
        handle = await self.queue.enqueue_async(land_transfer_workflow, f"HS-PEER-{self.run}-{n:06d}", n)
        payment = await DBOS.get_event_async(
            handle.workflow_id, AWAITING_PAYMENT, timeout_seconds=WAIT_SECONDS
        )
        if payment is None:
            raise RuntimeError(f"{handle.workflow_id} never asked for payment")
        await DBOS.send_async(handle.workflow_id, payment, PAYMENT)
        status = await handle.get_result()
        return handle.workflow_id, status, time.perf_counter() - started

    async def closed_loop(self, name: str, *, dossiers: int, concurrency: int) -> PeerPhase:
        """``dossiers`` dossiers, at most ``concurrency`` in flight."""
        gate = asyncio.Semaphore(concurrency)

        async def bounded() -> tuple[str, str, float]:
            async with gate:
                return await self.trip()

        return await self._phase(name, [bounded for _ in range(dossiers)], concurrency=concurrency)

    async def open_loop(self, name: str, *, rate: float, seconds: float) -> PeerPhase:
        """Dossiers started at a steady ``rate`` per second for ``seconds``."""
        count = max(1, round(rate * seconds))
        start = time.perf_counter()

        async def paced(i: int) -> tuple[str, str, float]:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            return await self.trip()

        starts = [lambda i=i: paced(i) for i in range(count)]
        return await self._phase(name, starts, offered=rate)

    async def _phase(
        self,
        name: str,
        trips: Sequence[Callable[[], Awaitable[tuple[str, str, float]]]],
        *,
        concurrency: int | None = None,
        offered: float | None = None,
    ) -> PeerPhase:
        cpu_before = self._cpu()
        started = time.perf_counter()
        done = await asyncio.gather(*(trip() for trip in trips))
        seconds = time.perf_counter() - started
        cpu_after = self._cpu()
        routes = [d[2] for d in done]
        gaps = self.times.gaps_ms([d[0] for d in done])
        return PeerPhase(
            name=name,
            dossiers=len(done),
            returned=sum(1 for d in done if d[1] == "returned"),
            seconds=seconds,
            dossiers_per_s=len(done) / seconds if seconds > 0 else 0.0,
            concurrency=concurrency,
            offered_per_s=offered,
            route_p50_s=percentile(routes, 50),
            route_p99_s=percentile(routes, 99),
            step_ms={
                "p50": percentile(gaps, 50),
                "p95": percentile(gaps, 95),
                "p99": percentile(gaps, 99),
                "max": max(gaps) if gaps else None,
            },
            steps=len(gaps),
            cpu_seconds={k: round(cpu_after[k] - cpu_before[k], 3) for k in cpu_after if k in cpu_before},
        )

    def _cpu(self) -> dict[str, float]:
        readings = {"peer": time.process_time()}  # every thread of this process, DBOS's included
        for label, pid in self.watch.items():
            if (value := cpu_seconds(pid)) is not None:
                readings[label] = value
        return readings


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the database, launch DBOS, drive the phases; the figures."""
    await prepare_database(args.database_url)
    DBOS(
        config={
            "name": "peer-dbos",
            "system_database_url": args.database_url,
            "log_level": "WARNING",
            # One system-database connection per dossier in flight, as DBOS advises for its pool.
            "sys_db_pool_size": max(20, args.concurrency),
        }
    )
    datasource = await AsyncSQLAlchemyDatasource.create(
        args.database_url, engine_kwargs={"pool_size": max(10, args.concurrency), "max_overflow": 10}
    )
    times = StepTimes()
    email = smtp_channel(args.smtp_port)
    install(
        LandTransferRoute(datasource, signer=letter_signer(args.letter_signing_dir), email=email, times=times)
    )
    # Launched from inside the running loop: DBOS then runs queued async workflows on this loop.
    DBOS.launch()
    try:
        queue = await DBOS.register_queue_async(
            QUEUE, worker_concurrency=args.concurrency, polling_interval_sec=QUEUE_POLLING_SECONDS
        )
        driver = Driver(queue, times, dict(args.watch))
        await driver.closed_loop("warm-up", dossiers=args.warmup, concurrency=args.warmup)
        saturation = await driver.closed_loop(
            "saturation", dossiers=args.dossiers, concurrency=args.concurrency
        )
        rate = args.rate or max(0.5, min(20.0, round(saturation.dossiers_per_s / 2, 1)))
        moderate = await driver.open_loop("moderate", rate=rate, seconds=args.seconds)
    finally:
        if email is not None:
            await email.close()
        DBOS.destroy()
    does, does_not = what_it_does(e_mail=email is not None, signed=args.letter_signing_dir is not None)
    return {
        "dbos_version": version("dbos"),
        "queue": {
            "name": QUEUE,
            "worker_concurrency": args.concurrency,
            "polling_interval_sec": QUEUE_POLLING_SECONDS,
        },
        "isolation_level": "READ COMMITTED",
        "e_mail_sent": email is not None,
        "letters_signed": args.letter_signing_dir is not None,
        "saturation": asdict(saturation),
        "moderate": asdict(moderate),
        "does": does,
        "does_not": does_not,
    }


async def measure(
    stack: Stack,
    *,
    dossiers: int,
    concurrency: int,
    rate: float,
    seconds: float,
    warmup: int,
    pids: dict[str, int],
) -> dict[str, Any]:
    """Run the peer beside ``stack`` on a database of its own; its figures (``run``'s JSON).

    Durable like ours (``synchronous_commit`` on); e-mail to the stack's mailbox and letters
    signed with the stack's certificates when the stack has them. ``pids`` (Postgres, the mailbox)
    are the shared processes whose CPU over each phase is reported beside the peer's own.
    """
    database = await create_database(stack.database_url, f"peer_dbos_{uuid.uuid4().hex[:8]}")
    command = [
        sys.executable,
        "-m",
        "infra.bench.peer_dbos",
        f"--database-url={database}",
        f"--dossiers={dossiers}",
        f"--concurrency={concurrency}",
        f"--rate={rate}",
        f"--seconds={seconds}",
        f"--warmup={warmup}",
        f"--letter-signing-dir={stack.letter_signing_dir()}",
        *(f"--watch={label}={pid}" for label, pid in pids.items()),
    ]
    if stack.mailbox is not None:
        command.append(f"--smtp-port={stack.mail_port}")
    log_path = stack.run_dir / "logs" / "peer-dbos.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=log, cwd=REPO
        )
        try:
            out, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the DBOS peer failed ({process.returncode}); see {log_path}")
    results: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    results["database"] = urlsplit(database).path.lstrip("/")
    return results


def _pid(text: str) -> tuple[str, int]:
    label, _, pid = text.partition("=")
    return label, int(pid)


def main(argv: list[str] | None = None) -> int:
    """The CLI (see the module's doc): figures as one JSON object on stdout."""
    parser = argparse.ArgumentParser(prog="python -m infra.bench.peer_dbos", description=__doc__)
    parser.add_argument(
        "--database-url", required=True, help="the peer's own database (DBOS's tables go there too)"
    )
    parser.add_argument("--dossiers", type=int, required=True, help="dossiers in the closed loop")
    parser.add_argument(
        "--concurrency", type=int, required=True, help="dossiers in flight (the queue's concurrency)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="dossiers before measuring")
    parser.add_argument(
        "--rate", type=float, help="offered dossiers/s in the open loop (default: half the saturation)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the open loop")
    parser.add_argument(
        "--smtp-port", type=int, help="e-mail the notices to 127.0.0.1:PORT (default: record only)"
    )
    parser.add_argument(
        "--letter-signing-dir", type=Path, help="sign the letters (LETTER_SIGNING_DIR layout)"
    )
    parser.add_argument(
        "--watch",
        type=_pid,
        action="append",
        default=[],
        metavar="NAME=PID",
        help="also report this process tree's CPU",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(run(args))
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
