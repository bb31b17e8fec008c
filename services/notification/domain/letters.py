"""Official letters as the forms of Circular 01/2018/TT-VPCP lay them out: plain text and PDF.

A :class:`Letter` holds what a form prints: the issuing agency with the letter's number
(top left), the national name and motto with the place and date (top right), the title, the
addressee, the body and the signatory's title. :func:`as_text` and :func:`as_pdf` turn the same
letter into the e-mail body and the printable attachment, so the two never disagree.

Pure: fields in, text or bytes out. The PDF embeds Noto Sans (SIL Open Font License) from the
``pymupdf-fonts`` package, which has every Vietnamese letter; no system font is used.
"""

from __future__ import annotations

import functools
import io
import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

import pymupdf_fonts  # type: ignore[import-untyped]
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, HRFlowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.runtime.working_days import VIETNAM_TZ

NATIONAL_NAME = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"

TEXT_WIDTH = 78
"""Width of the plain-text header (two columns: the agency, the national name)."""
_LEFT, _GAP = 36, 2

FONT = "NotoSans"
_BASE = ParagraphStyle("letter", fontName=FONT, fontSize=12, leading=16)
_FONT_FILES = {"": "notos", "-Bold": "notosbo", "-Italic": "notosit", "-BoldItalic": "notosbi"}
"""Noto Sans faces, by the keys ``pymupdf_fonts.fontbuffers`` knows them."""


@dataclass(frozen=True)
class Letter:
    """What a form prints, in reading order."""

    issuer: str
    """The issuing agency as it is named ("Chi cục Thuế thành phố Tân An"); printed in capitals."""
    number: str | None
    """The letter's number ("Số: …" under the agency), or None when the form has none."""
    place: str
    """Where it is issued ("Tân An"), before the date."""
    issued_at: datetime
    title: str
    addressee: str | None
    """The line under the title ("Kính gửi: Ông/Bà …"), or None."""
    paragraphs: tuple[str, ...]
    """The body; a paragraph starting with spaces is a list item (indented, not justified)."""
    signatory: str
    """Who signs, by title ("Chi cục trưởng"); printed in capitals."""
    signature_note: str = ""
    """The note under the title, e.g. "(Ký, ghi rõ họ tên và đóng dấu)"."""

    @property
    def dateline(self) -> str:
        """Place and date as the forms print them: "Tân An, ngày 05 tháng 03 năm 2026"."""
        day = self.issued_at.astimezone(VIETNAM_TZ)
        return f"{self.place}, ngày {day:%d} tháng {day:%m} năm {day:%Y}"


def nfc(text: str) -> str:
    """Vietnamese in composed form (one code point per letter), as documents and fonts expect."""
    return unicodedata.normalize("NFC", text)


def as_text(letter: Letter) -> str:
    """The letter as plain text (the e-mail body)."""
    left = _centred(textwrap.wrap(letter.issuer.upper(), _LEFT), _LEFT)
    if letter.number:
        left.append(_centred([f"Số: {letter.number}"], _LEFT)[0])
    right_width = TEXT_WIDTH - _LEFT - _GAP
    right = _centred([NATIONAL_NAME, MOTTO, letter.dateline], right_width)
    header = [
        (left[i] if i < len(left) else " " * _LEFT) + " " * _GAP + (right[i] if i < len(right) else "")
        for i in range(max(len(left), len(right)))
    ]
    lines = [line.rstrip() for line in header]
    lines += ["", letter.title.center(TEXT_WIDTH).rstrip(), ""]
    if letter.addressee:
        lines += [letter.addressee.center(TEXT_WIDTH).rstrip(), ""]
    lines += list(letter.paragraphs)
    signature = [letter.signatory.upper(), letter.signature_note]
    lines += [""] + [line.rstrip() for line in _centred(signature, right_width, indent=_LEFT + _GAP) if line]
    return nfc("\n".join(lines) + "\n")


