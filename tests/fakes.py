"""Fakes of the ports use cases run on, so a handler is tested in milliseconds.

``FakeWork`` stands for a unit of work (its time, and the events it would publish when it
commits); ``InMemoryDossiers`` for the desk's dossier table. What they record is what the real
ones would write to the outbox and to Postgres.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from contracts.envelope import CloudEvent
from contracts.events import DossierEvent
from services.intake.domain.dossier import Dossier


@dataclass
class FakeWork:
    """A unit of work that keeps what it publishes, with the topic each event goes to."""

    now: datetime
    source: str = "urn:vn-gov:test"
    published: list[tuple[str, DossierEvent]] = field(default_factory=list)

    async def publish(self, data: DossierEvent, *, topic: str) -> CloudEvent:
        """Keep ``data`` for ``topic``, wrapped as the real unit of work wraps it."""
        self.published.append((topic, data))
        return CloudEvent.wrap(data, source=self.source, time=self.now)

    def types_on(self, topic: str) -> list[str]:
        """The event types published on ``topic``, in order."""
        return [type(event).__name__ for published_on, event in self.published if published_on == topic]


@dataclass
class InMemoryDossiers:
    """The desk's dossiers in a dict; loads and saves copies, as a database would."""

    rows: dict[str, Dossier] = field(default_factory=dict)
    saves: int = 0
    letters: int = 0

    async def load(self, dossier_id: str, *, for_update: bool = False) -> Dossier | None:
        """A copy of the stored dossier (changes reach the store only through save)."""
        stored = self.rows.get(dossier_id)
        return copy.deepcopy(stored) if stored is not None else None

    async def save(self, dossier: Dossier, *, trace_context: dict[str, str] | None = None) -> None:
        """Store a copy."""
        self.rows[dossier.id] = copy.deepcopy(dossier)
        self.saves += 1

    async def next_letter_number(self, now: datetime) -> str:
        """``PXL-<year>-<n>``, numbered from 1 as the real sequence does."""
        self.letters += 1
        return f"PXL-{now:%Y}-{self.letters:06d}"


@dataclass
class InMemoryRegister:
    """An agency's register of decisions in a list, numbering permits from 1."""

    steps: list[dict[str, object]] = field(default_factory=list)
    issued: int = 0

    async def next_permit_number(self, issued_at: datetime) -> str:
        """``GPXD-<year>-<n>``, as the real sequence numbers them."""
        self.issued += 1
        return f"GPXD-{issued_at:%Y}-{self.issued:06d}"

    async def record_step(
        self, *, dossier_id: str, handoff_row: int | None, action: str, outcome: str, note: str, result: str
    ) -> None:
        """Keep the decision."""
        self.steps.append({"dossier_id": dossier_id, "action": action, "outcome": outcome, "note": note})
