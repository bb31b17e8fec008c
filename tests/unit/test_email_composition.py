"""A notice's e-mail: what a mail reader sees, the same bytes every attempt, and no way to add a header.

The e-mail is composed with the stdlib's legacy (``compat32``) classes for speed; those accept a
line break inside a header value, so these tests are what keeps a notice's text (a citizen's
name, a subject with the procedure's name) from writing headers of its own.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from services.notification.delivery import DeliveryRejected, Outgoing, SmtpSettings, build_email, message_id
from services.notification.domain.notices import Attachment

SETTINGS = SmtpSettings(sender="mot-cua@tan-an.example.vn")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"

ITEM = Outgoing(
    delivery_id=7,
    notice_id=42,
    source_event_id="0192-event",
    channel="email",
    address="nguyen.van.an@example.vn",
    attempt=1,
    due_at=datetime(2026, 3, 5, 2, 0, tzinfo=UTC),
    dossier_id="000.00.12.H39-260305-0001",
    kind="result",
    recipient_name='Nguyễn Văn "An", con',
    subject="Kết quả hồ sơ 000.00.12.H39-260305-0001: chuyển nhượng quyền sử dụng đất " * 2,
    body="THÔNG BÁO KẾT QUẢ GIẢI QUYẾT HỒ SƠ\nMã hồ sơ: 000.00.12.H39-260305-0001\n.\nFrom đây\n",
    sms_text="Hồ sơ đã có kết quả",
    created_at=datetime(2026, 3, 5, 2, 0, tzinfo=UTC),
    attachment=Attachment("thong-bao-ket-qua-000.00.12.H39-260305-0001.pdf", "application/pdf", PDF),
)


def read(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_mail_reader_sees_the_notice_as_written() -> None:
    data = build_email(ITEM, SETTINGS)
    message = read(data)

    assert message["Subject"] == ITEM.subject
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (ITEM.recipient_name, ITEM.address)
    assert message["From"] == SETTINGS.sender
    assert message["Message-ID"] == message_id(ITEM, SETTINGS.domain)
    assert message["Date"].datetime == ITEM.created_at
    assert (message["X-Dossier-Id"], message["X-Notice-Kind"]) == (ITEM.dossier_id, ITEM.kind)
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == ITEM.body
    (attachment,) = message.iter_attachments()
    assert ITEM.attachment is not None
    assert attachment.get_filename() == ITEM.attachment.filename
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF
    assert not [part.defects for part in message.walk() if part.defects]


def test_the_wire_form_is_7_bit_with_crlf_lines_and_the_same_every_attempt() -> None:
    data = build_email(ITEM, SETTINGS)

    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")  # SMTP wants CRLF, never a bare LF
    assert max(len(line) for line in data.split(b"\r\n")) <= 998  # RFC 5322's hard limit
    assert data.count(b"MIME-Version:") == 1
    assert build_email(dataclasses.replace(ITEM, attempt=2, delivery_id=8), SETTINGS) == data


def test_a_notice_without_a_letter_is_a_single_text_part() -> None:
    message = read(build_email(dataclasses.replace(ITEM, attachment=None), SETTINGS))

    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == ITEM.body


FORGERIES: dict[str, Callable[[str], Outgoing]] = {
    "subject": lambda tail: dataclasses.replace(ITEM, subject=ITEM.subject + tail),
    "recipient_name": lambda tail: dataclasses.replace(ITEM, recipient_name=ITEM.recipient_name + tail),
    "address": lambda tail: dataclasses.replace(ITEM, address=ITEM.address + tail),
    "dossier_id": lambda tail: dataclasses.replace(ITEM, dossier_id=ITEM.dossier_id + tail),
    "kind": lambda tail: dataclasses.replace(ITEM, kind=ITEM.kind + tail),
}
"""Every header value a notice supplies, with ``tail`` appended."""


@pytest.mark.parametrize("field", sorted(FORGERIES))
@pytest.mark.parametrize("breaking", ["\r\n", "\n", "\r"])
def test_a_line_break_in_any_header_value_is_refused_not_sent(field: str, breaking: str) -> None:
    forged = FORGERIES[field](f"{breaking}Bcc: everyone@example.com")

    with pytest.raises(DeliveryRejected, match="cannot write the e-mail"):
        build_email(forged, SETTINGS)


def test_a_line_break_in_the_attachment_name_is_refused() -> None:
    assert ITEM.attachment is not None
    forged = dataclasses.replace(
        ITEM, attachment=dataclasses.replace(ITEM.attachment, filename="a.pdf\r\nBcc: everyone@example.com")
    )

    with pytest.raises(DeliveryRejected, match="line break in filename"):
        build_email(forged, SETTINGS)


@pytest.mark.parametrize(
    "address",
    ["not an address", "a@example.vn, b@example.vn", "người.dùng@example.vn", "<a@example.vn>", ""],
)
def test_anything_but_one_plain_address_is_refused(address: str) -> None:
    with pytest.raises(DeliveryRejected, match="cannot write the e-mail"):
        build_email(dataclasses.replace(ITEM, address=address), SETTINGS)