def _centred(lines: list[str], width: int, *, indent: int = 0) -> list[str]:
    return [" " * indent + line.center(width) for line in lines]


def as_pdf(letter: Letter) -> bytes:
    """The letter as an A4 PDF with the font embedded; the same letter gives the same bytes."""
    _register_fonts()
    buffer = io.BytesIO()
    # Margins of Decree 30/2020/NĐ-CP for administrative documents: left 30, right 20, top/bottom 20.
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=30 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=nfc(letter.title),
        author=nfc(letter.issuer),
        subject=nfc(letter.title),
        creator="dossier-routing notification service",
        invariant=1,  # no creation time or random file id: reproducible output
        lang="vi-VN",
    )
    document.build(_flowables(letter, document.width))
    return buffer.getvalue()


@functools.cache
def _register_fonts() -> None:
    for suffix, key in _FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(FONT + suffix, io.BytesIO(pymupdf_fonts.fontbuffers[key]())))
    pdfmetrics.registerFontFamily(
        FONT, normal=FONT, bold=f"{FONT}-Bold", italic=f"{FONT}-Italic", boldItalic=f"{FONT}-BoldItalic"
    )


def _style(name: str, **overrides: Any) -> ParagraphStyle:
    return ParagraphStyle(name, parent=_BASE, **overrides)


def _para(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(nfc(text)), style)


def _flowables(letter: Letter, width: float) -> list[Flowable]:
    head = _style("head", fontName=f"{FONT}-Bold", fontSize=11.5, leading=15, alignment=TA_CENTER)
    centre = _style("centre", alignment=TA_CENTER)
    dateline = _style("dateline", fontName=f"{FONT}-Italic", alignment=TA_CENTER, spaceBefore=6)
    title = _style("title", fontName=f"{FONT}-Bold", fontSize=14, leading=18, alignment=TA_CENTER)
    body = _style("body", alignment=TA_JUSTIFY, firstLineIndent=10 * mm, spaceAfter=5)
    item = _style("item", leftIndent=10 * mm, spaceAfter=3)
    note = _style("note", fontName=f"{FONT}-Italic", fontSize=11, alignment=TA_CENTER)

    def rule(length: float) -> HRFlowable:
        return HRFlowable(width=length, thickness=0.6, color="black", spaceBefore=1, spaceAfter=3)

    issuer = _style("issuer", fontName=f"{FONT}-Bold", fontSize=11, leading=14, alignment=TA_CENTER)
    left: list[Flowable] = [_para(letter.issuer.upper(), issuer), rule(25 * mm)]
    if letter.number:
        left.append(_para(f"Số: {letter.number}", centre))
    right: list[Flowable] = [
        _para(NATIONAL_NAME, head),
        _para(MOTTO, _style("motto", fontName=f"{FONT}-Bold", alignment=TA_CENTER)),
        rule(45 * mm),
        _para(letter.dateline, dateline),
    ]
    header = Table([[left, right]], colWidths=[width * 0.45, width * 0.55])
    header.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("ALIGN", (0, 0), (-1, -1), "CENTER"),  # the short rules under the headings
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )

    flow: list[Flowable] = [header, Spacer(0, 10 * mm), _para(letter.title, title), Spacer(0, 6 * mm)]
    if letter.addressee:
        flow += [_para(letter.addressee, centre), Spacer(0, 5 * mm)]
    for paragraph in letter.paragraphs:
        if paragraph.startswith(" "):
            flow.append(_para(paragraph.strip(), item))
        else:
            flow.append(_para(paragraph, body))
    signature: list[Flowable] = [_para(letter.signatory.upper(), head)]
    if letter.signature_note:
        signature.append(_para(letter.signature_note, note))
    closing = Table([["", signature]], colWidths=[width * 0.45, width * 0.55])
    flow += [Spacer(0, 6 * mm), closing]
    return flow
