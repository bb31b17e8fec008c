"""Faults in handling (sai sót) that owe the citizen an apology, each with the rule behind it.

Lateness has its own rule (:mod:`services.intake.domain.dossier`). These are the faults the
desk can see for itself in a dossier's history. Provinces wrote the practice down; the sources
read for each rule are named in ``authority``, which the letter quotes:

- Bắc Kạn, Quyết định 11/2020/QĐ-UBND, Điều 3 khoản 2: a civil servant who does not list
  everything missing in one supplement request, so that the citizen must come back twice or
  more, apologises publicly (https://ict.backan.gov.vn, "Các hành vi phải công khai xin lỗi…").
- Tân An (the seed's city), Quyết định 1198/QĐ-UBND of 28/4/2022: an apology for each fault
  or overrun; the agency at fault signs it (la34.com.vn, 05/05/2022).
- Quảng Nam, Quyết định 3200/QĐ-UBND of 7/10/2019: in an interconnected procedure the agency
  at fault sends its letter through the one-stop desk that received the dossier.
- Quảng Bình 15/2018/QĐ-UBND and Đồng Tháp 585/QĐ-UBND-HC (2015) set the same practice
  ("công khai xin lỗi … sai sót, quá hạn"); their texts were not available to quote here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from contracts.events import FaultKind


@dataclass(frozen=True)
class FaultRule:
    """What the letter says went wrong, and on whose authority it is a fault."""

    reason: str
    authority: str


FAULT_RULES: Final[dict[FaultKind, FaultRule]] = {
    "repeat_supplement_request": FaultRule(
        reason="Hồ sơ đã được yêu cầu bổ sung, hoàn thiện một lần nhưng {agency} lại yêu cầu"
        " bổ sung lần nữa ({detail}); lẽ ra mọi nội dung cần bổ sung phải được hướng dẫn"
        " một lần, đầy đủ, để ông/bà không phải đi lại nhiều lần",
        authority="Quyết định 11/2020/QĐ-UBND tỉnh Bắc Kạn, Điều 3 khoản 2;"
        " Quyết định 1198/QĐ-UBND ngày 28/4/2022 của UBND thành phố Tân An",
    ),
}
"""Every fault the desk detects, by the kind the letter's event carries."""


def fault_key(kind: FaultKind, agency: str) -> str:
    """The identity of a fault on a dossier: a second identical fault owes no second letter."""
    return f"{kind}:{agency}"
