"""What reaches the citizen, rendered in Vietnamese as the official forms lay it out.

Layouts follow the forms of Circular 01/2018/TT-VPCP (kept by Circular 03/2025/TT-VPCP):
the receipt and appointment slip (Mẫu 01), the supplement request (Mẫu 02), the apology and
rescheduling letter, and the result notice; the tax payment notice follows the tax
authority's notice. Plain Python: an event in, a rendered notice out. The letters (supplement
request, apologies, the result notice or refusal) are also rendered as PDF
(:mod:`services.notification.domain.letters`) and travel as attachments, each naming the agency
that issues it: the service signs it with that agency's certificate before keeping it
(:mod:`services.notification.document_signing`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from contracts.agencies import ONE_STOP
from contracts.events import (
    ApologyIssued,
    Applicant,
    DossierEvent,
    DossierReceived,
    DossierReturned,
    DossierWithdrawn,
    FaultApologyIssued,
    PaymentNoticeIssued,
    SupplementRequested,
)
from services.notification.domain.letters import Letter, as_pdf, as_text, nfc
from services.runtime.working_days import VIETNAM_TZ

DEFAULT_PLACE = "Tân An"
"""Where letters are dated ("Tân An, ngày …"); ``LETTER_PLACE`` overrides it."""

DEFAULT_DESK_NAME = "Bộ phận Tiếp nhận và Trả kết quả"
"""The desk as the law names it; the service prints the catalog's name for ``one_stop`` instead."""

RESULT_LABELS = {
    "certificate_serial": "Số phát hành Giấy chứng nhận",
    "holder": "Người được cấp",
    "parcel_ref": "Thửa đất",
    "notice_number": "Thông báo nộp tiền",
}
"""Result fields a citizen needs to see, with their labels; internal figures stay out."""


@dataclass(frozen=True)
class Attachment:
    """A document sent along with a notice (the PDF of a letter)."""

    filename: str
    content_type: str
    data: bytes
    signed_by: str | None = None
    """The issuing agency (``tax``) of a letter: the service signs the PDF with its certificate
    before keeping it. None for what is read back from the store (signed already)."""


@dataclass(frozen=True)
class Notice:
    """A rendered notice addressed to one citizen."""

    kind: str
    dossier_id: str
    recipient: Applicant
    subject: str
    body: str
    sms: str
    """The same news in one short message, for the SMS channel."""
    attachment: Attachment | None = None


def vnd(amount: int) -> str:
    """Money as Vietnamese documents print it: 1.234.567 đồng."""
    return f"{amount:,}".replace(",", ".") + " đồng"


def when(moment: datetime) -> str:
    """A moment as the forms print it, in Vietnam time: 14 giờ 30 phút, ngày 12/02/2026."""
    local = moment.astimezone(VIETNAM_TZ)
    return f"{local:%H} giờ {local:%M} phút, ngày {local:%d/%m/%Y}"


def day(moment: datetime) -> str:
    """A date in Vietnam time: 12/02/2026."""
    return f"{moment.astimezone(VIETNAM_TZ):%d/%m/%Y}"


def render(
    event: DossierEvent, *, place: str = DEFAULT_PLACE, issuers: Mapping[str, str] | None = None
) -> Notice | None:
    """The notice an event calls for, or None when it concerns no citizen.

    ``issuers`` names agencies as their letters print them (the catalog's names), for letters
    whose event names only the agency: the result, issued by the desk or the refusing agency.
    """
    if isinstance(event, DossierReceived):
        return _receipt(event)
    if isinstance(event, PaymentNoticeIssued):
        return _payment_notice(event)
    if isinstance(event, DossierReturned):
        return _result(event, place, issuers or {})
    if isinstance(event, SupplementRequested):
        return _supplement_request(event, place)
    if isinstance(event, ApologyIssued):
        return _apology(event, place)
    if isinstance(event, FaultApologyIssued):
        return _fault_apology(event, place)
    if isinstance(event, DossierWithdrawn):
        return _withdrawal_receipt(event)
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
    if e.lookup_code:
        body += f"8. Mã tra cứu hồ sơ: {e.lookup_code} (tra cứu tình trạng hồ sơ cùng mã hồ sơ)\n"
    sms = f"Hồ sơ {e.dossier_id} đã được tiếp nhận; hẹn trả kết quả {when(e.appointment_at)}."
    if e.lookup_code:
        sms += f" Mã tra cứu: {e.lookup_code}."
    return Notice("receipt", e.dossier_id, e.applicant, f"Giấy tiếp nhận hồ sơ {e.dossier_id}", body, sms)


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
    sms = (
        f"Thông báo nộp tiền {e.notice_number}, hồ sơ {e.dossier_id}: {vnd(e.total_vnd)},"
        f" hạn nộp {day(e.pay_by)}."
    )
    subject = f"Thông báo nộp tiền {e.notice_number}"
    return Notice("tax_notice", e.dossier_id, e.applicant, subject, body, sms)


