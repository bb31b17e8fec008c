"""The land-transfer route as one DBOS Transact workflow on Postgres: the benchmark's peer.

The same steps our services take for a LAND-TRANSFER dossier with ``AGENCY_DECISIONS=automatic``,
decided by the same domain code (the desk's :class:`Dossier`, the registry's ``perform``, the tax
office's ``assess``, the notification service's ``render`` and letter signer), writing the same
rows into the same tables (each service's migrations, applied in the peer's own database), but
with no Kafka: one workflow per dossier, each agency's work a DBOS datasource transaction that
commits the state with DBOS's record of the step, the e-mail a DBOS step.

Per dossier: receive (desk) → receipt notice → appraise (registry) → route on (desk) → assess
(tax) → tax notice → route on (desk, awaiting payment) → the citizen pays (a DBOS message) →
record the payment (desk) → issue the certificate (registry) → route on (desk, returned) →
result notice. A notice is three operations: rendered, signed and recorded with its delivery row
(transaction); sent over SMTP (step); its outcome recorded (transaction).

Written as DBOS's documentation recommends: async workflows and async datasource transactions
(no thread per workflow), dossiers enqueued on a queue registered after ``launch()``. Where it
departs from DBOS's defaults it says why (isolation level, queue polling).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar

import asyncpg
from dbos import DBOS, AsyncSQLAlchemyDatasource
from pydantic import BaseModel
from sqlalchemy import RowMapping, text

from contracts.events import (
    Applicant,
    DossierEvent,
    DossierHandedOver,
    DossierReceived,
    DossierReturned,
    PaymentNoticeIssued,
    StepCompleted,
)
from infra.bench.load import land_transfer
from services.intake import store as intake_store
from services.intake.domain.catalog import Catalog, Step
from services.intake.domain.dossier import Dossier, DossierStatus, Handoff
from services.land_registry import store as land_registry_store
from services.land_registry.domain.registry import LandPriceTable, perform
from services.notification import store as notification_store
from services.notification.delivery import EMAIL, EmailChannel, Outgoing, SmtpSettings
from services.notification.document_signing import LetterSigner
from services.notification.domain.notices import DEFAULT_PLACE, Notice, render
from services.runtime.database import Migration, migrate
from services.runtime.working_days import WorkingDayCalendar
from services.tax import store as tax_store
from services.tax.domain.assessment import assess, notice_and_answer

P = ParamSpec("P")
R = TypeVar("R")
AsyncFunction = Callable[P, Coroutine[Any, Any, R]]
"""An ``async def`` taking ``P`` and returning ``R``: what DBOS wraps as a step or transaction."""

SCHEMAS: dict[str, tuple[Migration, ...]] = {
    "intake": intake_store.MIGRATIONS,
    "land_registry": land_registry_store.MIGRATIONS,
    "tax": tax_store.MIGRATIONS,
    "notification": notification_store.MIGRATIONS,
}
"""The services whose state the route writes, each in its schema, created by its own migrations."""

QUEUE = "land_transfers"
AWAITING_PAYMENT = "awaiting_payment"
"""The workflow's event: the payment the citizen owes (notice number and amount)."""
PAYMENT = "payment"
"""The topic of the message that says the citizen paid."""
PAYMENT_TIMEOUT_SECONDS = 300.0

# DBOS's default is SERIALIZABLE. Our services run READ COMMITTED and lock the dossier row
# (SELECT ... FOR UPDATE); so does the peer, so neither retries on serialization failures.
ISOLATION: Final = "READ COMMITTED"

_JSON_FIELDS = frozenset({"route", "applicant", "documents", "details", "results", "faults"})
_DOSSIER_FIELDS = tuple(f.name for f in dataclasses.fields(Dossier) if f.name != "slip")
_SLIP_FIELDS = tuple(f.name for f in dataclasses.fields(Handoff))


def _column(name: str) -> str:
    return "row_index" if name == "row" else name


def _param(name: str) -> str:
    return f"CAST(:{name} AS jsonb)" if name in _JSON_FIELDS else f":{name}"


