"""Nothing lost, nothing doubled: checked from the services' own tables, the mailbox and the topics.

For each land transfer filed: returned by the desk; two steps done by the land registry (appraisal
and certificate, each an officer's task when officers decide) and one assessment by tax; the
desk's slip rows all in the console's copy; one receipt, one tax notice, one result and, when the
desk apologised, one apology notice; every delivery sent and each e-mail in the mailbox once (by
``Message-ID``); every overdue step the desk found reported once to the console (an alarm fired
twice would report it twice) and each apology recorded once. For the system: no unpublished
outbox row, no consumer group behind, no new dead letter, every service's ``/health`` green.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.chaos.load import DATABASE_AWAY
from infra.stack import Stack
from services import manifest

log = logging.getLogger(__name__)

NOTICE_KINDS = ("receipt", "tax_notice", "result")
"""The notices every land transfer gets; an apology comes on top when the desk apologised."""


@dataclass
class Audit:
    """What the audit found for one set of dossiers."""

    dossiers: int
    lost: dict[str, list[str]] = field(default_factory=dict)
    """Per dossier, what is missing."""
    doubled: dict[str, list[str]] = field(default_factory=dict)
    """Per dossier, what is there more than once."""
    stuck: list[str] = field(default_factory=list)
    """System-wide: work left in an outbox or a consumer group, dead letters, unhealthy services."""
    alarms: int = 0
    """Overdue steps the desk found among these dossiers (each an alarm fired)."""
    apologies: int = 0

    @property
    def clean(self) -> bool:
        """Nothing lost, nothing doubled, nothing stuck."""
        return not (self.lost or self.doubled or self.stuck)

    def details(self, limit: int = 8) -> list[str]:
        """The first findings, readable."""
        lines = [f"lost {d}: {'; '.join(w)}" for d, w in self.lost.items()]
        lines += [f"doubled {d}: {'; '.join(w)}" for d, w in self.doubled.items()]
        lines += [f"stuck: {s}" for s in self.stuck]
        return lines[:limit]


class Auditor:
    """Audits a running system; keeps the dead-letter counts it started from."""

    def __init__(self, system: Stack, pool: asyncpg.Pool, *, officers: bool = True) -> None:
        self.system = system
        self.pool = pool
        self.officers = officers
        """Officers decide the manual steps (a task per step in their queue), not the rules."""
        self._dead_letters_at_start: int | None = None

    async def start(self) -> None:
        """Note the dead letters already there (a scenario counts only its own)."""
        self._dead_letters_at_start = await self._dead_letters()

    async def audit(self, ids: Sequence[str]) -> Audit:
        """Every check, on ``ids`` and on the system."""
        found = Audit(dossiers=len(ids))
        await self._dossiers(found, ids)
        await self._notices(found, ids)
        self._mailbox(found, await self._sent_emails(ids))
        await self._system(found)
        return found

    async def settled(self, ids: Sequence[str], *, timeout: float) -> Audit:
        """Audit every second until clean or ``timeout``; the last audit.

        The last notices are still on their way when the last dossier returns; a database
        briefly away (a scenario restarting it) is waited for.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                audit = await self.audit(ids)
            except DATABASE_AWAY as exc:
                log.info("audit: %r; again", exc)
                await asyncio.sleep(1)
                continue
            if audit.clean or time.monotonic() > deadline:
                return audit
            await asyncio.sleep(1)

    async def _count(self, table: str, ids: Sequence[str], *, where: str = "true") -> dict[str, int]:
        """Rows of ``table`` per dossier among ``ids`` (those matching ``where``)."""
        rows = await self.pool.fetch(
            f"SELECT dossier_id, count(*) AS n FROM {table}"
            f" WHERE dossier_id = ANY($1) AND {where} GROUP BY 1",
            ids,
        )
        return {r["dossier_id"]: int(r["n"]) for r in rows}

    async def _per_step(self, table: str, ids: Sequence[str]) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                f"SELECT dossier_id, step_index, count(*) AS n FROM {table}"
                " WHERE dossier_id = ANY($1) GROUP BY 1, 2",
                ids,
            )
        )

    async def _dossiers(self, found: Audit, ids: Sequence[str]) -> None:
        desk = {
            r["id"]: r
            for r in await self.pool.fetch(
                "SELECT id, status, apologised_at FROM intake.dossiers WHERE id = ANY($1)", ids
            )
        }
        shown = {
            r["id"]: r
            for r in await self.pool.fetch(
                "SELECT id, returned_at FROM console.dossiers WHERE id = ANY($1)", ids
            )
        }
        slips = await self._count("intake.handoffs", ids)
        overdue = await self._count("intake.handoffs", ids, where="overdue_at IS NOT NULL")
        copied = await self._count("console.slip_rows", ids)
        steps = await self._count("land_registry.steps_done", ids)
        tasks = await self._count("land_registry.tasks", ids)
        assessed = await self._count("tax.assessments", ids)
        apologies = await self._count("console.apologies", ids)
        reported = await self._per_step("console.overdue_steps", ids)
        escalated = await self._per_step("console.escalations", ids)
        reported_per_dossier = Counter(r["dossier_id"] for r in reported)
        for r in (*reported, *escalated):
            if r["n"] > 1:
                _note(
                    found.doubled, r["dossier_id"], f"step {r['step_index']} reported overdue {r['n']} times"
                )
        for dossier in ids:
            row = desk.get(dossier)
            if row is None or row["status"] != "returned":
                _note(
                    found.lost, dossier, f"not returned ({row['status'] if row else 'unknown to the desk'})"
                )
            _expect(found, dossier, "slip rows in the console", copied.get(dossier, 0), slips.get(dossier, 0))
            _expect(found, dossier, "land-registry steps", steps.get(dossier, 0), 2)
            _expect(found, dossier, "land-registry tasks", tasks.get(dossier, 0), 2 if self.officers else 0)
            _expect(found, dossier, "tax assessments", assessed.get(dossier, 0), 1)
            _expect(
                found,
                dossier,
                "overdue steps on the console",
                reported_per_dossier[dossier],
                overdue.get(dossier, 0),
            )
            apologised = int(row is not None and row["apologised_at"] is not None)
            _expect(found, dossier, "apologies on the console", apologies.get(dossier, 0), apologised)
            if shown.get(dossier) is None or shown[dossier]["returned_at"] is None:
                _note(found.lost, dossier, "not returned on the console")
            found.alarms += overdue.get(dossier, 0)
            found.apologies += apologised

    async def _notices(self, found: Audit, ids: Sequence[str]) -> None:
        rows = await self.pool.fetch(
            "SELECT dossier_id, kind, count(*) AS n FROM notification.notices"
            " WHERE dossier_id = ANY($1) GROUP BY 1, 2",
            ids,
        )
        notices = {(r["dossier_id"], r["kind"]): r["n"] for r in rows}
        apologised = {
            r["id"]
            for r in await self.pool.fetch(
                "SELECT id FROM intake.dossiers WHERE id = ANY($1) AND apologised_at IS NOT NULL", ids
            )
        }
        for dossier in ids:
            for kind in NOTICE_KINDS:
                _expect(found, dossier, f"{kind} notices", notices.get((dossier, kind), 0), 1)
            _expect(
                found,
                dossier,
                "apology notices",
                notices.get((dossier, "apology"), 0),
                int(dossier in apologised),
            )
        undelivered = await self.pool.fetch(
            "SELECT n.dossier_id, n.kind, d.channel, d.status FROM notification.deliveries d"
            " JOIN notification.notices n ON n.id = d.notice_id"
            " WHERE n.dossier_id = ANY($1) AND d.status <> 'sent'",
            ids,
        )
        for r in undelivered:
            _note(found.lost, r["dossier_id"], f"{r['kind']} by {r['channel']} {r['status']}")

    async def _sent_emails(self, ids: Sequence[str]) -> dict[str, str]:
        """Message-ID → dossier of every e-mail the notification service says it sent."""
        rows = await self.pool.fetch(
            "SELECT d.provider_id, n.dossier_id FROM notification.deliveries d"
            " JOIN notification.notices n ON n.id = d.notice_id"
            " WHERE n.dossier_id = ANY($1) AND d.channel = 'email' AND d.status = 'sent'",
            ids,
        )
        return {r["provider_id"]: r["dossier_id"] for r in rows}

    def _mailbox(self, found: Audit, sent: dict[str, str]) -> None:
        if self.system.mailbox is None:
            return
        received = Counter(str(m["Message-ID"]) for m in self.system.mailbox.messages())
        for message_id, dossier in sent.items():
            copies = received.get(message_id, 0)
            if copies == 0:
                _note(found.lost, dossier, f"e-mail {message_id} not in the mailbox")
            elif copies > 1:
                _note(found.doubled, dossier, f"e-mail {message_id} received {copies} times")

    async def _system(self, found: Audit) -> None:
        for schema in manifest.names():
            exists = await self.pool.fetchval("SELECT to_regclass($1)", f"{schema}.outbox")
            if exists is None:
                continue
            waiting = await self.pool.fetchval(
                f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'
            )
            if waiting:
                found.stuck.append(f"{waiting} unpublished rows in {schema}.outbox")
        async with httpx.AsyncClient(timeout=5) as client:
            for key, service in sorted(self.system.running().items()):
                try:
                    health = await client.get(f"{service.url}/health")
                    backlog = (await client.get(f"{service.url}/backlog")).json()
                except httpx.HTTPError as exc:
                    found.stuck.append(f"{key} does not answer ({exc!r})")
                    continue
                if health.status_code != 200:
                    found.stuck.append(f"{key} /health {health.status_code}: {health.text[:200]}")
                if backlog.get("unconsumed"):
                    found.stuck.append(f"{key}: {backlog['unconsumed']} records not consumed")
        new = await self._dead_letters() - (self._dead_letters_at_start or 0)
        if new:
            found.stuck.append(f"{new} records dead-lettered")

    async def _dead_letters(self) -> int:
        """Records on every dead-letter topic of the system."""
        kafka = self.system.superuser.client_kwargs()
        admin = AIOKafkaAdminClient(**kafka, client_id="chaos-audit")
        consumer = AIOKafkaConsumer(**kafka, client_id="chaos-audit")
        await admin.start()
        await consumer.start()
        try:
            prefix = self.system.topic_prefix
            topics = sorted(
                t for t in await admin.list_topics() if t.startswith(prefix) and t.endswith(".dlq")
            )
            partitions = [
                TopicPartition(t["topic"], p["partition"])
                for t in await admin.describe_topics(topics)
                for p in t.get("partitions", [])
            ]
            if not partitions:
                return 0
            return sum((await consumer.end_offsets(partitions)).values())
        finally:
            await asyncio.gather(consumer.stop(), admin.close())


@contextlib.asynccontextmanager
async def audit_pool(system: Stack) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on ``system``'s database, for an :class:`Auditor`."""
    pool = await asyncpg.create_pool(system.database_url, min_size=1, max_size=4)
    assert pool is not None  # asyncpg types it Optional for its own legacy reasons
    try:
        yield pool
    finally:
        await pool.close()


def _note(where: dict[str, list[str]], dossier: str, what: str) -> None:
    where.setdefault(dossier, []).append(what)


def _expect(found: Audit, dossier: str, what: str, actual: int, expected: int) -> None:
    """Fewer than expected is lost, more is doubled."""
    if actual < expected:
        _note(found.lost, dossier, f"{what}: {actual} of {expected}")
    elif actual > expected:
        _note(found.doubled, dossier, f"{what}: {actual}, expected {expected}")
