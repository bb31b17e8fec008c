"""Delivering recorded notices to citizens: e-mail over SMTP, SMS through an HTTP gateway.

A notice and one delivery row per channel are written in one transaction (see
:mod:`services.notification.handlers`). The :class:`DeliveryWorker` then, in a loop:

1. claims due rows with ``FOR UPDATE SKIP LOCKED`` and leases them: ``attempts`` goes up and
   ``next_attempt_at`` moves a lease ahead, in one short transaction (no transaction is held
   open while talking to a mail server, and several workers never take the same row);
2. sends each through its channel;
3. records the outcome with the attempt: ``sent`` (with ``sent_at`` and the provider's id), or a
   retry at ``next_attempt_at`` after an exponential backoff (capped), or ``failed`` once the
   attempts are used up or the channel refused the message for good, with the last error.

A worker that dies between sending and recording leaves the row leased; when the lease runs
out the row is sent again. That resend carries the same ``Message-ID`` (derived from the
notice), the same ``Date`` and the same bytes, so mail software recognises it as the same
message; the SMS gateway gets the same ``reference`` to deduplicate on.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.charset
import email.encoders
import email.errors
import email.generator
import email.policy
import email.utils
import hashlib
import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from typing import Protocol

import aiosmtplib
import asyncpg
import httpx

from contracts.events import Applicant
from services.notification.domain.notices import Attachment
from services.notification.store import DELIVERY_WAKEUP
from services.runtime.clock import Clock, work_time
from services.runtime.database import Connection, holds_session_state
from services.runtime.loops import keep_running

log = logging.getLogger(__name__)

EMAIL, SMS = "email", "sms"


def addresses(recipient: Applicant, channels: tuple[str, ...]) -> dict[str, str]:
    """Where each enabled channel reaches the citizen."""
    known = {EMAIL: recipient.email, SMS: recipient.phone}
    return {channel: known[channel] for channel in channels}


class DeliveryError(Exception):
    """The channel could not take the message now (server down, timeout): try again later."""


class DeliveryRejected(Exception):
    """The channel refused this message for good (unknown mailbox, invalid number): no retry."""


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery with what it carries."""

    delivery_id: int
    notice_id: int
    source_event_id: str
    channel: str
    address: str
    attempt: int
    due_at: datetime
    """When this attempt fell due (for a first attempt, when the notice was written)."""
    dossier_id: str
    kind: str
    recipient_name: str
    subject: str
    body: str
    sms_text: str
    created_at: datetime
    attachment: Attachment | None

    @property
    def reference(self) -> str:
        """Stable across attempts: the channel's idempotency key for this notice."""
        return f"notice-{self.notice_id}-{_digest(self.source_event_id)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Channel(Protocol):
    """One way of reaching a citizen."""

    async def send(self, item: Outgoing) -> str:
        """Deliver ``item`` to ``item.address``; return the provider's id for it.

        Raise :class:`DeliveryRejected` when retrying cannot help; anything else is retried.
        """
        ...


# --- e-mail -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    """Where and how to hand e-mail over (``SMTP_*``; no credentials in the repository)."""

    host: str = "127.0.0.1"
    port: int = 8025
    sender: str = "mot-cua@tan-an.example.vn"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 30.0

    @property
    def domain(self) -> str:
        """The sender's domain, which also names our Message-IDs."""
        return self.sender.rpartition("@")[2] or "localhost"


def message_id(item: Outgoing, domain: str) -> str:
    """The notice's Message-ID: the same for every attempt, unique across notices and databases."""
    return f"<notice-{item.notice_id}.{_digest(item.source_event_id)}@{domain}>"


_UTF8_QP = email.charset.Charset("utf-8")
_UTF8_QP.body_encoding = email.charset.QP  # the text stays readable in the raw message
_SMTP_LINES = email.policy.compat32.clone(linesep="\r\n")


