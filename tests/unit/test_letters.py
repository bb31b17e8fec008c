"""The letters a citizen receives: every field of the form, in Vietnamese, as text and as PDF."""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pypdf import PdfReader

from contracts.events import ApologyIssued, Applicant, SupplementRequested
from services.notification.domain.letters import Letter, as_pdf, as_text
from services.notification.domain.notices import Notice, render

APPLICANT = Applicant(
    full_name="Nguyễn Văn An", id_number="079088001234", phone="0912345678", email="an@example.vn"
)


def apology(**changes: Any) -> ApologyIssued:
    fields: dict[str, Any] = {
        "dossier_id": "HS-260302-000123",
        "letter_number": "PXL-2026-000007",
        "issued_by_agency": "tax",
        "issuer_name": "Chi cục Thuế thành phố Tân An",
        "signatory_title": "Chi cục trưởng",
        "applicant": APPLICANT,
        "procedure_name": "Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
        "received_at": datetime(2026, 3, 2, 2, 0, tzinfo=UTC),  # 09:00 in Vietnam
        "original_appointment_at": datetime(2026, 3, 12, 10, 0, tzinfo=UTC),
        "new_appointment_at": datetime(2026, 3, 17, 10, 0, tzinfo=UTC),
        "reason": "Cần xác minh giá đất với Sở Tài chính.",
        "issued_at": datetime(2026, 3, 10, 18, 0, tzinfo=UTC),  # already 11/03 in Vietnam
        "working_days_notice": Decimal(1),
    }
    return ApologyIssued(**(fields | changes))


def supplement() -> SupplementRequested:
    return SupplementRequested(
        dossier_id="HS-260302-000124",
        requested_by_agency="land_registry",
        requested_by_name="Văn phòng Đăng ký đất đai - Chi nhánh thành phố Tân An",
        applicant=APPLICANT,
        procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
        missing_documents=["Hợp đồng chuyển nhượng có công chứng", "Tờ khai lệ phí trước bạ"],
        reason="Hợp đồng chưa được công chứng",
        requested_at=datetime(2026, 3, 4, 2, 0, tzinfo=UTC),
    )


def rendered(event: ApologyIssued | SupplementRequested) -> Notice:
    notice = render(event)
    assert notice is not None
    return notice


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    # Extraction may split words over lines and decompose letters: compare normalised text.
    return " ".join(unicodedata.normalize("NFC", text).split())


def test_apology_letter_text_carries_every_field_of_the_form() -> None:
    notice = rendered(apology())
    assert notice.kind == "apology"
    assert notice.dossier_id == "HS-260302-000123"
    assert notice.recipient == APPLICANT
    lines = [line.strip() for line in notice.body.splitlines()]
    body = notice.body
    # Header: the agency at fault and the letter's number on the left, motto on the right.
    assert lines[0].startswith("CHI CỤC THUẾ THÀNH PHỐ TÂN AN")
    assert lines[0].endswith("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM")
    assert lines[1].startswith("Số: PXL-2026-000007")
    assert lines[1].endswith("Độc lập - Tự do - Hạnh phúc")
    assert "Tân An, ngày 11 tháng 03 năm 2026" in lines[2]  # the date is Vietnam's date
    assert "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ" in lines
    assert "Kính gửi: Ông/Bà Nguyễn Văn An" in lines
    assert "Ngày 02/03/2026, Bộ phận Tiếp nhận và Trả kết quả tiếp nhận hồ sơ" in body
    assert "thủ tục hành chính: Đăng ký biến động quyền sử dụng đất do chuyển nhượng." in body
    assert "Mã hồ sơ: HS-260302-000123" in lines
    assert "Thời hẹn trả kết quả giải quyết hồ sơ: 17 giờ 00 phút, ngày 12/03/2026." in lines
    assert (
        "Tuy nhiên đến nay, Chi cục Thuế thành phố Tân An chưa trả kết quả giải quyết hồ sơ của Ông/Bà,"
        " lý do: Cần xác minh giá đất với Sở Tài chính." in lines
    )
    assert (
        "Chi cục Thuế thành phố Tân An xin lỗi Ông/Bà và sẽ trả kết quả giải quyết hồ sơ cho Ông/Bà"
        " vào 17 giờ 00 phút, ngày 17/03/2026." in lines
    )
    assert "Mong nhận được sự thông cảm của Ông/Bà vì sự chậm trễ này./." in lines
    assert lines[-2:] == ["CHI CỤC TRƯỞNG", "(Ký, ghi rõ họ tên và đóng dấu)"]
    assert body == unicodedata.normalize("NFC", body)
    assert "HS-260302-000123" in notice.subject
    assert "17/03/2026" in notice.sms


