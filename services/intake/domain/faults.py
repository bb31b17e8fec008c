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
- Nghị định 61/2018/NĐ-CP, Điều 21: an error in a result is corrected by the agency at fault at
  its cost (khoản 1); whoever lost, mislaid or damaged a dossier's documents bears the cost of
  replacing them and apologises (khoản 2) (hethongphapluat.vn, "Điều 21 Nghị định 61/2018").
- A provincial rule on public apologies summarised by nongthonmoi.net (article 22944) lists,
  among the faults owed an apology, asking for papers outside the procedure's published list
  (item 7) and losing or damaging a dossier received (item 8); the province is not named in
  the text that could be read, so the letter quotes Nghị định 61/2018 and Tân An instead.
- Quảng Bình 15/2018/QĐ-UBND and Đồng Tháp 585/QĐ-UBND-HC (2015) set the same practice
  ("công khai xin lỗi … sai sót, quá hạn"); only their preambles could be read here.

Who reports each fault: the desk sees a repeated supplement request for itself; the agency that
lost or damaged a document reports it (``dossier.document_loss_reported``); the desk records the
others for the agency at fault (``POST /dossiers/{id}/faults``): a paper asked for that the
procedure does not list (the requests are free text, so a person decides), a result corrected
after it was issued, or a loss the agency reported by other means.
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
    "unlisted_document_requested": FaultRule(
        reason="{agency} đã yêu cầu ông/bà nộp giấy tờ không có trong thành phần hồ sơ của thủ tục"
        " đã được công bố ({detail})",
        authority="Quyết định 1198/QĐ-UBND ngày 28/4/2022 của UBND thành phố Tân An;"
        " thành phần hồ sơ theo danh mục thủ tục hành chính đã công bố",
    ),
    "document_lost": FaultRule(
        reason="{agency} đã để mất, thất lạc hoặc hư hỏng giấy tờ trong hồ sơ của ông/bà ({detail});"
        " cơ quan chịu mọi chi phí cấp lại",
        authority="Nghị định 61/2018/NĐ-CP, Điều 21 khoản 2;"
        " Quyết định 1198/QĐ-UBND ngày 28/4/2022 của UBND thành phố Tân An",
    ),
    "result_corrected": FaultRule(
        reason="Kết quả giải quyết do {agency} ban hành có sai sót và đã được đính chính ({detail});"
        " cơ quan chịu mọi chi phí đính chính",
        authority="Nghị định 61/2018/NĐ-CP, Điều 21 khoản 1;"
        " Quyết định 1198/QĐ-UBND ngày 28/4/2022 của UBND thành phố Tân An",
    ),
}
"""Every fault owed a letter, by the kind the letter's event carries."""


DESK_RECORDED: Final[frozenset[FaultKind]] = frozenset(
    {"unlisted_document_requested", "document_lost", "result_corrected"}
)
"""Faults the desk records for the agency at fault (the repeated request it detects itself)."""


def fault_key(kind: FaultKind, agency: str, subject: str = "") -> str:
    """The identity of a fault on a dossier: a second identical fault owes no second letter.

    A repeated supplement request is one fault per agency whatever it asked; the others are
    told apart by ``subject`` (the documents lost, the paper asked for, the correction made).
    """
    return f"{kind}:{agency}" if not subject else f"{kind}:{agency}:{subject}"