def build_email(item: Outgoing, settings: SmtpSettings) -> bytes:
    """The e-mail for a notice, as sent: UTF-8 subject and body, the letter's PDF attached.

    Composed with the stdlib's ``compat32`` classes (``email.mime``): a third of what
    ``EmailMessage`` costs. They accept a line break in a header value, which would let a
    notice's text add headers, so every header value is checked here as ``EmailMessage``
    checks it, and the address is parsed by the modern parser. Refusals are
    :class:`DeliveryRejected`: retrying cannot fix the notice.
    """
    headers = {
        "Subject": item.subject,
        "To": item.recipient_name,
        "X-Dossier-Id": item.dossier_id,
        "X-Notice-Kind": item.kind,
        "filename": item.attachment.filename if item.attachment else "",
    }
    broken = [name for name, value in headers.items() if "\r" in value or "\n" in value]
    if broken:
        raise DeliveryRejected(f"cannot write the e-mail: a line break in {', '.join(broken)}")
    try:
        Address(addr_spec=item.address)  # raises on anything but one plain address
        recipient = email.utils.formataddr((item.recipient_name, item.address), charset="utf-8")
    except (ValueError, TypeError, IndexError, email.errors.HeaderParseError) as exc:  # not an address
        raise DeliveryRejected(f"cannot write the e-mail: {exc}") from exc
    text = MIMENonMultipart("text", "plain")
    text.set_payload(item.body, charset=_UTF8_QP)  # 7-bit safe
    message: Message = text
    if item.attachment is not None:
        maintype, _, subtype = item.attachment.content_type.partition("/")
        document = MIMEBase(maintype, subtype)
        document.set_payload(item.attachment.data)
        email.encoders.encode_base64(document)
        document.add_header("Content-Disposition", "attachment", filename=item.attachment.filename)
        # A fixed boundary (not a random one): every attempt sends the same bytes.
        message = MIMEMultipart(boundary=f"=_{item.reference}")
        for part in (text, document):
            del part["MIME-Version"]  # once, on the message
            message.attach(part)
    message["Message-ID"] = message_id(item, settings.domain)
    message["Date"] = email.utils.format_datetime(item.created_at)
    message["From"] = settings.sender
    message["To"] = recipient
    message["Subject"] = item.subject  # written as UTF-8 encoded words when flattened
    message["X-Dossier-Id"] = item.dossier_id
    message["X-Notice-Kind"] = item.kind
    with io.BytesIO() as out:
        email.generator.BytesGenerator(out, mangle_from_=False, policy=_SMTP_LINES).flatten(message)
        return out.getvalue()


