"""Vietnamese labels for the codes the events carry; an unknown code is shown as it is.

Agencies are open-ended (a new one plugs in through the catalog), so a missing label is
normal, not an error: the page shows the machine name until one is added here.
"""

from __future__ import annotations

from typing import Final

STATUSES: Final = {
    "received": "Đã tiếp nhận",
    "processing": "Đang xử lý",
    "awaiting_supplement": "Chờ bổ sung",
    "awaiting_payment": "Chờ thực hiện nghĩa vụ tài chính",
    "done": "Đã giải quyết",
    "returned": "Đã trả kết quả",
    "rejected": "Từ chối",
    "withdrawn": "Đã rút",
}

AGENCIES: Final = {
    "one_stop": "Bộ phận Một cửa",
    "land_registry": "Văn phòng Đăng ký đất đai",
    "tax": "Chi cục Thuế",
    "citizen": "Công dân",
}

LEVELS: Final = {"city": "Cấp thành phố", "ward": "Cấp phường, xã"}

ACTIONS: Final = {
    "receive": "Tiếp nhận hồ sơ",
    "appraise": "Thẩm định hồ sơ",
    "assess": "Xác định nghĩa vụ tài chính",
    "pay": "Nộp nghĩa vụ tài chính",
    "receive_payment_proof": "Nhận chứng từ nộp tiền",
    "issue_certificate": "Cấp Giấy chứng nhận",
    "return_result": "Trả kết quả",
}

LATENESS: Final = {
    "on_time": "Đúng hạn",
    "late": "Trễ hạn",
    "overdue": "Quá hạn",
    "in_time": "Trong hạn",
}


def status(code: str) -> str:
    """A dossier status as one-stop portals print it."""
    return STATUSES.get(code, code)


def agency(code: str) -> str:
    """An agency's short name."""
    return AGENCIES.get(code, code)


def level(code: str) -> str:
    """City or ward level."""
    return LEVELS.get(code, code)


def action(code: str) -> str:
    """A step of a route."""
    return ACTIONS.get(code, code)


def lateness(code: str) -> str:
    """On time, late, overdue, in time."""
    return LATENESS.get(code, code)