_SAVE_DOSSIER = text(
    f"INSERT INTO intake.dossiers ({', '.join(_DOSSIER_FIELDS)})"
    f" VALUES ({', '.join(_param(n) for n in _DOSSIER_FIELDS)})"
    " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{n} = excluded.{n}" for n in _DOSSIER_FIELDS if n != "id")
    + ", updated_at = now()"
)
_SAVE_SLIP = text(
    f"INSERT INTO intake.handoffs (dossier_id, {', '.join(_column(n) for n in _SLIP_FIELDS)})"
    f" VALUES (:dossier_id, {', '.join(f':{n}' for n in _SLIP_FIELDS)})"
    " ON CONFLICT (dossier_id, row_index) DO UPDATE SET "
    + ", ".join(f"{_column(n)} = excluded.{_column(n)}" for n in _SLIP_FIELDS if n != "row")
)


def _db_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, tuple):  # the route: a snapshot of the catalog's steps
        return json.dumps([step.model_dump(mode="json") for step in value])
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _dossier(row: RowMapping, slip: Sequence[RowMapping]) -> Dossier:
    values = {name: row[name] for name in _DOSSIER_FIELDS}
    values["route"] = tuple(Step.model_validate(step) for step in row["route"])
    values["applicant"] = Applicant.model_validate(row["applicant"])
    values["status"] = DossierStatus(row["status"])
    handoffs = [Handoff(**{name: h[_column(name)] for name in _SLIP_FIELDS}) for h in slip]
    return Dossier(**values, slip=handoffs)


@dataclass
class StepTimes:
    """When each step's own work started and ended (``time.perf_counter``), per workflow."""

    spans: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)

    def timed(self, name: str, body: AsyncFunction[P, R]) -> AsyncFunction[P, R]:
        """``body``, recording its start and end under the current workflow."""

        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            result = await body(*args, **kwargs)
            self.spans.setdefault(DBOS.workflow_id or "", []).append((name, start, time.perf_counter()))
            return result

        return run

    def add(self, spans: dict[str, list[list[Any]]]) -> None:
        """Another executor process's spans (``spans`` as JSON carries them), beside ours.

        A workflow runs in the one process that dequeued it, so its spans come from one clock;
        ``time.perf_counter`` is CLOCK_MONOTONIC on Linux, the same in every process anyway.
        """
        for workflow_id, items in spans.items():
            self.spans.setdefault(workflow_id, []).extend((str(n), float(s), float(e)) for n, s, e in items)

    def gaps_ms(self, workflow_ids: list[str]) -> list[float]:
        """Step latency: one step's end to the next one's start, the citizen's payment left out."""
        gaps = []
        for workflow_id in workflow_ids:
            spans = sorted(self.spans.get(workflow_id, []), key=lambda span: span[1])
            for (_, _, ended), (name, started, _) in itertools.pairwise(spans):
                if name != "desk.record_payment":  # after the citizen's wait, not a handoff
                    gaps.append(1000 * (started - ended))
        return gaps


async def prepare_database(database_url: str) -> None:
    """Each service's schema in the peer's database, created by that service's migrations."""
    for schema, migrations in SCHEMAS.items():
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            database_url, min_size=1, max_size=1, server_settings={"search_path": schema}
        )
        try:
            await migrate(pool, schema=schema, migrations=migrations)
        finally:
            await pool.close()