class EmailChannel:
    """E-mail over SMTP (``aiosmtplib``), on a few connections kept open between messages.

    A new connection per message cost four extra round trips (greeting, EHLO, QUIT, and TCP)
    and a thread hop each (stdlib ``smtplib``); the notification service spent most of its time
    there at saturation. At most ``connections`` messages are in flight at once, one per
    connection. A connection that fails in any way is closed, not reused; one the server
    closed while idle is replaced and the message sent again at once.
    """

    def __init__(self, settings: SmtpSettings, *, connections: int = 4) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(connections)

    async def send(self, item: Outgoing) -> str:
        """Hand the e-mail to the SMTP server; the provider id is its Message-ID."""
        message = build_email(item, self.settings)
        async with self._slots:
            kept = self._idle.pop() if self._idle else None
            if kept is not None:
                try:
                    await self._send(kept, item.address, message)
                    return message_id(item, self.settings.domain)
                except aiosmtplib.SMTPServerDisconnected:
                    pass  # closed by the server while idle (its timeout): a new connection
            try:
                await self._send(await self._connect(), item.address, message)
            except aiosmtplib.SMTPServerDisconnected as exc:
                raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        return message_id(item, self.settings.domain)

    async def close(self) -> None:
        """Say QUIT on the connections kept open."""
        while self._idle:
            smtp = self._idle.pop()
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            start_tls=s.starttls,  # explicit: never upgrade (or not) behind the operator's back
            username=s.username,
            password=s.password,
        )
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        return smtp

    async def _send(self, smtp: aiosmtplib.SMTP, recipient: str, message: bytes) -> None:
        """Send ``message`` to ``recipient`` on ``smtp``; keep it for the next, close it on failure.

        Raises ``SMTPServerDisconnected`` as it is (the caller knows whether the connection was
        a kept one); other SMTP failures as :class:`DeliveryRejected` or :class:`DeliveryError`.
        """
        try:
            await smtp.sendmail(self.settings.sender, [recipient], message)
        except aiosmtplib.SMTPServerDisconnected:
            smtp.close()
            raise
        except aiosmtplib.SMTPRecipientsRefused as exc:
            smtp.close()
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            if exc.recipients and all(r.code >= 500 for r in exc.recipients):
                raise DeliveryRejected(f"recipient refused: {detail}") from exc
            raise DeliveryError(f"recipient deferred: {detail}") from exc
        except aiosmtplib.SMTPDataError as exc:
            smtp.close()
            if exc.code >= 500:
                raise DeliveryRejected(f"message refused: {exc.code} {exc.message}") from exc
            raise DeliveryError(f"message deferred: {exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Sender refused, authentication, TLS, timeouts: the server or our settings, not this
            # message; try again later.
            smtp.close()
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            smtp.close()
            raise
        self._idle.append(smtp)


# --- SMS ----------------------------------------------------------------------------------


class SmsGateway(Protocol):
    """An SMS provider."""

    async def send(self, phone: str, text: str, *, reference: str) -> str:
        """Send ``text`` to ``phone``; ``reference`` is stable across retries. Return its id."""
        ...


class HttpSmsGateway:
    """POSTs ``{"to", "text", "reference"}`` as JSON to ``SMS_GATEWAY_URL``; expects ``{"id"}``."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout

    async def send(self, phone: str, text: str, *, reference: str) -> str:
        """One request per message; 4xx other than 408/429 is a refusal, anything else a retry."""
        headers = self._headers | {"Idempotency-Key": reference}
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    self.url, json={"to": phone, "text": text, "reference": reference}, headers=headers
                )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise DeliveryRejected(f"gateway refused: {response.status_code} {response.text[:200]}")
        if response.status_code >= 300:
            raise DeliveryError(f"gateway answered {response.status_code} {response.text[:200]}")
        try:
            return str(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            return reference


class SmsChannel:
    """SMS through an :class:`SmsGateway`: the notice's short text."""

    def __init__(self, gateway: SmsGateway) -> None:
        self.gateway = gateway

    async def send(self, item: Outgoing) -> str:
        """Send the notice's short text to the citizen's phone."""
        return await self.gateway.send(item.address, item.sms_text, reference=item.reference)


# --- the worker ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry a delivery."""

    max_attempts: int = 8
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    lease_seconds: float = 300.0
    """How long a claimed row stays with its worker before another may take it (a crash)."""

    def backoff(self, attempt: int) -> timedelta:
        """Wait after failed attempt ``attempt`` (1-based): base, 2·base, 4·base, … up to the cap."""
        return timedelta(seconds=min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)))


_DUE = "status = 'pending' AND (attempts = 0 OR next_attempt_at <= $1) AND channel = ANY($2::text[])"
"""A delivery is due: its first attempt as soon as the notice is written, a retry at its time.

The first attempt runs at the notice's time (``work_time``): a replay writes notices ahead of
the virtual clock, and each is sent at the moment it was written, as when it was recorded.
"""

