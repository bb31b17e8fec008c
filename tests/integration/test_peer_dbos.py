"""The benchmark's DBOS peer really runs the land-transfer route on real Postgres."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from infra.bench import peer_dbos
from infra.fresh import create_database
from infra.stack import REPO, Stack
from tests.dossier_samples import eventually_equal

pytestmark = pytest.mark.real


def _url(stack: Stack, database: str) -> str:
    return urlunsplit(urlsplit(stack.database_url)._replace(path=f"/{database}"))


def _peer_processes(database: str) -> list[int]:
    """The peer's live processes (zombies aside) on ``database``: its driver and its workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        # Postgres' backends name the database too; the peer's processes run its module.
        if b"infra.bench.peer_dbos" in command and database.encode() in command and state != "Z":
            found.append(int(entry.name))
    return found


async def _route_completed(conn: asyncpg.Connection, filed: int) -> None:
    """Every dossier's workflow ended and wrote every row of the route, every notice sent."""
    workflows = await conn.fetch("SELECT status FROM dbos.workflow_status WHERE name = 'land_transfer'")
    assert [w["status"] for w in workflows] == ["SUCCESS"] * filed
    dossiers = await conn.fetch("SELECT id, status FROM intake.dossiers")
    assert len(dossiers) == filed
    assert {d["status"] for d in dossiers} == {"returned"}
    # The slip: receipt, appraisal, tax, payment, payment proof, certificate, return.
    assert await conn.fetchval("SELECT count(*) FROM intake.handoffs") == 7 * filed
    steps = await conn.fetch("SELECT action, count(*) AS n FROM land_registry.steps_done GROUP BY action")
    assert {s["action"]: s["n"] for s in steps} == {"appraise": filed, "issue_certificate": filed}
    assert await conn.fetchval("SELECT count(*) FROM tax.assessments") == filed
    kinds = await conn.fetch(
        "SELECT dossier_id, array_agg(kind ORDER BY kind) AS kinds FROM notification.notices"
        " GROUP BY dossier_id"
    )
    assert len(kinds) == filed
    assert {tuple(k["kinds"]) for k in kinds} == {("receipt", "result", "tax_notice")}
    sent = "SELECT count(*) FROM notification.deliveries WHERE status = 'sent' AND provider_id <> ''"
    assert await conn.fetchval(sent) == 3 * filed


async def test_every_dossier_goes_the_whole_route_with_its_three_notices(stack: Stack) -> None:
    peer = await peer_dbos.measure(
        stack, dossiers=3, concurrency=2, rate=2, seconds=1, warmup=1, pids={}, executors=1
    )

    filed = 1 + 3 + 2  # warm-up, closed loop, open loop (2/s for 1 s)
    assert peer["executors"] == 1
    assert peer["saturation"]["returned"] == peer["saturation"]["dossiers"] == 3
    assert peer["moderate"]["returned"] == peer["moderate"]["dossiers"] == 2
    assert peer["e_mail_sent"]
    assert peer["letters_signed"]
    conn = await asyncpg.connect(_url(stack, peer["database"]))
    try:
        await _route_completed(conn, filed)
        letter = await conn.fetchval(
            "SELECT attachment FROM notification.notices WHERE kind = 'result' LIMIT 1"
        )
        assert letter.startswith(b"%PDF")
        assert b"/ByteRange" in letter  # PAdES-signed
    finally:
        await conn.close()
    assert peer["saturation"]["steps"] == 3 * 15  # 17 steps, 16 gaps, the payment's left out
    assert peer["saturation"]["cpu_seconds"]["peer"] > 0


async def test_two_executors_share_the_queue_and_stop_with_the_driver(stack: Stack) -> None:
    # Each executor may run 2 of the 4 in flight: the closed loop needs both to keep 4 going.
    peer = await peer_dbos.measure(
        stack, dossiers=8, concurrency=4, rate=2, seconds=1, warmup=1, pids={}, executors=2
    )

    filed = 1 + 8 + 2
    assert peer["executors"] == 2
    assert peer["queue"]["worker_concurrency"] == 2
    assert peer["saturation"]["returned"] == peer["saturation"]["dossiers"] == 8
    assert peer["moderate"]["returned"] == peer["moderate"]["dossiers"] == 2
    conn = await asyncpg.connect(_url(stack, peer["database"]))
    try:
        await _route_completed(conn, filed)
        # DBOS records which executor dequeued (claimed) each workflow.
        ran = await conn.fetch(
            "SELECT executor_id, count(*) AS n FROM dbos.workflow_status WHERE name = 'land_transfer'"
            " GROUP BY executor_id"
        )
    finally:
        await conn.close()
    by_executor = {r["executor_id"]: r["n"] for r in ran}
    assert set(by_executor) == {"peer-dbos-0", "peer-dbos-1"}
    assert sum(by_executor.values()) == filed
    # The peer's own count agrees, and its step latency has every workflow's spans, workers' too.
    assert set(peer["saturation"]["workflows_by_executor"]) == {"peer-dbos-0", "peer-dbos-1"}
    assert peer["saturation"]["steps"] == 8 * 15
    cpu = peer["saturation"]["executor_cpu_seconds"]
    assert set(cpu) == {"peer-dbos-0", "peer-dbos-1"}
    assert peer["saturation"]["cpu_seconds"]["peer"] == pytest.approx(sum(cpu.values()), abs=0.01)
    assert _peer_processes(peer["database"]) == []


async def test_workers_stop_when_the_driver_is_killed(stack: Stack) -> None:
    database = await create_database(stack.database_url, f"peer_dbos_{uuid.uuid4().hex[:8]}")
    driver = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infra.bench.peer_dbos",
        f"--database-url={database}",
        "--dossiers=1000",
        "--concurrency=4",
        "--executors=2",
        stdout=asyncio.subprocess.DEVNULL,
        cwd=REPO,
    )
    name = urlsplit(database).path.lstrip("/")
    try:
        # Killed while the worker has workflows of its own under way (one waits for its payment).
        conn = await asyncpg.connect(database)
        try:

            async def worker_busy() -> bool:
                assert driver.returncode is None, "the driver ended early"
                if not await conn.fetchval("SELECT to_regclass('dbos.workflow_status') IS NOT NULL"):
                    return False  # DBOS has not created its tables yet
                pending = (
                    "SELECT count(*) FROM dbos.workflow_status WHERE executor_id = $1 AND status = 'PENDING'"
                )
                return bool(await conn.fetchval(pending, peer_dbos.executor_id(1)))

            await eventually_equal(worker_busy, True, timeout=120)
        finally:
            await conn.close()
        assert len([pid for pid in _peer_processes(name) if pid != driver.pid]) == 1
        driver.send_signal(signal.SIGKILL)
        await driver.wait()

        async def left() -> list[int]:
            return _peer_processes(name)

        await eventually_equal(left, [], timeout=60)
    finally:
        if driver.returncode is None:
            driver.kill()
            await driver.wait()
