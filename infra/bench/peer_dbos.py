"""The benchmark's peer: our land-transfer route as DBOS Transact workflows, measured like ours.

``python -m infra.bench.peer_dbos --database-url URL --dossiers N --concurrency C [--executors E]``
runs, on its own database, the route of :mod:`infra.bench.peer_route`: a warm-up, a closed loop
(N dossiers, C in flight: the rate at saturation), then an open loop at a steady rate (step
latency), and prints the figures as one JSON object on stdout. It runs in processes of its own
because ``DBOS.launch()`` is process-global, and so that its CPU is its own.

DBOS scales out by running more processes of the application on the same system database, each
with its own executor id, all dequeuing from the same queue. So the peer runs E executors: this
process (executor 0, which also drives) and E - 1 worker processes started with ``--worker``,
each with the queue's ``worker_concurrency`` at C / E. A worker stops when its stdin reaches end
of file: when the driver closes it, or when the driver dies and the kernel closes it.

The driver plays the citizen as our load generator does: it files a dossier (enqueues its
workflow), waits until the desk asks for payment (the workflow's ``awaiting_payment`` event),
pays at once (a message to the workflow) and waits for the result. It runs in executor 0's
process, so the peer's CPU includes it, where our figures count the load generator apart.

:func:`measure` is what the bench calls: it creates the database, runs the subprocess and
returns its figures with Postgres' and the mailbox's CPU over the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, replace
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
dequeue query to 20 a second per executor while a dossier waits at most that long."""
WAIT_SECONDS = 300.0
WORKER_READY_SECONDS = 120.0
WORKER_STOP_SECONDS = 60.0


def executor_id(index: int) -> str:
    """The DBOS executor id of the peer's ``index``-th process (0: the driver's).

    DBOS tells executors apart by this id: each claims queued workflows under it and, at launch,
    recovers only the pending workflows recorded under it, so every process needs its own.
    """
    return f"peer-dbos-{index}"


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
        "no Kafka: no topics between agencies, so no per-agency isolation (one database user, one set"
        " of schemas), no event signatures (Ed25519) and no verification, no outbox relay"
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
    """``peer``: every process of the peer (the driver's and each worker's); and each process
    given with ``--watch``."""
    executor_cpu_seconds: dict[str, float]
    """``peer`` by executor process (executor 0's includes the driver)."""
    workflows_by_executor: dict[str, int]
    """How many of the phase's workflows each executor ran."""


class Workers:
    """The peer's executors 1 to E - 1: worker processes on the driver's system database and queue."""

    def __init__(self) -> None:
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    @property
    def pids(self) -> dict[str, int]:
        """Each worker's process id, by its executor id."""
        return {name: process.pid for name, process in self.processes.items()}

    async def start(self, args: argparse.Namespace, *, count: int, share: int) -> None:
        """Start ``count`` workers and wait until each has launched DBOS and registered the queue."""
        for index in range(1, count + 1):
            command = [
                sys.executable,
                "-m",
                "infra.bench.peer_dbos",
                "--worker",
                f"--executor-id={executor_id(index)}",
                f"--database-url={args.database_url}",
                f"--concurrency={share}",
            ]
            if args.smtp_port is not None:
                command.append(f"--smtp-port={args.smtp_port}")
            if args.letter_signing_dir is not None:
                command.append(f"--letter-signing-dir={args.letter_signing_dir}")
            # stdin is the worker's lifeline (see work()); its stderr is the driver's, i.e. the log.
            self.processes[executor_id(index)] = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO
            )
        for name, process in self.processes.items():
            assert process.stdout is not None
            if not await asyncio.wait_for(process.stdout.readline(), WORKER_READY_SECONDS):
                raise RuntimeError(f"DBOS worker {name} exited before it was ready ({await process.wait()})")

    async def first_exit(self) -> str:
        """Wait until a worker ends (the first); its executor id and exit status."""
        if not self.processes:
            await asyncio.Event().wait()  # no workers: none will end
        ended = {asyncio.ensure_future(p.wait()): name for name, p in self.processes.items()}
        try:
            done, _ = await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in ended:
                waiting.cancel()
        first = next(iter(done))
        return f"{ended[first]} ({first.result()})"

    async def stop(self) -> dict[str, dict[str, list[list[Any]]]]:
        """Close every worker's stdin, wait for it to end; each one's step spans, by executor id."""
        for process in self.processes.values():
            assert process.stdin is not None
            process.stdin.close()
        spans = {}
        for name, process in self.processes.items():
            assert process.stdout is not None
            out = await asyncio.wait_for(process.stdout.read(), WORKER_STOP_SECONDS)
            if await asyncio.wait_for(process.wait(), WORKER_STOP_SECONDS) != 0:
                raise RuntimeError(f"DBOS worker {name} failed ({process.returncode})")
            spans[name] = json.loads(out.decode().strip().splitlines()[-1])
        self.processes.clear()
        return spans

    async def kill(self) -> None:
        """Kill the workers still running (after a failure: stop() has not run)."""
        for process in self.processes.values():
            if process.returncode is None:
                process.kill()
            await process.wait()
        self.processes.clear()


