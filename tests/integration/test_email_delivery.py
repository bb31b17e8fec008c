"""Notices reach citizens: real Postgres, a real SMTP server (aiosmtpd), retries, no duplicates.

The notification service's handler runs as the service runs it (the record decoded from its
Kafka form, inbox claim and handler in one transaction) against a freshly migrated schema; the
delivery worker sends to an in-process :class:`infra.mailbox.Mailbox`. Time is a ManualClock,
so backoff is checked by moving the clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import threading
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pypdf import PdfReader

from contracts import topics
from contracts.agencies import NOTIFICATION, ONE_STOP, source_uri
from contracts.envelope import CloudEvent
from contracts.events import ApologyIssued, Applicant, DossierEvent
from infra.kafka import free_port
from infra.mailbox import Mailbox
from infra.stack import Stack
from services.notification import store
from services.notification.app import build_runtime, notices_router
from services.notification.delivery import (
    Channel,
    DeliveryWorker,
    EmailChannel,
    Outgoing,
    RetryPolicy,
    SmtpSettings,
)
from services.notification.document_signing import LetterSigner
from services.notification.handlers import NoticeWriter
from services.notification.letter_press import LetterPress
from services.notification.settings import DeliverySettings
from services.runtime.clock import ManualClock
from services.runtime.database import create_pool, migrate
from services.runtime.kafka_access import KafkaAccess
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.runtime.unit_of_work import unit_of_work
from tests.dossier_samples import applicant, eventually_equal
from tests.letter_signatures import signer_organisation

pytestmark = pytest.mark.real

WHEN = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
SENDER = "mot-cua@tan-an.example.vn"


@dataclasses.dataclass
class Notification:
    """The notification service's handler and delivery worker on their own schema."""

    pool: asyncpg.Pool
    clock: ManualClock
    writer: NoticeWriter
    duplicates: int = 0

    def worker(self, channels: dict[str, Channel], policy: RetryPolicy | None = None) -> DeliveryWorker:
        return DeliveryWorker(
            pool=lambda: self.pool,
            clock=self.clock,
            channels=channels,
            policy=policy or RetryPolicy(base_seconds=60, cap_seconds=600, max_attempts=5),
            idle_poll_seconds=0.2,
        )

    async def consume(self, event: CloudEvent) -> None:
        """As the service handles a record read from intake.events (see RecordProcessor)."""
        received = CloudEvent.from_record(key=event.key, value=event.value(), headers=event.headers())
        async with unit_of_work(
            self.pool, now=self.clock.now(), source=source_uri(NOTIFICATION), outbox_channel="outbox_unused"
        ) as uow:
            if not await uow.claim("notification.intake", received):
                self.duplicates += 1  # a redelivery: the inbox has it
                return
            await self.writer.write_notice(uow, received)

    async def delivery(self, event: CloudEvent, channel: str = "email") -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT d.* FROM deliveries d JOIN notices n ON n.id = d.notice_id"
            " WHERE n.source_event_id = $1 AND d.channel = $2",
            event.id,
            channel,
        )
        assert row is not None
        return row

    async def outcomes(self, event: CloudEvent) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT a.outcome FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " JOIN notices n ON n.id = d.notice_id WHERE n.source_event_id = $1 ORDER BY a.attempt",
            event.id,
        )
        return [row["outcome"] for row in rows]


@pytest.fixture
async def notification(stack: Stack) -> AsyncIterator[Notification]:
    schema = f"notif_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(stack.database_url, schema=schema, size=8)
    await migrate(pool, schema=schema, migrations=store.MIGRATIONS)
    clock = ManualClock(WHEN)
    runtime = ServiceRuntime(  # never started: it only lends the writer its settings
        settings=stack.settings_for(schema),
        agency=NOTIFICATION,
        migrations=store.MIGRATIONS,
        clock=clock,
    )
    try:
        signer = LetterSigner.from_directory(stack.letter_signing_dir())
        yield Notification(pool, clock, NoticeWriter(runtime=runtime, press=LetterPress(signer)))
    finally:
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


@pytest.fixture
async def mailbox(tmp_path: Path) -> AsyncIterator[Mailbox]:
    async with Mailbox(tmp_path / "mail", port=0) as box:
        yield box


