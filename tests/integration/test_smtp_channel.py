"""The e-mail channel against a real SMTP server (aiosmtpd): kept connections and refusals.

The server here is the test's own, so it can refuse, defer, and close idle connections the
way real mail servers do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from infra.kafka import free_port
from services.notification.delivery import (
    DeliveryError,
    DeliveryRejected,
    EmailChannel,
    Outgoing,
    SmtpSettings,
)

pytestmark = pytest.mark.real


@dataclass
class PickyServer:
    """Accepts mail, except for ``refused…`` (550) and ``later…`` (451) recipients."""

    idle_timeout: float = 300.0
    received: list[tuple[Any, str]] = field(default_factory=list)
    """(the client's address and port, i.e. its connection; the recipient) per message."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("refused"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("later"):
            return "451 4.3.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((session.peer, envelope.rcpt_tos[0]))
        return "250 OK"


@pytest.fixture
async def smtp_server() -> AsyncIterator[tuple[PickyServer, int]]:
    picky = PickyServer(idle_timeout=0.5)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(picky, hostname="picky.localhost", timeout=picky.idle_timeout), "127.0.0.1", 0
    )
    try:
        yield picky, server.sockets[0].getsockname()[1]
    finally:
        server.close()


def outgoing(n: int, address: str) -> Outgoing:
    return Outgoing(
        delivery_id=n,
        notice_id=n,
        source_event_id=f"event-{n}",
        channel="email",
        address=address,
        attempt=1,
        due_at=datetime(2026, 3, 9, 1, tzinfo=UTC),
        dossier_id=f"HS-SMTP-{n}",
        kind="received",
        recipient_name="Nguyễn Văn An",
        subject="Biên nhận hồ sơ",
        body="Kính gửi ông Nguyễn Văn An,\n\nHồ sơ của ông đã được tiếp nhận.",
        sms_text="",
        created_at=datetime(2026, 3, 10, 3, 0, tzinfo=UTC),
        attachment=None,
    )


async def test_messages_share_a_kept_connection(smtp_server: tuple[PickyServer, int]) -> None:
    picky, port = smtp_server
    channel = EmailChannel(SmtpSettings(port=port, timeout=5), connections=1)
    try:
        ids = [await channel.send(outgoing(n, f"citizen{n}@example.vn")) for n in range(5)]
    finally:
        await channel.close()
    assert [to for _, to in picky.received] == [f"citizen{n}@example.vn" for n in range(5)]
    assert len({peer for peer, _ in picky.received}) == 1, "one connection for all five"
    assert len(set(ids)) == 5


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    smtp_server: tuple[PickyServer, int],
) -> None:
    picky, port = smtp_server
    channel = EmailChannel(SmtpSettings(port=port, timeout=5), connections=1)
    try:
        await channel.send(outgoing(1, "first@example.vn"))
        await asyncio.sleep(picky.idle_timeout * 3)  # the server hangs up on the idle connection
        await channel.send(outgoing(2, "second@example.vn"))
    finally:
        await channel.close()
    assert [to for _, to in picky.received] == ["first@example.vn", "second@example.vn"]
    assert picky.received[0][0] != picky.received[1][0], "the second went on a new connection"


async def test_a_refused_recipient_is_final_a_deferred_one_is_retried_and_the_next_goes_through(
    smtp_server: tuple[PickyServer, int],
) -> None:
    picky, port = smtp_server
    channel = EmailChannel(SmtpSettings(port=port, timeout=5), connections=1)
    try:
        with pytest.raises(DeliveryRejected, match="550"):
            await channel.send(outgoing(1, "refused@example.vn"))
        with pytest.raises(DeliveryError, match="451"):
            await channel.send(outgoing(2, "later@example.vn"))
        await channel.send(outgoing(3, "citizen@example.vn"))
    finally:
        await channel.close()
    assert [to for _, to in picky.received] == ["citizen@example.vn"]


async def test_no_server_is_a_delivery_error_to_retry() -> None:
    channel = EmailChannel(SmtpSettings(port=free_port(), timeout=5))
    with pytest.raises(DeliveryError, match="Error connecting"):
        await channel.send(outgoing(1, "citizen@example.vn"))