class Driver:
    """Files dossiers on the queue and plays the citizen, as :class:`infra.bench.load.LoadDriver` does."""

    def __init__(
        self, queue: Queue, times: StepTimes, watch: dict[str, int], workers: dict[str, int]
    ) -> None:
        self.queue = queue
        self.times = times
        self.watch = watch
        self.workers = workers
        self.run = uuid.uuid4().hex[:6].upper()
        self.numbers = iter(range(1, 10**9))
        self.workflow_ids: dict[str, list[str]] = {}
        self.ran_by: dict[str, str] = {}

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

    def add_worker_spans(self, spans: dict[str, dict[str, list[list[Any]]]]) -> None:
        """The workers' step spans (from :meth:`Workers.stop`) beside executor 0's own."""
        self.ran_by.update((workflow_id, executor_id(0)) for workflow_id in self.times.spans)
        for name, theirs in spans.items():
            self.ran_by.update((workflow_id, name) for workflow_id in theirs)
            self.times.add(theirs)

    def with_steps(self, phase: PeerPhase) -> PeerPhase:
        """``phase`` with its step latency and who ran its workflows, once every span is in."""
        ids = self.workflow_ids[phase.name]
        gaps = self.times.gaps_ms(ids)
        ran: dict[str, int] = {}
        for workflow_id in ids:
            name = self.ran_by.get(workflow_id, "unknown")
            ran[name] = ran.get(name, 0) + 1
        step_ms = {
            "p50": percentile(gaps, 50),
            "p95": percentile(gaps, 95),
            "p99": percentile(gaps, 99),
            "max": max(gaps) if gaps else None,
        }
        return replace(
            phase, step_ms=step_ms, steps=len(gaps), workflows_by_executor=dict(sorted(ran.items()))
        )

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
        self.workflow_ids[name] = [d[0] for d in done]
        used = {k: round(cpu_after[k] - cpu_before[k], 3) for k in cpu_after if k in cpu_before}
        executors = {k: v for k, v in used.items() if k not in self.watch}
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
            step_ms={},  # filled by with_steps() once the workers have handed in their spans
            steps=0,
            cpu_seconds={
                "peer": round(sum(executors.values()), 3),
                **{k: v for k, v in used.items() if k in self.watch},
            },
            executor_cpu_seconds=executors,
            workflows_by_executor={},
        )

    def _cpu(self) -> dict[str, float]:
        # Every thread of this process, DBOS's included; the workers are children, which
        # process_time() leaves out, so each is read on its own.
        readings = {executor_id(0): time.process_time()}
        for label, pid in {**self.workers, **self.watch}.items():
            if (value := cpu_seconds(pid, tree=label in self.watch)) is not None:
                readings[label] = value
        return readings


@asynccontextmanager
async def executor(
    args: argparse.Namespace, *, name: str, share: int, system_pool: int
) -> AsyncIterator[tuple[StepTimes, Queue]]:
    """DBOS launched in this process as executor ``name``, the route installed, the queue registered.

    ``share``: the queue's ``worker_concurrency``, the workflows this process runs at once.
    """
    DBOS(
        config={
            "name": "peer-dbos",
            "system_database_url": args.database_url,
            "log_level": "WARNING",
            "executor_id": name,
            "sys_db_pool_size": system_pool,
        }
    )
    datasource = await AsyncSQLAlchemyDatasource.create(
        args.database_url, engine_kwargs={"pool_size": max(10, share), "max_overflow": 10}
    )
    times = StepTimes()
    email = smtp_channel(args.smtp_port)
    install(
        LandTransferRoute(datasource, signer=letter_signer(args.letter_signing_dir), email=email, times=times)
    )
    # Launched from inside the running loop: DBOS then runs queued async workflows on this loop.
    DBOS.launch()
    try:
        # The queue's settings live in the system database, one row for every executor: each
        # process registers the same ones, as each copy of an application does at start-up.
        queue = await DBOS.register_queue_async(
            QUEUE, worker_concurrency=share, polling_interval_sec=QUEUE_POLLING_SECONDS
        )
        yield times, queue
    finally:
        if email is not None:
            await email.close()
        DBOS.destroy()