def test_apology_letter_is_a_pdf_with_the_vietnamese_text_and_an_embedded_font() -> None:
    notice = rendered(apology())
    assert notice.attachment is not None
    assert notice.attachment.content_type == "application/pdf"
    assert notice.attachment.filename == "phieu-xin-loi-HS-260302-000123.pdf"
    data = notice.attachment.data
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    for expected in (
        "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Số: PXL-2026-000007",
        "Kính gửi: Ông/Bà Nguyễn Văn An",
        "HS-260302-000123",
        "lý do: Cần xác minh giá đất với Sở Tài chính",
        "vào 17 giờ 00 phút, ngày 17/03/2026",
        "CHI CỤC TRƯỞNG",
    ):
        assert expected in text, expected
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata is not None
    assert reader.metadata.title == "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ"
    # Every font that prints text is embedded (no reliance on the reader's fonts).
    resources: Any = reader.pages[0]["/Resources"]
    fonts = resources["/Font"]
    embedded = []
    for ref in fonts.values():
        font = ref.get_object()
        if font["/Subtype"] == "/Type0":
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
        elif "/FontDescriptor" in font:
            descriptor = font["/FontDescriptor"]
        else:
            continue  # a standard font reportlab declares but no text uses
        embedded.append("/FontFile2" in descriptor.get_object())
    assert embedded
    assert all(embedded)


def test_the_same_letter_gives_the_same_pdf() -> None:
    # What was sent can be rendered again byte for byte (no clock, no random id inside).
    first, second = rendered(apology()).attachment, rendered(apology()).attachment
    assert first is not None
    assert second is not None
    assert first.data == second.data
    changed = rendered(apology(new_appointment_at=datetime(2026, 3, 18, 10, 0, tzinfo=UTC))).attachment
    assert changed is not None
    assert changed.data != first.data


def test_supplement_request_lists_what_is_missing_and_why() -> None:
    notice = rendered(supplement())
    assert notice.kind == "supplement_request"
    lines = [line.strip() for line in notice.body.splitlines()]
    assert "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ" in lines
    header = " ".join(notice.body.split("PHIẾU")[0].split())  # the agency's name wraps on two lines
    assert "VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI - CHI" in header
    assert "NHÁNH THÀNH PHỐ TÂN AN" in header
    assert "Tân An, ngày 04 tháng 03 năm 2026" in notice.body
    for expected in (
        "Hồ sơ của: Ông/Bà Nguyễn Văn An",
        "Mã hồ sơ: HS-260302-000124",
        "Nội dung yêu cầu giải quyết: Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
        "Yêu cầu Ông/Bà hoàn thiện hồ sơ gồm những nội dung sau:",
        "1. Hợp đồng chuyển nhượng có công chứng",
        "2. Tờ khai lệ phí trước bạ",
        "Lý do: Hợp đồng chưa được công chứng.",
        "NGƯỜI HƯỚNG DẪN",
    ):
        assert expected in lines, expected
    assert "được tính lại từ đầu" in notice.body  # the clock restarts in full after the supplement
    assert "Văn phòng Đăng ký đất đai - Chi nhánh thành phố Tân An để được hướng dẫn" in notice.body
    assert notice.attachment is not None
    text = pdf_text(notice.attachment.data)
    assert "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ" in text
    assert "Tờ khai lệ phí trước bạ" in text
    assert "Tờ khai lệ phí trước bạ" in notice.sms


@pytest.mark.parametrize("place", ["Tân An", "Thành phố Hồ Chí Minh"])
def test_letters_are_dated_at_the_configured_place(place: str) -> None:
    notice = render(apology(), place=place)
    assert notice is not None
    assert f"{place}, ngày 11 tháng 03 năm 2026" in notice.body


def test_a_long_agency_name_wraps_in_the_header_without_losing_words() -> None:
    letter = Letter(
        issuer="Văn phòng Đăng ký đất đai tỉnh Long An - Chi nhánh thành phố Tân An",
        number="12/PXL",
        place="Tân An",
        issued_at=datetime(2026, 3, 4, 2, 0, tzinfo=UTC),
        title="PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ",
        addressee=None,
        paragraphs=("Nội dung.",),
        signatory="Giám đốc",
    )
    text = as_text(letter)
    header = " ".join(text.split("PHIẾU")[0].split())
    assert "VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI TỈNH LONG" in header
    assert "AN - CHI NHÁNH THÀNH PHỐ TÂN AN" in header
    assert "Số: 12/PXL" in header
    assert max(len(line) for line in text.splitlines()) <= 78
    assert "VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI TỈNH LONG AN - CHI NHÁNH THÀNH PHỐ TÂN AN" in pdf_text(as_pdf(letter))
