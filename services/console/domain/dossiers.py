"""A dossier as operators look at it: is it late, and how to find it by a citizen's name."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from contracts.events import SlipRow


class Lateness(StrEnum):
    """Where a dossier stands against its first promised date."""

    ON_TIME = "on_time"
    """Returned by the first promised date."""
    LATE = "late"
    """Returned after the first promised date."""
    OVERDUE = "overdue"
    """Not returned yet, and already late: a step is past due, or the promised date has passed."""
    IN_TIME = "in_time"
    """Not returned yet, and nothing is late so far."""

    @property
    def is_late(self) -> bool:
        """Whether an operator should look at it (``late=true`` in the API)."""
        return self in (Lateness.LATE, Lateness.OVERDUE)


def first_promised(appointment_at: datetime, original_appointment_at: datetime | None) -> datetime:
    """The date promised on the receipt: a rescheduled dossier is measured against the first one."""
    return original_appointment_at or appointment_at


def has_open_overdue_step(slip: Iterable[SlipRow]) -> bool:
    """Whether a step the desk found overdue is still not completed."""
    return any(row.overdue_at is not None and row.completed_at is None for row in slip)


def lateness(
    *,
    first_promised_at: datetime,
    returned_at: datetime | None,
    overdue_open: bool,
    now: datetime,
) -> Lateness:
    """Lateness of a dossier (the store's ``late`` filter is the same rule in SQL)."""
    if returned_at is not None:
        return Lateness.ON_TIME if returned_at <= first_promised_at else Lateness.LATE
    if overdue_open or now > first_promised_at:
        return Lateness.OVERDUE
    return Lateness.IN_TIME


def fold(text: str) -> str:
    """Lower case without diacritics, so "nguyen van an" finds "Nguyễn Văn An"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def search_text(*parts: str) -> str:
    """What a search matches against (a dossier id; a citizen's name and id number), folded."""
    return fold(" ".join(parts))