async def drive(driver: Driver, args: argparse.Namespace) -> tuple[PeerPhase, PeerPhase]:
    """The warm-up, then the saturation and moderate phases."""
    await driver.closed_loop("warm-up", dossiers=args.warmup, concurrency=args.warmup)
    saturation = await driver.closed_loop("saturation", dossiers=args.dossiers, concurrency=args.concurrency)
    rate = args.rate or max(0.5, min(20.0, round(saturation.dossiers_per_s / 2, 1)))
    moderate = await driver.open_loop("moderate", rate=rate, seconds=args.seconds)
    return saturation, moderate


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the database, launch the executors, drive the phases; the figures."""
    # An executor with no share of the dossiers in flight would only poll.
    executors = max(1, min(args.executors, args.concurrency))
    # DBOS keeps one worker_concurrency for the queue, the same for every executor.
    share = math.ceil(args.concurrency / executors)
    await prepare_database(args.database_url)
    workers = Workers()
    # The driver's DBOS calls (event, message, result) are for every dossier in flight: one
    # system-database connection per dossier, as DBOS advises for its pool.
    launched = executor(args, name=executor_id(0), share=share, system_pool=max(20, args.concurrency))
    async with launched as (times, queue):
        try:
            # Started after our launch: DBOS's migrations of the system database ran once, here.
            await workers.start(args, count=executors - 1, share=share)
            driver = Driver(queue, times, dict(args.watch), workers.pids)
            phases = asyncio.ensure_future(drive(driver, args))
            died = asyncio.ensure_future(workers.first_exit())
            await asyncio.wait({phases, died}, return_when=asyncio.FIRST_COMPLETED)
            if died.done():
                # Nobody recovers a dead executor's workflows here: its dossiers would never end.
                phases.cancel()
                raise RuntimeError(f"DBOS worker {died.result()} exited during the run")
            died.cancel()
            saturation, moderate = phases.result()
            driver.add_worker_spans(await workers.stop())
        finally:
            await workers.kill()
    e_mail = args.smtp_port is not None
    does, does_not = what_it_does(e_mail=e_mail, signed=args.letter_signing_dir is not None)
    return {
        "dbos_version": version("dbos"),
        "executors": executors,
        "queue": {
            "name": QUEUE,
            "worker_concurrency": share,
            "total_worker_concurrency": share * executors,
            "polling_interval_sec": QUEUE_POLLING_SECONDS,
        },
        "isolation_level": "READ COMMITTED",
        "e_mail_sent": e_mail,
        "letters_signed": args.letter_signing_dir is not None,
        "saturation": asdict(driver.with_steps(saturation)),
        "moderate": asdict(driver.with_steps(moderate)),
        "does": does,
        "does_not": does_not,
    }


async def work(args: argparse.Namespace) -> None:
    """A worker (``--worker``): executor ``--executor-id`` until stdin ends; then its spans on stdout."""
    launched = executor(
        args, name=args.executor_id, share=args.concurrency, system_pool=max(20, args.concurrency)
    )
    async with launched as (times, _):
        print(json.dumps({"ready": args.executor_id}), flush=True)
        # The driver never writes to our stdin; it reaches end of file when the driver closes
        # it, or when the driver dies: either way this worker must not outlive it.
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        await reader.read()
        with suppress(BrokenPipeError):  # the driver is gone, and its figures with it
            print(json.dumps(times.spans), flush=True)


async def measure(
    stack: Stack,
    *,
    dossiers: int,
    concurrency: int,
    rate: float,
    seconds: float,
    warmup: int,
    pids: dict[str, int],
    executors: int | None = None,
) -> dict[str, Any]:
    """Run the peer beside ``stack`` on a database of its own; its figures (``run``'s JSON).

    Durable like ours (``synchronous_commit`` on); e-mail to the stack's mailbox and letters
    signed with the stack's certificates when the stack has them. ``pids`` (Postgres, the mailbox)
    are the shared processes whose CPU over each phase is reported beside the peer's own.
    ``executors``: DBOS processes on the queue (default: one per core).
    """
    database = await create_database(stack.database_url, f"peer_dbos_{uuid.uuid4().hex[:8]}")
    command = [
        sys.executable,
        "-m",
        "infra.bench.peer_dbos",
        f"--database-url={database}",
        f"--dossiers={dossiers}",
        f"--concurrency={concurrency}",
        f"--executors={executors or default_executors()}",
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
                process.kill()  # its workers see their stdin end and stop too
                await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the DBOS peer failed ({process.returncode}); see {log_path}")
    results: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    results["database"] = urlsplit(database).path.lstrip("/")
    return results


def default_executors() -> int:
    """One DBOS executor process per core: its workflows are CPU-bound Python, one core per process."""
    return os.cpu_count() or 1


def _pid(text: str) -> tuple[str, int]:
    label, _, pid = text.partition("=")
    return label, int(pid)


def main(argv: list[str] | None = None) -> int:
    """The CLI (see the module's doc): figures as one JSON object on stdout."""
    parser = argparse.ArgumentParser(prog="python -m infra.bench.peer_dbos", description=__doc__)
    parser.add_argument(
        "--database-url", required=True, help="the peer's own database (DBOS's tables go there too)"
    )
    parser.add_argument("--dossiers", type=int, help="dossiers in the closed loop (required)")
    parser.add_argument(
        "--concurrency", type=int, required=True, help="dossiers in flight (the queue's concurrency)"
    )
    parser.add_argument(
        "--executors",
        type=int,
        default=default_executors(),
        help="DBOS processes dequeuing from the queue, this one included (default: one per core)",
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
    parser.add_argument(
        "--worker", action="store_true", help="internal: run as one of the driver's executor processes"
    )
    parser.add_argument("--executor-id", help="internal: the worker's DBOS executor id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        if args.executor_id is None:
            parser.error("--worker needs --executor-id")
        asyncio.run(work(args))
        return 0
    if args.dossiers is None:
        parser.error("--dossiers is required")
    if args.executors < 1:
        parser.error("--executors must be at least 1")
    results = asyncio.run(run(args))
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
