"""What reaches the citizen, rendered in Vietnamese as the official forms lay it out.

Layouts follow the forms of Circular 01/2018/TT-VPCP (kept by Circular 03/2025/TT-VPCP):
the receipt and appointment slip (Mẫu 01) and the result notice; the tax payment notice
follows the tax authority's notice. Plain Python: an event in, a rendered notice out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from contracts.events import (
    Applicant,
    DossierEvent,
    DossierReceived,
    DossierReturned,
    PaymentNoticeIssued,
)

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

RESULT_LABELS = {
    "certificate_serial": "Số phát hành Giấy chứng nhận",
    "holder": "Người được cấp",
    "parcel_ref": "Thửa đất",
    "notice_number": "Thông báo nộp tiền",
}
"""Result fields a citizen needs to see, with their labels; internal figures stay out."""


@dataclass(frozen=True)
class Notice:
    """A rendered notice addressed to one citizen."""

    kind: str
    dossier_id: str
    recipient: Applicant
    subject: str
    body: str


def vnd(amount: int) -> str:
    """Money as Vietnamese documents print it: 1.234.567 đồng."""
    return f"{amount:,}".replace(",", ".") + " đồng"


def when(moment: datetime) -> str:
    """A moment as the forms print it, in Vietnam time: 14 giờ 30 phút, ngày 12/02/2026."""
    local = moment.astimezone(LOCAL_TZ)
    return f"{local:%H} giờ {local:%M} phút, ngày {local:%d/%m/%Y}"


def render(event: DossierEvent) -> Notice | None:
    """The notice an event calls for, or None when it concerns no citizen."""
    if isinstance(event, DossierReceived):
        return _receipt(event)
    if isinstance(event, PaymentNoticeIssued):
        return _payment_notice(event)
    if isinstance(event, DossierReturned):
        return _result(event)
    return None


def _receipt(e: DossierReceived) -> Notice:
    documents = "\n".join(f"   {i}. {d.name}" for i, d in enumerate(e.documents, start=1))
    fees = "\n".join(f"   - {fee.name}: {vnd(fee.amount_vnd)}" for fee in e.fees) or "   (không thu)"
    body = f"""GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ
Mã hồ sơ: {e.dossier_id}

Bộ phận tiếp nhận và trả kết quả đã tiếp nhận hồ sơ của:
Ông/Bà: {e.applicant.full_name}
Số định danh cá nhân: {e.applicant.id_number}
Số điện thoại: {e.applicant.phone}    Thư điện tử: {e.applicant.email}

Nội dung yêu cầu giải quyết: {e.procedure_name}
1. Thành phần hồ sơ:
{documents}
2. Số lượng hồ sơ: 01 bộ
3. Thời gian giải quyết hồ sơ theo quy định: {e.statutory_limit_days.normalize()} ngày làm việc
4. Thời gian nhận hồ sơ: {when(e.received_at)}
5. Thời gian trả kết quả giải quyết hồ sơ: {when(e.appointment_at)}
6. Nhận kết quả tại: {e.return_place}
7. Phí, lệ phí:
{fees}
   Tổng cộng: {vnd(e.fees_total_vnd)}
"""
    return Notice("receipt", e.dossier_id, e.applicant, f"Giấy tiếp nhận hồ sơ {e.dossier_id}", body)


def _payment_notice(e: PaymentNoticeIssued) -> Notice:
    body = f"""THÔNG BÁO NỘP TIỀN
Số: {e.notice_number}    Mã hồ sơ: {e.dossier_id}

Kính gửi: Ông/Bà {e.applicant.full_name} (số định danh {e.applicant.id_number})

Căn cứ hồ sơ chuyển nhượng quyền sử dụng đất, cơ quan thuế thông báo số tiền phải nộp:
1. Giá trị tính thuế, lệ phí: {vnd(e.taxable_value_vnd)}
2. Lệ phí trước bạ (0,5%): {vnd(e.registration_fee_vnd)}
3. Thuế thu nhập cá nhân (2%): {vnd(e.personal_income_tax_vnd)}
Tổng số tiền phải nộp: {vnd(e.total_vnd)}

Ngày ra thông báo: {when(e.issued_at)}
Hạn nộp: {when(e.pay_by)}
Sau khi nộp, ông/bà nộp chứng từ tại Bộ phận Một cửa để được cấp Giấy chứng nhận.
Thời gian thực hiện nghĩa vụ tài chính không tính vào thời hạn giải quyết hồ sơ.
"""
    return Notice("tax_notice", e.dossier_id, e.applicant, f"Thông báo nộp tiền {e.notice_number}", body)


def _result(e: DossierReturned) -> Notice:
    outcome = "ĐÃ CÓ KẾT QUẢ" if e.outcome == "approved" else "KHÔNG ĐƯỢC GIẢI QUYẾT"
    timing = "đúng hẹn" if e.on_time else "trễ hẹn"
    details = "\n".join(
        f"- {label}: {e.result[key]}" for key, label in RESULT_LABELS.items() if key in e.result
    )
    body = f"""THÔNG BÁO KẾT QUẢ GIẢI QUYẾT HỒ SƠ
Mã hồ sơ: {e.dossier_id}

Kính gửi: Ông/Bà {e.applicant.full_name}
Hồ sơ "{e.procedure_name}" của ông/bà {outcome}.
{e.summary}
Thời gian trả kết quả: {when(e.returned_at)} ({timing}; ngày hẹn {when(e.appointment_at)})
{details}
"""
    return Notice("result", e.dossier_id, e.applicant, f"Kết quả hồ sơ {e.dossier_id}", body)
