"""The golden streams under ``tests/golden`` replay into a fresh system with the exact outcome.

Each stream was recorded once from a system running one dossier's scenario on virtual time
(``python -m tests.golden.make_golden``; see ``tests/golden/README.md``). Here each is replayed
into a fresh system (intake, notification and console: the agencies' answers come from the
file; for the mixed-version stream only the consumers, notification and console) and the
outcome is compared with values written out below: the dossier's status, dates and
process-control slip as intake's API shows them, the console's read model, and the letters the
citizen received. A change that alters any of them fails here, as it would for the recorded
citizens.
"""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from infra.fresh import target_of
from infra.stack import Stack
from services.replay.recording import read_records
from services.replay.replay import ReplayReport, replay
from tests.dossier_samples import signed_in
from tests.systems import fresh_system, settled

pytestmark = pytest.mark.real

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
DESK = ("intake", "notification", "console")
CONSUMERS = ("notification", "console")
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


@asynccontextmanager
async def replayed(stack: Stack, name: str, services: tuple[str, ...]) -> AsyncIterator[Replayed]:
    """A fresh system running ``services`` with the golden stream ``name`` replayed into it."""
    async with fresh_system(stack, services) as fresh:
        report = await replay(GOLDEN / f"{name}.jsonl.gz", target_of(fresh), progress=False)
        assert report.refused == []
        await settled(fresh)
        yield Replayed(fresh, report)