def apology(dossier_id: str) -> CloudEvent:
    event = ApologyIssued(
        dossier_id=dossier_id,
        letter_number="PXL-2026-000007",
        issued_by_agency="tax",
        issuer_name="Chi cục Thuế thành phố Tân An",
        signatory_title="Chi cục trưởng",
        applicant=Applicant.model_validate(applicant(7001)),
        procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
        received_at=WHEN - timedelta(days=8),
        original_appointment_at=WHEN + timedelta(days=2),
        new_appointment_at=WHEN + timedelta(days=7),
        reason="Cần xác minh giá đất với Sở Tài chính",
        issued_at=WHEN,
        working_days_notice=Decimal(2),
    )
    return wrap(event)


def wrap(event: DossierEvent) -> CloudEvent:
    return CloudEvent.wrap(event, source=source_uri(ONE_STOP), time=WHEN)


def email(port: int) -> dict[str, Channel]:
    return {"email": EmailChannel(SmtpSettings(port=port, sender=SENDER, timeout=5))}


def expected_message_id(notice_id: int, event: CloudEvent) -> str:
    return f"<notice-{notice_id}.{hashlib.sha256(event.id.encode()).hexdigest()[:16]}@tan-an.example.vn>"


def pdf_text(data: bytes) -> str:
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(unicodedata.normalize("NFC", text).split())


def the_pdf(message: EmailMessage) -> bytes:
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    data = attachment.get_content()
    assert isinstance(data, bytes)
    return data


async def message_count(mailbox: Mailbox) -> int:
    return len(mailbox.messages())