def _result(e: DossierReturned, place: str, issuers: Mapping[str, str]) -> Notice:
    """Thông báo kết quả; when refused, the refusal (thông báo từ chối giải quyết) with the reason."""
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
Mời Ông/Bà đánh giá mức độ hài lòng về việc giải quyết hồ sơ (năm tiêu chí, điểm 1 đến 5) tại
Bộ phận Một cửa hoặc trên Cổng dịch vụ công, với mã hồ sơ và mã tra cứu in trên Giấy tiếp nhận.
"""
    sms = f"Hồ sơ {e.dossier_id} {outcome.lower()}; mời Ông/Bà nhận kết quả tại Bộ phận Một cửa."
    # The desk returns every result and issues it; a refusal is issued and signed by the agency
    # that refused (the desk, or an agency on its step).
    refused = e.outcome == "rejected"
    signer = e.refused_by or ONE_STOP
    letter = Letter(
        issuer=issuers.get(signer, DEFAULT_DESK_NAME if signer == ONE_STOP else signer),
        number=None,
        place=place,
        issued_at=e.returned_at,
        title="THÔNG BÁO TỪ CHỐI GIẢI QUYẾT HỒ SƠ" if refused else "THÔNG BÁO KẾT QUẢ GIẢI QUYẾT HỒ SƠ",
        addressee=f"Kính gửi: Ông/Bà {e.applicant.full_name}",
        paragraphs=(
            f"Mã hồ sơ: {e.dossier_id}",
            f"Hồ sơ đề nghị giải quyết thủ tục hành chính: {e.procedure_name} của Ông/Bà {outcome.lower()}.",
            f"Lý do từ chối: {_sentence(e.summary)}." if refused else e.summary,
            f"Thời gian trả kết quả: {when(e.returned_at)} ({timing}; ngày hẹn {when(e.appointment_at)}).",
            *(f"   {label}: {e.result[key]}" for key, label in RESULT_LABELS.items() if key in e.result),
        ),
        signatory="Người trả kết quả",
        signature_note="(Ký và ghi rõ họ tên)",
    )
    stem = "thong-bao-tu-choi" if refused else "thong-bao-ket-qua"
    return Notice(
        kind="result",
        dossier_id=e.dossier_id,
        recipient=e.applicant,
        subject=f"Kết quả hồ sơ {e.dossier_id}",
        body=body,
        sms=sms,
        attachment=Attachment(_filename(stem, e.dossier_id), "application/pdf", as_pdf(letter), signer),
    )


def _supplement_request(e: SupplementRequested, place: str) -> Notice:
    """Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ (Mẫu 02)."""
    documents = [f"   {i}. {name}" for i, name in enumerate(e.missing_documents, start=1)]
    letter = Letter(
        issuer=e.requested_by_name,
        number=None,
        place=place,
        issued_at=e.requested_at,
        title="PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ",
        addressee=None,
        paragraphs=(
            f"Hồ sơ của: Ông/Bà {e.applicant.full_name}",
            f"Mã hồ sơ: {e.dossier_id}",
            f"Nội dung yêu cầu giải quyết: {e.procedure_name}",
            f"Số điện thoại: {e.applicant.phone}    Thư điện tử: {e.applicant.email}",
            "Yêu cầu Ông/Bà hoàn thiện hồ sơ gồm những nội dung sau:",
            *documents,
            f"Lý do: {_sentence(e.reason)}.",
            f"Thời hạn giải quyết hồ sơ tạm dừng từ {when(e.requested_at)} và được tính lại từ đầu"
            " khi Ông/Bà nộp đủ hồ sơ đã bổ sung, hoàn thiện.",
            f"Trong quá trình hoàn thiện hồ sơ, nếu có vướng mắc, Ông/Bà liên hệ {e.requested_by_name}"
            " để được hướng dẫn./.",
        ),
        signatory="Người hướng dẫn",
        signature_note="(Ký và ghi rõ họ tên)",
    )
    missing = "; ".join(e.missing_documents)
    return Notice(
        kind="supplement_request",
        dossier_id=e.dossier_id,
        recipient=e.applicant,
        subject=f"Yêu cầu bổ sung, hoàn thiện hồ sơ {e.dossier_id}",
        body=as_text(letter),
        sms=nfc(f"Hồ sơ {e.dossier_id} cần bổ sung: {missing}. Phiếu yêu cầu đã gửi qua thư điện tử."),
        attachment=Attachment(
            _filename("phieu-yeu-cau-bo-sung", e.dossier_id),
            "application/pdf",
            as_pdf(letter),
            signed_by=e.requested_by_agency,
        ),
    )


def _letter_of_apology(
    e: ApologyIssued | FaultApologyIssued, place: str, title: str, body: tuple[str, ...]
) -> Letter:
    """An apology on the agency's letterhead, signed by its head: the dossier, then ``body``."""
    return Letter(
        issuer=e.issuer_name,
        number=e.letter_number,
        place=place,
        issued_at=e.issued_at,
        title=title,
        addressee=f"Kính gửi: Ông/Bà {e.applicant.full_name}",
        paragraphs=(
            f"Ngày {day(e.received_at)}, Bộ phận Tiếp nhận và Trả kết quả tiếp nhận hồ sơ của Ông/Bà"
            f" đề nghị giải quyết thủ tục hành chính: {e.procedure_name}.",
            f"Mã hồ sơ: {e.dossier_id}",
            *body,
        ),
        signatory=e.signatory_title,
        signature_note="(Ký, ghi rõ họ tên và đóng dấu)",
    )