@dataclass(frozen=True)
class Replayed:
    system: Stack
    report: ReplayReport

    async def dossier(self, dossier_id: str) -> dict[str, Any]:
        """GET /dossiers/{id} on the fresh intake."""
        async with signed_in(self.system, "intake", timeout=10) as intake:
            response = await intake.get(f"/dossiers/{dossier_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def rows(self, query: str) -> list[dict[str, Any]]:
        """A query on the fresh system's database; times in Vietnam time, decimals as text."""
        conn = await asyncpg.connect(self.system.database_url)
        try:
            return [{k: _plain(v) for k, v in r.items()} for r in await conn.fetch(query)]
        finally:
            await conn.close()

    def letters(self) -> list[Letter]:
        """Every mail the fresh system sent, by the virtual time it was sent (its Date), then subject.

        Not by arrival at the mailbox: a replay hands inputs over in windows, and two letters
        reaching notification by different paths (the desk's events, the tax office's notice)
        may arrive in either order; their dates are the moments they were sent.
        """
        assert self.system.mailbox is not None
        sent = []
        for message in sorted(
            self.system.mailbox.messages(),
            key=lambda m: (email.utils.parsedate_to_datetime(str(m["Date"])), str(m["Subject"])),
        ):
            body = message.get_body(preferencelist=("plain",))
            assert body is not None
            sent.append(
                Letter(
                    to=str(message["To"]),
                    subject=str(message["Subject"]),
                    text=str(body.get_content()),
                    attachments=tuple(str(a.get_filename()) for a in message.iter_attachments()),
                )
            )
        return sent


@dataclass(frozen=True)
class Letter:
    to: str
    subject: str
    text: str
    attachments: tuple[str, ...]

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def section(self, heading: str, length: int) -> list[str]:
        """The line ``heading`` and the ``length - 1`` lines after it."""
        start = self.lines.index(heading)
        return self.lines[start : start + length]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(VIETNAM).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def slip(dossier: dict[str, Any]) -> list[tuple[str, str, str | None, str | None, str | None, str]]:
    """The process-control slip as (to, action, outcome, due_at, completed_at, late_by_days)."""
    return [
        (h["to"], h["action"], h["outcome"], h["due_at"], h["completed_at"], h["late_by_days"])
        for h in dossier["handoffs"]
    ]


def headline(dossier: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "status",
        "received_at",
        "appointment_date",
        "original_appointment_date",
        "returned_at",
        "on_time",
    )
    return {k: dossier[k] for k in keys}


CONSOLE_DOSSIERS = (
    "SELECT id, status, on_time, appointment_at, original_appointment_at, returned_at"
    " FROM console.dossiers ORDER BY id"
)


async def test_land_transfer(stack: Stack) -> None:
    async with replayed(stack, "land_transfer", DESK) as run:
        # The file holds the agencies' four answers; filing and paying are done again at the desk.
        assert (run.report.published, run.report.reenacted, run.report.regenerated) == (4, 2, 9)

        dossier = await run.dossier("HS-GOLDEN-LAND-1")
        assert headline(dossier) == {
            "status": "returned",
            "received_at": "2026-03-09T08:00:00+07:00",
            # 8 working days from Monday 08:00, plus the two hours the citizen took to pay.
            "appointment_date": "2026-03-19T10:00:00+07:00",
            "original_appointment_date": None,
            "returned_at": "2026-03-09T10:00:00+07:00",
            "on_time": True,
        }
        assert slip(dossier) == [
            ("one_stop", "receive", "done", "2026-03-09T13:30:00+07:00", "2026-03-09T08:00:00+07:00", "0"),
            (
                "land_registry",
                "appraise",
                "done",
                "2026-03-12T08:00:00+07:00",
                "2026-03-09T08:00:00+07:00",
                "0",
            ),
            ("tax", "assess", "done", "2026-03-09T13:30:00+07:00", "2026-03-09T08:00:00+07:00", "0"),
            ("citizen", "pay", "done", None, "2026-03-09T10:00:00+07:00", "0"),
            (
                "one_stop",
                "receive_payment_proof",
                "done",
                "2026-03-09T15:30:00+07:00",
                "2026-03-09T10:00:00+07:00",
                "0",
            ),
            (
                "land_registry",
                "issue_certificate",
                "done",
                "2026-03-12T15:30:00+07:00",
                "2026-03-09T10:00:00+07:00",
                "0",
            ),
            (
                "one_stop",
                "return_result",
                "done",
                "2026-03-09T10:00:00+07:00",
                "2026-03-09T10:00:00+07:00",
                "0",
            ),
        ]
        assert dossier["results"]["assess"] == {"notice_number": "TB-2026-000001", "total_vnd": 37_500_000}
        assert dossier["results"]["issue_certificate"]["certificate_serial"] == "TA 100001"

        assert await run.rows(CONSOLE_DOSSIERS) == [
            {
                "id": "HS-GOLDEN-LAND-1",
                "status": "returned",
                "on_time": True,
                "appointment_at": "2026-03-19T10:00:00+07:00",
                "original_appointment_at": None,
                "returned_at": "2026-03-09T10:00:00+07:00",
            }
        ]
        assert await run.rows("SELECT * FROM console.apologies") == []
        assert await run.rows("SELECT * FROM console.overdue_steps") == []

        to = "Nguyễn Văn An 9101 <an9101@example.vn>"
        letters = run.letters()
        assert [(m.to, m.subject, m.attachments) for m in letters] == [
            (to, "Giấy tiếp nhận hồ sơ HS-GOLDEN-LAND-1", ()),
            (to, "Thông báo nộp tiền TB-2026-000001", ()),
            (to, "Kết quả hồ sơ HS-GOLDEN-LAND-1", ("thong-bao-ket-qua-HS-GOLDEN-LAND-1.pdf",)),
        ]
        receipt, tax_notice, result = letters
        assert "5. Thời gian trả kết quả giải quyết hồ sơ: 08 giờ 00 phút, ngày 19/03/2026" in receipt.lines
        assert "   Tổng cộng: 500.000 đồng" in receipt.lines
        assert "Tổng số tiền phải nộp: 37.500.000 đồng" in tax_notice.lines
        assert "Hạn nộp: 08 giờ 00 phút, ngày 08/04/2026" in tax_notice.lines
        assert (
            "Thời gian trả kết quả: 10 giờ 00 phút, ngày 09/03/2026"
            " (đúng hẹn; ngày hẹn 10 giờ 00 phút, ngày 19/03/2026)" in result.lines
        )
        assert "- Số phát hành Giấy chứng nhận: TA 100001" in result.lines


async def test_late_apology(stack: Stack) -> None:
    async with replayed(stack, "late_apology", DESK) as run:
        assert (run.report.published, run.report.reenacted, run.report.regenerated) == (4, 2, 14)

        dossier = await run.dossier("HS-GOLDEN-LATE-1")
        assert headline(dossier) == {
            "status": "returned",
            "received_at": "2026-03-09T08:00:00+07:00",
            # The apology moved 19/03 08:00 to 13:30 (tax's half day once more); paying took an hour.
            "appointment_date": "2026-03-19T14:30:00+07:00",
            "original_appointment_date": "2026-03-19T08:00:00+07:00",
            "returned_at": "2026-03-11T10:00:00+07:00",
            # Late at one step, yet returned eight days before the first promised date.
            "on_time": True,
        }
        assert slip(dossier) == [
            ("one_stop", "receive", "done", "2026-03-09T13:30:00+07:00", "2026-03-09T08:00:00+07:00", "0"),
            (
                "land_registry",
                "appraise",
                "done",
                "2026-03-12T08:00:00+07:00",
                "2026-03-09T08:00:00+07:00",
                "0",
            ),
            # Due Monday 13:30, done Wednesday 09:00: 13 office hours late.
            ("tax", "assess", "done", "2026-03-09T13:30:00+07:00", "2026-03-11T09:00:00+07:00", "1.63"),
            ("citizen", "pay", "done", None, "2026-03-11T10:00:00+07:00", "0"),
            (
                "one_stop",
                "receive_payment_proof",
                "done",
                "2026-03-11T15:30:00+07:00",
                "2026-03-11T10:00:00+07:00",
                "0",
            ),
            (
                "land_registry",
                "issue_certificate",
                "done",
                "2026-03-16T15:30:00+07:00",
                "2026-03-11T10:00:00+07:00",
                "0",
            ),
            (
                "one_stop",
                "return_result",
                "done",
                "2026-03-11T10:00:00+07:00",
                "2026-03-11T10:00:00+07:00",
                "0",
            ),
        ]
        assert dossier["handoffs"][2]["overdue_at"] == "2026-03-11T09:00:00+07:00"

        assert await run.rows(
            "SELECT letter_number, issued_by_agency, issuer_name, signatory_title, original_appointment_at,"
            " new_appointment_at, issued_at, working_days_notice, reason FROM console.apologies"
        ) == [
            {
                "letter_number": "PXL-2026-000001",
                "issued_by_agency": "tax",
                "issuer_name": "Chi cục Thuế thành phố Tân An",
                "signatory_title": "Chi cục trưởng",
                "original_appointment_at": "2026-03-19T08:00:00+07:00",
                "new_appointment_at": "2026-03-19T13:30:00+07:00",
                "issued_at": "2026-03-11T09:00:00+07:00",
                "working_days_notice": "5.88",
                "reason": "Chi cục Thuế thành phố Tân An chưa hoàn thành bước assess"
                " trong thời hạn 0.5 ngày làm việc",
            }
        ]
        assert await run.rows(
            "SELECT agency, action, due_at, detected_at, appointment_at FROM console.overdue_steps"
        ) == [
            {
                "agency": "tax",
                "action": "assess",
                "due_at": "2026-03-09T13:30:00+07:00",
                "detected_at": "2026-03-11T09:00:00+07:00",
                "appointment_at": "2026-03-19T08:00:00+07:00",
            }
        ]
        # The clock jumped from Monday to Wednesday, past tax's second allowance (Tuesday 09:30)
        # too: the alarm that wrote the apology is followed at once by the escalation.
        assert await run.rows(
            "SELECT agency, action, detected_at, appointment_at FROM console.escalations"
        ) == [
            {
                "agency": "tax",
                "action": "assess",
                "detected_at": "2026-03-11T09:00:00+07:00",
                "appointment_at": "2026-03-19T13:30:00+07:00",
            }
        ]
        assert await run.rows(CONSOLE_DOSSIERS) == [
            {
                "id": "HS-GOLDEN-LATE-1",
                "status": "returned",
                "on_time": True,
                "appointment_at": "2026-03-19T14:30:00+07:00",
                "original_appointment_at": "2026-03-19T08:00:00+07:00",
                "returned_at": "2026-03-11T10:00:00+07:00",
            }
        ]

        to = "Nguyễn Văn An 9102 <an9102@example.vn>"
        letters = run.letters()
        assert [(m.to, m.subject, m.attachments) for m in letters] == [
            (to, "Giấy tiếp nhận hồ sơ HS-GOLDEN-LATE-1", ()),
            (
                to,
                "Phiếu xin lỗi và hẹn lại ngày trả kết quả, hồ sơ HS-GOLDEN-LATE-1",
                ("phieu-xin-loi-HS-GOLDEN-LATE-1.pdf",),
            ),
            (to, "Thông báo nộp tiền TB-2026-000001", ()),
            (to, "Kết quả hồ sơ HS-GOLDEN-LATE-1", ("thong-bao-ket-qua-HS-GOLDEN-LATE-1.pdf",)),
        ]
        apology, result = letters[1], letters[3]
        assert apology.lines[0].strip().startswith("CHI CỤC THUẾ THÀNH PHỐ TÂN AN")
        assert apology.lines[1].strip().startswith("Số: PXL-2026-000001")
        assert apology.lines[2].strip() == "Tân An, ngày 11 tháng 03 năm 2026"
        assert "Thời hẹn trả kết quả giải quyết hồ sơ: 08 giờ 00 phút, ngày 19/03/2026." in apology.lines
        assert (
            "Chi cục Thuế thành phố Tân An xin lỗi Ông/Bà và sẽ trả kết quả giải quyết hồ sơ cho Ông/Bà"
            " vào 13 giờ 30 phút, ngày 19/03/2026." in apology.lines
        )
        assert apology.lines[-2].strip() == "CHI CỤC TRƯỞNG"
        assert (
            "Thời gian trả kết quả: 10 giờ 00 phút, ngày 11/03/2026"
            " (đúng hẹn; ngày hẹn 14 giờ 30 phút, ngày 19/03/2026)" in result.lines
        )


async def test_supplement_pause(stack: Stack) -> None:
    async with replayed(stack, "supplement_pause", DESK) as run:
        # Desk actions: filing, the supplement request, the supplement, the payment.
        assert (run.report.published, run.report.reenacted, run.report.regenerated) == (6, 4, 13)

        dossier = await run.dossier("HS-GOLDEN-SUPPLEMENT-1")
        assert headline(dossier) == {
            "status": "returned",
            "received_at": "2026-03-09T08:00:00+07:00",
            # The limit restarted in full at the supplement (Tuesday 08:00), plus an hour to pay.
            "appointment_date": "2026-03-20T09:00:00+07:00",
            "original_appointment_date": None,
            "returned_at": "2026-03-10T09:00:00+07:00",
            "on_time": True,
        }
        assert slip(dossier) == [
            ("one_stop", "receive", "done", "2026-03-09T13:30:00+07:00", "2026-03-09T08:00:00+07:00", "0"),
            (
                "land_registry",
                "appraise",
                "done",
                "2026-03-12T08:00:00+07:00",
                "2026-03-09T08:00:00+07:00",
                "0",
            ),
            # The handoff to tax is withdrawn when the desk asks for the supplement, and redone.
            ("tax", "assess", "withdrawn", "2026-03-09T13:30:00+07:00", "2026-03-09T08:00:00+07:00", "0"),
            ("citizen", "supplement", "done", None, "2026-03-10T08:00:00+07:00", "0"),
            ("tax", "assess", "done", "2026-03-10T13:30:00+07:00", "2026-03-10T08:00:00+07:00", "0"),
            ("citizen", "pay", "done", None, "2026-03-10T09:00:00+07:00", "0"),
            (
                "one_stop",
                "receive_payment_proof",
                "done",
                "2026-03-10T14:30:00+07:00",
                "2026-03-10T09:00:00+07:00",
                "0",
            ),
            (
                "land_registry",
                "issue_certificate",
                "done",
                "2026-03-13T14:30:00+07:00",
                "2026-03-10T09:00:00+07:00",
                "0",
            ),
            (
                "one_stop",
                "return_result",
                "done",
                "2026-03-10T09:00:00+07:00",
                "2026-03-10T09:00:00+07:00",
                "0",
            ),
        ]
        assert dossier["handoffs"][2]["note"] == "tạm dừng: chờ bổ sung (thiếu bản vẽ sơ đồ thửa đất)"
        assert dossier["results"]["assess"] == {"notice_number": "TB-2026-000002", "total_vnd": 37_500_000}

        assert await run.rows(CONSOLE_DOSSIERS) == [
            {
                "id": "HS-GOLDEN-SUPPLEMENT-1",
                "status": "returned",
                "on_time": True,
                "appointment_at": "2026-03-20T09:00:00+07:00",
                "original_appointment_at": None,
                "returned_at": "2026-03-10T09:00:00+07:00",
            }
        ]
        assert await run.rows("SELECT * FROM console.apologies") == []
        assert await run.rows("SELECT * FROM console.overdue_steps") == []

        to = "Nguyễn Văn An 9103 <an9103@example.vn>"
        letters = run.letters()
        assert [(m.to, m.subject, m.attachments) for m in letters] == [
            (to, "Giấy tiếp nhận hồ sơ HS-GOLDEN-SUPPLEMENT-1", ()),
            (
                to,
                "Yêu cầu bổ sung, hoàn thiện hồ sơ HS-GOLDEN-SUPPLEMENT-1",
                ("phieu-yeu-cau-bo-sung-HS-GOLDEN-SUPPLEMENT-1.pdf",),
            ),
            # The tax office, back on Tuesday, answered the withdrawn handoff too: the citizen
            # gets a payment notice (000001) that the desk ignores, then the one that counts.
            (to, "Thông báo nộp tiền TB-2026-000001", ()),
            (to, "Thông báo nộp tiền TB-2026-000002", ()),
            (to, "Kết quả hồ sơ HS-GOLDEN-SUPPLEMENT-1", ("thong-bao-ket-qua-HS-GOLDEN-SUPPLEMENT-1.pdf",)),
        ]
        request, result = letters[1], letters[4]
        assert "   1. Bản vẽ sơ đồ thửa đất" in request.lines
        assert "Lý do: thiếu bản vẽ sơ đồ thửa đất." in request.lines
        assert (
            "Thời hạn giải quyết hồ sơ tạm dừng từ 08 giờ 00 phút, ngày 09/03/2026 và được tính lại"
            " từ đầu khi Ông/Bà nộp đủ hồ sơ đã bổ sung, hoàn thiện." in request.lines
        )
        assert (
            "Thời gian trả kết quả: 09 giờ 00 phút, ngày 10/03/2026"
            " (đúng hẹn; ngày hẹn 09 giờ 00 phút, ngày 20/03/2026)" in result.lines
        )
        assert "- Thông báo nộp tiền: TB-2026-000002" in result.lines


def test_the_mixed_stream_holds_both_versions_of_the_receipt() -> None:
    kinds = [
        (r.key, r.header("ce_type"))
        for r in read_records(GOLDEN / "mixed_versions.jsonl.gz")
        if r.topic == "intake.events"
    ]
    assert kinds == [
        (b"HS-GOLDEN-V1-1", "vn.gov.dossier.received.v1"),
        (b"HS-GOLDEN-COPY-1", "vn.gov.dossier.received.v2"),
        (b"HS-GOLDEN-COPY-1", "vn.gov.dossier.returned.v1"),
        (b"HS-GOLDEN-COPY-1", "vn.gov.dossier.progressed.v1"),
    ]


async def test_mixed_versions(stack: Stack) -> None:
    # Intake is not under replay: every intake.events record is published as it was, v1 and v2.
    async with replayed(stack, "mixed_versions", CONSUMERS) as run:
        assert (run.report.published, run.report.reenacted, run.report.regenerated) == (4, 0, 0)

        assert await run.rows(
            "SELECT dossier_id, kind, subject FROM notification.notices ORDER BY dossier_id, kind"
        ) == [
            {
                "dossier_id": "HS-GOLDEN-COPY-1",
                "kind": "receipt",
                "subject": "Giấy tiếp nhận hồ sơ HS-GOLDEN-COPY-1",
            },
            {"dossier_id": "HS-GOLDEN-COPY-1", "kind": "result", "subject": "Kết quả hồ sơ HS-GOLDEN-COPY-1"},
            {
                "dossier_id": "HS-GOLDEN-V1-1",
                "kind": "receipt",
                "subject": "Giấy tiếp nhận hồ sơ HS-GOLDEN-V1-1",
            },
        ]
        # The console keeps dossiers from the desk's snapshots (dossier.progressed); a receipt
        # alone, as the v1 dossier has, does not make a console dossier.
        assert await run.rows(CONSOLE_DOSSIERS) == [
            {
                "id": "HS-GOLDEN-COPY-1",
                "status": "returned",
                "on_time": True,
                "appointment_at": "2026-03-10T09:00:00+07:00",
                "original_appointment_at": None,
                "returned_at": "2026-03-09T09:00:00+07:00",
            }
        ]

        letters = run.letters()
        assert [(m.to, m.subject, m.attachments) for m in letters] == [
            ("Nguyễn Văn An 9105 <an9105@example.vn>", "Giấy tiếp nhận hồ sơ HS-GOLDEN-V1-1", ()),
            ("Nguyễn Văn An 9104 <an9104@example.vn>", "Giấy tiếp nhận hồ sơ HS-GOLDEN-COPY-1", ()),
            (
                "Nguyễn Văn An 9104 <an9104@example.vn>",
                "Kết quả hồ sơ HS-GOLDEN-COPY-1",
                ("thong-bao-ket-qua-HS-GOLDEN-COPY-1.pdf",),
            ),
        ]
        old_receipt, new_receipt, result = letters
        # Upcast from v1: document codes only, and one fee total without its name.
        assert old_receipt.section("1. Thành phần hồ sơ:", 6) == [
            "1. Thành phần hồ sơ:",
            "   1. REGISTRATION_FORM",
            "   2. TRANSFER_CONTRACT",
            "   3. LAND_CERTIFICATE",
            "   4. REGISTRATION_FEE_DECLARATION",
            "   5. PIT_DECLARATION",
        ]
        assert "   - Phí, lệ phí: 500.000 đồng" in old_receipt.lines
        assert (
            "5. Thời gian trả kết quả giải quyết hồ sơ: 08 giờ 00 phút, ngày 19/03/2026" in old_receipt.lines
        )
        # v2: each document by name, each fee on its own line (2,000 đồng a page, 4 pages).
        assert new_receipt.section("1. Thành phần hồ sơ:", 3) == [
            "1. Thành phần hồ sơ:",
            "   1. Bản chính giấy tờ, văn bản làm cơ sở để chứng thực",
            "   2. Bản sao cần chứng thực",
        ]
        assert "   - Phí chứng thực bản sao từ bản chính: 8.000 đồng" in new_receipt.lines
        assert (
            "5. Thời gian trả kết quả giải quyết hồ sơ: 09 giờ 00 phút, ngày 10/03/2026" in new_receipt.lines
        )
        assert (
            "Thời gian trả kết quả: 09 giờ 00 phút, ngày 09/03/2026"
            " (đúng hẹn; ngày hẹn 09 giờ 00 phút, ngày 10/03/2026)" in result.lines
        )