class LandTransferRoute:
    """Each agency's work on a land transfer as a DBOS transaction or step (see the module's doc)."""

    def __init__(
        self,
        datasource: AsyncSQLAlchemyDatasource,
        *,
        signer: LetterSigner,
        email: EmailChannel | None,
        times: StepTimes,
    ) -> None:
        self.catalog = Catalog.load()
        self.calendar = WorkingDayCalendar()
        self.prices = LandPriceTable.load()
        self.signer = signer
        self.email = email
        self.times = times
        self._ds = datasource

        def transaction(name: str, body: AsyncFunction[P, R]) -> AsyncFunction[P, R]:
            within = datasource.transaction(name=name, isolation_level=ISOLATION)
            return within(times.timed(name, body))

        self.receive = transaction("desk.receive", self._receive)
        self.record_answer = transaction("desk.record_answer", self._record_answer)
        self.record_payment = transaction("desk.record_payment", self._record_payment)
        self.registry_step = transaction("land_registry.perform_step", self._registry_step)
        self.assess = transaction("tax.assess", self._assess)
        self.record_notice = transaction("notification.record_notice", self._record_notice)
        self.record_delivery = transaction("notification.record_delivery", self._record_delivery)
        self.send_email = DBOS.step(name="notification.send_email")(
            times.timed("notification.send_email", self._send)
        )

    # --- the desk ----------------------------------------------------------------------------

    async def _receive(self, dossier_id: str, n: int) -> list[DossierEvent]:
        body = land_transfer(n)
        now = datetime.now(UTC)
        dossier, events = Dossier.receive(
            dossier_id=dossier_id,
            procedure=self.catalog.get(body["procedure_code"]),
            procedure_code=body["procedure_code"],
            applicant=Applicant.model_validate(body["applicant"]),
            documents=body["documents"],
            details=body["details"],
            now=now,
            calendar=self.calendar,
            lookup_code="PEER",
        )
        await self._save(dossier, now)
        return events

    async def _record_answer(self, answer: StepCompleted) -> list[DossierEvent]:
        now = datetime.now(UTC)
        dossier = await self._load(answer.dossier_id)
        events = dossier.on_step_completed(
            answer, now=now, calendar=self.calendar, agencies=self.catalog.agencies
        )
        await self._save(dossier, now)
        return events

    async def _record_payment(self, dossier_id: str, payment: dict[str, Any]) -> list[DossierEvent]:
        now = datetime.now(UTC)
        dossier = await self._load(dossier_id)
        events = dossier.record_payment(
            notice_number=payment["notice_number"],
            amount_vnd=payment["amount_vnd"],
            now=now,
            calendar=self.calendar,
        )
        await self._save(dossier, now)
        return events

    async def _load(self, dossier_id: str) -> Dossier:
        session = self._ds.sql_session()
        # Locked as the desk locks it: the workflow is the only writer, but the statement is the same.
        row = (
            (
                await session.execute(
                    text("SELECT * FROM intake.dossiers WHERE id = :id FOR UPDATE"), {"id": dossier_id}
                )
            )
            .mappings()
            .one()
        )
        slip = (
            (
                await session.execute(
                    text("SELECT * FROM intake.handoffs WHERE dossier_id = :id ORDER BY row_index"),
                    {"id": dossier_id},
                )
            )
            .mappings()
            .all()
        )
        return _dossier(row, slip)

    async def _save(self, dossier: Dossier, now: datetime) -> None:
        dossier.progress(now)  # the state our desk publishes to the read models moves progressed_at
        session = self._ds.sql_session()
        await session.execute(_SAVE_DOSSIER, {n: _db_value(getattr(dossier, n)) for n in _DOSSIER_FIELDS})
        await session.execute(
            _SAVE_SLIP,
            [{"dossier_id": dossier.id, **{n: getattr(h, n) for n in _SLIP_FIELDS}} for h in dossier.slip],
        )

    # --- the land registry and the tax office ------------------------------------------------------

    async def _registry_step(self, handover: DossierHandedOver) -> StepCompleted:
        session = self._ds.sql_session()
        serial = ""
        if handover.action == "issue_certificate":
            number = (
                await session.execute(text("SELECT nextval('land_registry.certificate_serial')"))
            ).scalar_one()
            serial = f"TA {number:06d}"
        outcome = perform(handover, prices=self.prices, certificate_serial=serial)
        now = datetime.now(UTC)
        await session.execute(
            text(
                "INSERT INTO land_registry.steps_done (dossier_id, step_index, handoff_row, action, outcome,"
                " note, result, received_at, completed_at) VALUES (:dossier_id, :step_index, :handoff_row,"
                " :action, :outcome, :note, CAST(:result AS jsonb), :at, :at)"
            ),
            {
                "dossier_id": handover.dossier_id,
                "step_index": handover.step_index,
                "handoff_row": -1 if handover.handoff_row is None else handover.handoff_row,
                "action": handover.action,
                "outcome": outcome.outcome,
                "note": outcome.note,
                "result": json.dumps(outcome.result),
                "at": now,
            },
        )
        return StepCompleted.answering(
            handover,
            outcome=outcome.outcome,
            received_at=now,
            completed_at=now,
            note=outcome.note,
            result=outcome.result,
        )

    async def _assess(self, handover: DossierHandedOver) -> tuple[PaymentNoticeIssued, StepCompleted]:
        session = self._ds.sql_session()
        assessment = assess(handover.results)
        now = datetime.now(UTC)
        number = (await session.execute(text("SELECT nextval('tax.notice_number')"))).scalar_one()
        notice_number = f"TB-{now:%Y}-{number:06d}"
        await session.execute(
            text(
                "INSERT INTO tax.assessments (dossier_id, handoff_row, notice_number, taxable_value_vnd,"
                " registration_fee_vnd, personal_income_tax_vnd, total_vnd, issued_at, pay_by)"
                " VALUES (:dossier_id, :handoff_row, :notice_number, :taxable, :fee, :pit, :total, :at,"
                " :pay_by)"
            ),
            {
                "dossier_id": handover.dossier_id,
                "handoff_row": -1 if handover.handoff_row is None else handover.handoff_row,
                "notice_number": notice_number,
                "taxable": assessment.taxable_value_vnd,
                "fee": assessment.registration_fee_vnd,
                "pit": assessment.personal_income_tax_vnd,
                "total": assessment.total_vnd,
                "at": now,
                "pay_by": assessment.pay_by(now),
            },
        )
        return notice_and_answer(handover, assessment, notice_number=notice_number, now=now)

    # --- the notification service --------------------------------------------------------------

    async def _record_notice(self, event: DossierEvent, source_event_id: str) -> Outgoing | None:
        notice = render(event)
        if notice is None:
            return None
        notice = await self._signed(notice)
        now = datetime.now(UTC)
        session = self._ds.sql_session()
        attachment = notice.attachment
        notice_id = (
            await session.execute(
                text(
                    "INSERT INTO notification.notices (source_event_id, dossier_id, kind, recipient_name,"
                    " recipient_email, recipient_phone, subject, body, created_at, sms_text, attachment_name,"
                    " attachment_content_type, attachment) VALUES (:source, :dossier_id, :kind, :name,"
                    " :email, :phone, :subject, :body, :at, :sms, :file, :content_type, :data) RETURNING id"
                ),
                {
                    "source": source_event_id,
                    "dossier_id": notice.dossier_id,
                    "kind": notice.kind,
                    "name": notice.recipient.full_name,
                    "email": notice.recipient.email,
                    "phone": notice.recipient.phone,
                    "subject": notice.subject,
                    "body": notice.body,
                    "at": now,
                    "sms": notice.sms,
                    "file": attachment.filename if attachment else None,
                    "content_type": attachment.content_type if attachment else None,
                    "data": attachment.data if attachment else None,
                },
            )
        ).scalar_one()
        delivery_id = (
            await session.execute(
                text(
                    "INSERT INTO notification.deliveries (notice_id, channel, address, next_attempt_at,"
                    " created_at) VALUES (:notice_id, :channel, :address, :at, :at) RETURNING id"
                ),
                {"notice_id": notice_id, "channel": EMAIL, "address": notice.recipient.email, "at": now},
            )
        ).scalar_one()
        return Outgoing(
            delivery_id=delivery_id,
            notice_id=notice_id,
            source_event_id=source_event_id,
            channel=EMAIL,
            address=notice.recipient.email,
            attempt=1,
            due_at=now,
            dossier_id=notice.dossier_id,
            kind=notice.kind,
            recipient_name=notice.recipient.full_name,
            subject=notice.subject,
            body=notice.body,
            sms_text=notice.sms,
            created_at=now,
            attachment=attachment,
        )

    async def _signed(self, notice: Notice) -> Notice:
        attachment = notice.attachment
        if attachment is None or attachment.signed_by not in self.signer.agencies:
            return notice  # no letter, or the peer was started without that agency's certificate
        data = await self.signer.sign(attachment.data, agency=attachment.signed_by, location=DEFAULT_PLACE)
        return dataclasses.replace(notice, attachment=dataclasses.replace(attachment, data=data))

    async def _send(self, item: Outgoing) -> tuple[datetime, datetime, str]:
        started = datetime.now(UTC)
        provider_id = await self.email.send(item) if self.email is not None else ""
        return started, datetime.now(UTC), provider_id

    async def _record_delivery(
        self, item: Outgoing, started: datetime, finished: datetime, provider_id: str
    ) -> None:
        session = self._ds.sql_session()
        await session.execute(
            text(
                "INSERT INTO notification.delivery_attempts (delivery_id, attempt, started_at, finished_at,"
                " outcome, detail) VALUES (:id, 1, :started, :finished, 'sent', '')"
            ),
            {"id": item.delivery_id, "started": started, "finished": finished},
        )
        await session.execute(
            text(
                "UPDATE notification.deliveries SET status = 'sent', attempts = 1, sent_at = :finished,"
                " provider_id = :provider_id WHERE id = :id"
            ),
            {"id": item.delivery_id, "finished": finished, "provider_id": provider_id},
        )

    async def notify(self, event: DossierEvent, source_event_id: str) -> None:
        """The citizen's notice for ``event``: rendered and recorded, sent, its outcome recorded."""
        item = await self.record_notice(event, source_event_id)
        if item is None:
            return
        if self.email is None:
            return  # recorded only: the peer was started without a mailbox
        started, finished, provider_id = await self.send_email(item)
        await self.record_delivery(item, started, finished, provider_id)