_CLAIM = f"""
WITH due AS (
    SELECT id, next_attempt_at AS due_at FROM deliveries
    WHERE {_DUE}
          AND attempts < $4
    ORDER BY next_attempt_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d SET attempts = d.attempts + 1,
       next_attempt_at = GREATEST(due.due_at, $1) + make_interval(secs => $5)
FROM due, notices n
WHERE d.id = due.id AND n.id = d.notice_id
RETURNING d.id, d.notice_id, d.channel, d.address, d.attempts, due.due_at, n.source_event_id, n.dossier_id,
          n.kind, n.recipient_name, n.subject, n.body, n.sms_text, n.created_at,
          n.attachment_name, n.attachment_content_type, n.attachment
"""

_ABANDON = """
UPDATE deliveries SET status = 'failed',
       last_error = 'attempt ' || attempts || ' started but its outcome was never recorded'
WHERE status = 'pending' AND next_attempt_at <= $1 AND attempts >= $2 AND channel = ANY($3::text[])
"""
"""Rows whose last allowed attempt was cut short (the worker died while sending)."""


class DeliveryWorker:
    """Sends due deliveries until cancelled; run with ``runtime.run_in_background``."""

    def __init__(
        self,
        *,
        pool: Callable[[], asyncpg.Pool],
        clock: Clock,
        channels: Mapping[str, Channel],
        policy: RetryPolicy | None = None,
        batch_size: int = 20,
        concurrency: int = 4,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        # The pool is looked up per call: it exists only once the service started.
        self._pool = pool
        self._clock = clock
        self.channels = dict(channels)
        self.policy = policy or RetryPolicy()
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        # A few sends at a time: each holds a pool connection while it records its outcome.
        self._sending = asyncio.Semaphore(concurrency)
        self._wakeup = asyncio.Event()
        self._in_flight = 0
        """Deliveries claimed and not yet recorded: leased, so the table no longer counts them."""
        self.sent_total = 0
        self.failed_total = 0
        self.errors_total = 0

    async def run(self) -> None:
        """Deliver forever; survive Postgres outages (rows wait, nothing is lost)."""
        try:
            await keep_running("delivery worker", self._serve)
        finally:
            for channel in self.channels.values():
                if isinstance(channel, EmailChannel):
                    await channel.close()

    async def _serve(self) -> None:
        async with self._pool().acquire() as listener:
            holds_session_state(listener)
            await listener.add_listener(DELIVERY_WAKEUP, self._on_notify)
            try:
                while True:
                    self._wakeup.clear()  # before the query: a NOTIFY during it is not lost
                    if await self.deliver_due() < self.batch_size:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), self.idle_poll_seconds)
            finally:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(DELIVERY_WAKEUP, self._on_notify)

    async def count_due(self, conn: Connection, now: datetime) -> int:
        """Deliveries due and not yet sent (or given up): 0 once the worker has caught up.

        Those being sent count too: a replay that saw none while a batch was in flight moved
        its clock on, and the batch's attempts were stamped at a later moment than recorded.
        """
        due = await conn.fetchval(f"SELECT count(*) FROM deliveries WHERE {_DUE}", now, sorted(self.channels))
        return int(due) + self._in_flight

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def deliver_due(self) -> int:
        """Claim the deliveries due now, send them, record every outcome; return how many.

        The outcomes are recorded together, in one transaction, once the batch is sent: a crash
        before that leaves the batch leased, to be sent again (same bytes) when the lease ends.
        """
        if not self.channels:
            return 0
        now = self._clock.now()
        channels = sorted(self.channels)
        claimed = 0
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                await conn.execute(_ABANDON, now, self.policy.max_attempts, channels)
                policy = self.policy
                rows = await conn.fetch(
                    _CLAIM, now, channels, self.batch_size, policy.max_attempts, policy.lease_seconds
                )
                # Counted before the claim commits: until then the table still shows them due.
                claimed = len(rows)
                self._in_flight += claimed
            if not rows:
                return 0
            outcomes = await asyncio.gather(*(self._deliver(_outgoing(row)) for row in rows))
            await self._record(outcomes)
            return len(outcomes)
        finally:
            self._in_flight -= claimed

    async def _deliver(self, item: Outgoing) -> _Outcome:
        async with self._sending:
            started = work_time(self._clock, item.due_at)
            provider_id, result = "", "sent"
            try:
                provider_id = await self.channels[item.channel].send(item)
                detail = provider_id
            except DeliveryRejected as exc:
                result, detail = "rejected", str(exc)
            except Exception as exc:  # whatever it is, the attempt failed and may be retried
                result, detail = "error", str(exc) if isinstance(exc, DeliveryError) else repr(exc)
            finished = work_time(self._clock, item.due_at)
            return _Outcome(item, result, detail[:2000], provider_id, started, finished)

    async def _record(self, outcomes: list[_Outcome]) -> None:
        sent = [o for o in outcomes if o.result == "sent"]
        unsent = [o for o in outcomes if o.result != "sent"]
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome,"
                " detail) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                [
                    (o.item.delivery_id, o.item.attempt, o.started, o.finished, o.result, o.detail)
                    for o in outcomes
                ],
            )
            if sent:
                await conn.executemany(
                    # A delivery voided while this send was in flight went all the same: say so.
                    "UPDATE deliveries SET status = 'sent', sent_at = $2, provider_id = $3, last_error = NULL"
                    " WHERE id = $1 AND status IN ('pending', 'voided')",
                    [(o.item.delivery_id, o.finished, o.provider_id) for o in sent],
                )
            if unsent:
                # Only the attempt that holds the row may change it (a late answer from an
                # attempt whose lease ran out must not reschedule a newer one).
                await conn.executemany(
                    "UPDATE deliveries SET status = $3, next_attempt_at = $4, last_error = $5"
                    " WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                    [
                        (
                            o.item.delivery_id,
                            o.item.attempt,
                            "failed" if self._gives_up(o) else "pending",
                            o.finished + self.policy.backoff(o.item.attempt),
                            o.detail,
                        )
                        for o in unsent
                    ],
                )
        for o in outcomes:
            item = o.item
            if o.result == "sent":
                self.sent_total += 1
                log.info("sent %s %s of %s to %s", item.channel, item.kind, item.dossier_id, item.address)
            elif self._gives_up(o):
                self.failed_total += 1
                log.error(
                    "giving up %s %s of %s after attempt %d: %s",
                    item.channel,
                    item.kind,
                    item.dossier_id,
                    item.attempt,
                    o.detail,
                )
            else:
                self.errors_total += 1
                log.warning(
                    "%s %s of %s failed (attempt %d), retrying at %s: %s",
                    item.channel,
                    item.kind,
                    item.dossier_id,
                    item.attempt,
                    o.finished + self.policy.backoff(item.attempt),
                    o.detail,
                )

    def _gives_up(self, outcome: _Outcome) -> bool:
        return outcome.result == "rejected" or outcome.item.attempt >= self.policy.max_attempts


@dataclass(frozen=True)
class _Outcome:
    """How one attempt went: ``sent``, ``rejected`` (for good) or ``error`` (try again)."""

    item: Outgoing
    result: str
    detail: str
    provider_id: str
    started: datetime
    finished: datetime


def _outgoing(row: asyncpg.Record) -> Outgoing:
    attachment = None
    if row["attachment"] is not None:
        attachment = Attachment(row["attachment_name"], row["attachment_content_type"], row["attachment"])
    return Outgoing(
        delivery_id=row["id"],
        notice_id=row["notice_id"],
        source_event_id=row["source_event_id"],
        channel=row["channel"],
        address=row["address"],
        attempt=row["attempts"],
        due_at=row["due_at"],
        dossier_id=row["dossier_id"],
        kind=row["kind"],
        recipient_name=row["recipient_name"],
        subject=row["subject"],
        body=row["body"],
        sms_text=row["sms_text"],
        created_at=row["created_at"],
        attachment=attachment,
    )
