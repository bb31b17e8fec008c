"""What "nothing lost, nothing doubled" means for land transfers, checked on a system's own tables.

Each dossier returned once, one appraisal and one certificate, one assessment, one receipt, tax
notice and result each, every notice sent, one e-mail per notice (Message-IDs unique), and the
console's read model counting every dossier returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import asyncpg

from infra.stack import Stack

KINDS = ("receipt", "tax_notice", "result")


async def assert_each_land_transfer_once(system: Stack, ids: Sequence[str], *, timeout: float = 60) -> None:
    """Fail unless every dossier in ``ids`` (all returned) went through exactly once.

    Waits up to ``timeout`` for the last notices, which are still on their way when the last
    dossier returns.
    """
    conn = await asyncpg.connect(system.database_url)
    try:
        steps = await conn.fetch(
            "SELECT dossier_id, count(*) AS n FROM land_registry.steps_done GROUP BY dossier_id"
        )
        assessed = await conn.fetch(
            "SELECT dossier_id, count(*) AS n FROM tax.assessments GROUP BY dossier_id"
        )
        deadline = time.monotonic() + timeout
        while True:
            notices = await conn.fetch(
                "SELECT dossier_id, kind, count(*) AS n FROM notification.notices GROUP BY dossier_id, kind"
            )
            sent = await conn.fetchval("SELECT count(*) FROM notification.deliveries WHERE status = 'sent'")
            returned = await conn.fetchval(
                "SELECT count(*) FROM console.dossiers WHERE returned_at IS NOT NULL"
            )
            done = len(notices) >= len(KINDS) * len(ids) and sent >= len(notices) and returned >= len(ids)
            if done or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)  # nothing to wait on but the tables
    finally:
        await conn.close()

    assert {r["dossier_id"]: r["n"] for r in steps} == dict.fromkeys(ids, 2)  # appraise, certificate
    assert {r["dossier_id"]: r["n"] for r in assessed} == dict.fromkeys(ids, 1)
    assert {(r["dossier_id"], r["kind"]) for r in notices} == {(i, k) for i in ids for k in KINDS}
    assert all(r["n"] == 1 for r in notices), [dict(r) for r in notices if r["n"] != 1]
    assert sent == len(notices)
    assert returned == len(ids)
    assert system.mailbox is not None
    message_ids = [str(m["Message-ID"]) for m in system.mailbox.messages()]
    assert len(message_ids) == len(set(message_ids)) == len(notices)