async def test_apology_is_emailed_once_with_the_pdf_and_a_stable_message_id(
    notification: Notification, mailbox: Mailbox, stack: Stack
) -> None:
    event = apology(f"HS-MAIL-{uuid.uuid4().hex[:6]}")
    worker = notification.worker(email(mailbox.port))
    running = asyncio.create_task(worker.run())
    try:
        # The worker is already waiting: the notice's commit wakes it (NOTIFY), no polling needed.
        await notification.consume(event)
        await eventually_equal(lambda: message_count(mailbox), 1)
        await eventually_equal(
            lambda: notification.pool.fetchval("SELECT status FROM deliveries"), "sent", timeout=30
        )
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert await worker.deliver_due() == 0  # nothing left to send

    notice_id = await notification.pool.fetchval(
        "SELECT id FROM notices WHERE source_event_id = $1", event.id
    )
    (message,) = mailbox.messages()
    assert message["Message-ID"] == expected_message_id(notice_id, event)
    assert message["From"] == SENDER
    assert message["To"].addresses[0].display_name == "Nguyễn Văn An 7001"
    assert message["To"].addresses[0].addr_spec == "an7001@example.vn"
    assert message["Delivered-To"] == "an7001@example.vn"
    assert message["Subject"] == f"Phiếu xin lỗi và hẹn lại ngày trả kết quả, hồ sơ {event.subject}"
    assert message["X-Dossier-Id"] == event.subject
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ" in text
    assert "lý do: Cần xác minh giá đất với Sở Tài chính." in text
    pdf = pdf_text(the_pdf(message))
    assert "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ" in pdf
    assert "vào 10 giờ 00 phút, ngày 17/03/2026" in pdf  # WHEN + 7 days, in Vietnam time
    # Signed by the tax office, the agency at fault, as its CA vouches.
    tax_name = "Chi cục Thuế thành phố Tân An"
    assert await signer_organisation(the_pdf(message), stack.letter_signing_dir(), "tax") == tax_name

    delivery = await notification.delivery(event)
    assert (delivery["status"], delivery["attempts"], delivery["provider_id"]) == (
        "sent",
        1,
        message["Message-ID"],
    )
    assert delivery["sent_at"] == WHEN
    assert await notification.outcomes(event) == ["sent"]

    # Operators see it: the notice, its delivery, and the PDF as sent.
    app = FastAPI()
    app.include_router(notices_router(lambda: notification.pool, stack.access()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notification"
    ) as api:
        # Notices carry personal data: no token, no notices; a citizen's token is not enough.
        assert (await api.get("/notices", params={"dossier_id": event.subject})).status_code == 401
        citizen = {"Authorization": f"Bearer {stack.token('citizen')}"}
        assert (
            await api.get("/notices", params={"dossier_id": event.subject}, headers=citizen)
        ).status_code == 403
        api.headers["Authorization"] = f"Bearer {stack.token('operator')}"
        response = await api.get("/notices", params={"dossier_id": event.subject})
        assert response.status_code == 200
        (listed,) = response.json()
        assert listed["kind"] == "apology"
        assert listed["created_at"] == "2026-03-10T10:00:00+07:00"
        ((channel, status, attempts),) = [
            (d["channel"], d["status"], d["attempts"]) for d in listed["deliveries"]
        ]
        assert (channel, status, attempts) == ("email", "sent", 1)
        assert listed["deliveries"][0]["provider_id"] == message["Message-ID"]
        letter = await api.get(listed["attachment_url"])
        assert letter.headers["content-type"] == "application/pdf"
        assert letter.content == the_pdf(message)
        assert (await api.get("/notices/999999/attachment")).status_code == 404
        assert (await api.get("/notices", params={"dossier_id": "HS-NOTHING"})).json() == []


async def test_smtp_outage_is_retried_with_backoff_and_delivers_once(
    notification: Notification, tmp_path: Path
) -> None:
    mailbox = Mailbox(tmp_path / "mail", port=0)
    await mailbox.start()
    port = mailbox.port
    await mailbox.stop()  # the mail server is down
    event = apology(f"HS-DOWN-{uuid.uuid4().hex[:6]}")
    await notification.consume(event)
    worker = notification.worker(email(port))
    clock = notification.clock

    assert await worker.deliver_due() == 1
    first = await notification.delivery(event)
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert first["next_attempt_at"] == WHEN + timedelta(seconds=60)
    assert "error connecting to 127.0.0.1" in first["last_error"].lower()
    assert await worker.deliver_due() == 0  # backing off: not due before its time

    clock.advance(timedelta(seconds=60))
    assert await worker.deliver_due() == 1  # still down: the wait doubles
    second = await notification.delivery(event)
    assert (second["status"], second["attempts"]) == ("pending", 2)
    assert second["next_attempt_at"] == clock.now() + timedelta(seconds=120)

    await mailbox.start()  # the server is back, on the same port
    try:
        clock.advance(timedelta(seconds=119))
        assert await worker.deliver_due() == 0
        clock.advance(timedelta(seconds=1))
        assert await worker.deliver_due() == 1
        assert await worker.deliver_due() == 0
        delivered = await notification.delivery(event)
        assert (delivered["status"], delivered["attempts"], delivered["last_error"]) == ("sent", 3, None)
        assert await notification.outcomes(event) == ["error", "error", "sent"]
        assert len(mailbox.messages()) == 1
    finally:
        await mailbox.stop()


async def test_delivery_fails_after_its_last_attempt_with_the_error_kept(notification: Notification) -> None:
    event = apology(f"HS-FAIL-{uuid.uuid4().hex[:6]}")
    await notification.consume(event)
    worker = notification.worker(email(free_port()), RetryPolicy(max_attempts=2, base_seconds=10))

    assert await worker.deliver_due() == 1
    notification.clock.advance(timedelta(seconds=10))
    assert await worker.deliver_due() == 1
    failed = await notification.delivery(event)
    assert (failed["status"], failed["attempts"], failed["sent_at"]) == ("failed", 2, None)
    assert "error connecting to 127.0.0.1" in failed["last_error"].lower()
    notification.clock.advance(timedelta(days=1))
    assert await worker.deliver_due() == 0  # given up for good
    assert await notification.outcomes(event) == ["error", "error"]
    assert worker.failed_total == 1


async def test_the_same_apology_event_twice_gives_one_notice_and_one_email(
    notification: Notification, mailbox: Mailbox
) -> None:
    event = apology(f"HS-TWICE-{uuid.uuid4().hex[:6]}")
    await notification.consume(event)
    await notification.consume(event)  # Kafka redelivers: the inbox recognises it
    assert notification.duplicates == 1
    # Even with the inbox bypassed (the handler run again on the same event), the notice's
    # unique key keeps it once, and with it its delivery.
    async with unit_of_work(
        notification.pool, now=WHEN, source=source_uri(NOTIFICATION), outbox_channel="outbox_unused"
    ) as uow:
        await notification.writer.write_notice(uow, event)
    counts = await notification.pool.fetchrow(
        "SELECT (SELECT count(*) FROM notices) AS notices, (SELECT count(*) FROM deliveries) AS deliveries"
    )
    assert counts is not None
    assert (counts["notices"], counts["deliveries"]) == (1, 1)

    worker = notification.worker(email(mailbox.port))
    assert await worker.deliver_due() == 1
    assert await worker.deliver_due() == 0
    await notification.consume(event)  # and once more after it was sent
    assert await worker.deliver_due() == 0
    assert len(mailbox.messages()) == 1


class ProcessKilled(BaseException):
    """The process dies: nothing after this line runs (the worker cannot catch it)."""


@dataclasses.dataclass
class DiesAfterSending:
    inner: Channel

    async def send(self, item: Outgoing) -> str:
        await self.inner.send(item)
        raise ProcessKilled


async def test_a_resend_after_a_crash_is_the_same_message(
    notification: Notification, mailbox: Mailbox
) -> None:
    event = apology(f"HS-CRASH-{uuid.uuid4().hex[:6]}")
    await notification.consume(event)
    policy = RetryPolicy(lease_seconds=300)
    crashing = notification.worker({"email": DiesAfterSending(email(mailbox.port)["email"])}, policy)
    with pytest.raises(ProcessKilled):
        await crashing.deliver_due()  # sent, but the worker died before recording it
    leased = await notification.delivery(event)
    assert (leased["status"], leased["attempts"]) == ("pending", 1)

    restarted = notification.worker(email(mailbox.port), policy)
    assert await restarted.deliver_due() == 0  # still leased to the dead worker
    notification.clock.advance(timedelta(seconds=300))
    assert await restarted.deliver_due() == 1
    assert (await notification.delivery(event))["status"] == "sent"

    first, second = mailbox.messages()
    # The duplicate the crash caused is recognisable: same Message-ID, same date, same letter...
    assert first["Message-ID"] == second["Message-ID"]
    assert first["Date"] == second["Date"]
    assert the_pdf(first) == the_pdf(second)
    # ...in fact the same bytes, once the receiving server's trace headers are set aside.
    sent = [path.read_bytes().split(b"\r\n", 3)[3] for path in sorted(mailbox.directory.glob("*.eml"))]
    assert sent[0] == sent[1]


@pytest.fixture
def sms_gateway() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                {"body": json.loads(self.rfile.read(length)), "key": self.headers["Idempotency-Key"]}
            )
            answer = json.dumps({"id": f"sms-{len(received)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/messages", received
    finally:
        server.shutdown()
        server.server_close()


async def test_sms_goes_to_the_gateway_when_one_is_configured(
    notification: Notification, mailbox: Mailbox, sms_gateway: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = sms_gateway
    settings = DeliverySettings.from_env(
        {"SMTP_PORT": str(mailbox.port), "SMTP_FROM": SENDER, "SMS_GATEWAY_URL": url}
    )
    channels = settings.channels()
    assert sorted(channels) == ["email", "sms"]
    notification.writer.channels = tuple(channels)
    event = apology(f"HS-SMS-{uuid.uuid4().hex[:6]}")
    await notification.consume(event)

    worker = notification.worker(channels)
    assert await worker.deliver_due() == 2
    (sms,) = received
    assert sms["body"]["to"] == "0912345678"
    assert "Chi cục Thuế thành phố Tân An xin lỗi" in sms["body"]["text"]
    assert sms["key"] == sms["body"]["reference"]
    assert (await notification.delivery(event, "sms"))["provider_id"] == "sms-1"
    assert (await notification.delivery(event, "email"))["status"] == "sent"
    assert len(mailbox.messages()) == 1


def test_the_service_wires_the_new_notices_and_the_delivery_worker() -> None:
    runtime = build_runtime(
        ServiceSettings(
            service="notification",
            kafka=KafkaAccess(bootstrap_servers="127.0.0.1:1", security_protocol="PLAINTEXT"),
            database_url="postgresql://unused",
            host="127.0.0.1",
            port=0,
        ),
        delivery=DeliverySettings.from_env({}),
    )
    (letters,) = [s for s in runtime.subscriptions if s.topic == topics.INTAKE_CITIZENS]
    assert {cls.__name__ for cls in letters.accepts} >= {"SupplementRequested", "ApologyIssued"}
    assert [name for name, _ in runtime._background] == ["letter_press", "delivery"]