def _apology(e: ApologyIssued, place: str) -> Notice:
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả, signed by the head of the agency at fault."""
    letter = _letter_of_apology(
        e,
        place,
        "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ",
        (
            f"Thời hẹn trả kết quả giải quyết hồ sơ: {when(e.original_appointment_at)}.",
            f"Tuy nhiên đến nay, {e.issuer_name} chưa trả kết quả giải quyết hồ sơ của Ông/Bà,"
            f" lý do: {_sentence(e.reason)}.",
            f"{e.issuer_name} xin lỗi Ông/Bà và sẽ trả kết quả giải quyết hồ sơ cho Ông/Bà"
            f" vào {when(e.new_appointment_at)}.",
            "Mong nhận được sự thông cảm của Ông/Bà vì sự chậm trễ này./.",
        ),
    )
    return Notice(
        kind="apology",
        dossier_id=e.dossier_id,
        recipient=e.applicant,
        subject=f"Phiếu xin lỗi và hẹn lại ngày trả kết quả, hồ sơ {e.dossier_id}",
        body=as_text(letter),
        sms=nfc(
            f"{e.issuer_name} xin lỗi Ông/Bà vì hồ sơ {e.dossier_id} trễ hẹn."
            f" Hẹn trả kết quả mới: {when(e.new_appointment_at)}."
        ),
        attachment=Attachment(
            _filename("phieu-xin-loi", e.dossier_id),
            "application/pdf",
            as_pdf(letter),
            signed_by=e.issued_by_agency,
        ),
    )


def _fault_apology(e: FaultApologyIssued, place: str) -> Notice:
    """Thư xin lỗi for faulty handling, signed by the head of the agency at fault; no new date."""
    letter = _letter_of_apology(
        e,
        place,
        "THƯ XIN LỖI",
        (
            f"Trong quá trình giải quyết, {e.issuer_name} đã để xảy ra sai sót: {_sentence(e.reason)}.",
            f"{e.issuer_name} thành thật xin lỗi Ông/Bà về sai sót này. Sai sót này không làm"
            " thay đổi thời hạn giải quyết hồ sơ của Ông/Bà theo quy định.",
            f"Căn cứ: {_sentence(e.authority)}./.",
        ),
    )
    return Notice(
        kind="fault_apology",
        dossier_id=e.dossier_id,
        recipient=e.applicant,
        subject=f"Thư xin lỗi, hồ sơ {e.dossier_id}",
        body=as_text(letter),
        sms=nfc(f"{e.issuer_name} xin lỗi Ông/Bà vì sai sót khi giải quyết hồ sơ {e.dossier_id}."),
        attachment=Attachment(
            _filename("thu-xin-loi", e.dossier_id),
            "application/pdf",
            as_pdf(letter),
            signed_by=e.issued_by_agency,
        ),
    )


def _withdrawal_receipt(e: DossierWithdrawn) -> Notice:
    by = (
        "theo đề nghị của Ông/Bà"
        if e.requested_by == "citizen"
        else "theo đề nghị của Ông/Bà tại Bộ phận Một cửa"
    )
    body = f"""XÁC NHẬN RÚT HỒ SƠ
Mã hồ sơ: {e.dossier_id}

Kính gửi: Ông/Bà {e.applicant.full_name}
Hồ sơ "{e.procedure_name}" tiếp nhận ngày {day(e.received_at)} đã được rút {by}
vào {when(e.withdrawn_at)}. Lý do: {_sentence(e.reason)}.
Các cơ quan đã dừng giải quyết hồ sơ; các thông báo chưa gửi về hồ sơ này được hủy.
Mời Ông/Bà nhận lại giấy tờ đã nộp tại Bộ phận Một cửa.
"""
    sms = (
        f"Hồ sơ {e.dossier_id} đã được rút vào {when(e.withdrawn_at)};"
        " mời nhận lại giấy tờ tại Bộ phận Một cửa."
    )
    return Notice("withdrawal", e.dossier_id, e.applicant, f"Xác nhận rút hồ sơ {e.dossier_id}", body, sms)


def _sentence(text: str) -> str:
    """A clause to embed in a sentence: no trailing full stop of its own."""
    return text.strip().rstrip(".")


def _filename(stem: str, dossier_id: str) -> str:
    return f"{stem}-{re.sub(r'[^A-Za-z0-9_-]+', '_', dossier_id)}.pdf"
