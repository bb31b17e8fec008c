"""The benchmark's DBOS peer really runs the land-transfer route on real Postgres."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from infra.bench import peer_dbos
from infra.stack import Stack

pytestmark = pytest.mark.real


async def test_every_dossier_goes_the_whole_route_with_its_three_notices(stack: Stack) -> None:
    peer = await peer_dbos.measure(stack, dossiers=3, concurrency=2, rate=2, seconds=1, warmup=1, pids={})

    filed = 1 + 3 + 2  # warm-up, closed loop, open loop (2/s for 1 s)
    assert peer["saturation"]["returned"] == peer["saturation"]["dossiers"] == 3
    assert peer["moderate"]["returned"] == peer["moderate"]["dossiers"] == 2
    assert peer["e_mail_sent"]
    assert peer["letters_signed"]
    url = urlunsplit(urlsplit(stack.database_url)._replace(path=f"/{peer['database']}"))
    conn = await asyncpg.connect(url)
    try:
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
        letter = await conn.fetchval(
            "SELECT attachment FROM notification.notices WHERE kind = 'result' LIMIT 1"
        )
        assert letter.startswith(b"%PDF")
        assert b"/ByteRange" in letter  # PAdES-signed
    finally:
        await conn.close()
    assert peer["saturation"]["steps"] == 3 * 15  # 17 steps, 16 gaps, the payment's left out
    assert peer["saturation"]["cpu_seconds"]["peer"] > 0