_ROUTE: LandTransferRoute | None = None


def install(route: LandTransferRoute) -> None:
    """The route the workflow runs (DBOS workflows are module-level functions, registered before launch)."""
    global _ROUTE
    _ROUTE = route


def _the(events: list[DossierEvent], kind: type[R]) -> R:
    return next(e for e in events if isinstance(e, kind))


@DBOS.workflow(name="land_transfer")
async def land_transfer_workflow(dossier_id: str, n: int) -> str:
    """One land transfer from receipt to returned result, with its three notices; its final status."""
    route = _ROUTE
    assert route is not None, "install() the route before launching DBOS"
    events = await route.receive(dossier_id, n)
    await route.notify(_the(events, DossierReceived), f"{dossier_id}:received")
    answer = await route.registry_step(_the(events, DossierHandedOver))  # appraise
    events = await route.record_answer(answer)
    notice, answer = await route.assess(_the(events, DossierHandedOver))
    await route.notify(notice, f"{dossier_id}:tax_notice")
    await route.record_answer(answer)  # the desk now waits for the citizen's payment
    await DBOS.set_event_async(
        AWAITING_PAYMENT, {"notice_number": notice.notice_number, "amount_vnd": notice.total_vnd}
    )
    payment = await DBOS.recv_async(PAYMENT, timeout_seconds=PAYMENT_TIMEOUT_SECONDS)
    if payment is None:
        return "awaiting_payment"
    events = await route.record_payment(dossier_id, payment)
    answer = await route.registry_step(_the(events, DossierHandedOver))  # issue the certificate
    events = await route.record_answer(answer)
    returned = _the(events, DossierReturned)
    await route.notify(returned, f"{dossier_id}:returned")
    return "returned" if returned.outcome == "approved" else "rejected"


def smtp_channel(port: int | None) -> EmailChannel | None:
    """E-mail to the bench's mailbox as the notification service sends it (4 pooled connections)."""
    return None if port is None else EmailChannel(SmtpSettings(host="127.0.0.1", port=port))


def letter_signer(directory: Path | None) -> LetterSigner:
    """The agencies' letter signer (``LETTER_SIGNING_DIR``); none: letters go unsigned."""
    return LetterSigner.from_directory(directory) if directory is not None else LetterSigner({})
