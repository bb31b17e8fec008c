"""Readers accept every version of an event; upcasters turn an old version into the newest.

Writers always emit the newest version. A consumer calls :func:`upcast` on what it reads
(the runtime does it before any handler runs), so handlers only ever see the newest shape.
"""

from __future__ import annotations

from collections.abc import Callable

from contracts.events import (
    DossierEvent,
    DossierProgressed,
    DossierProgressedV1,
    DossierReceived,
    DossierReceivedV1,
    FeeLine,
    ReceivedDocument,
)


def _received_v1_to_v2(old: DossierEvent) -> DossierEvent:
    assert isinstance(old, DossierReceivedV1)
    return DossierReceived(
        dossier_id=old.dossier_id,
        procedure_code=old.procedure_code,
        procedure_name=old.procedure_name,
        level=old.level,
        applicant=old.applicant,
        # v1 carried codes only; the code is the best name we have for an old record.
        documents=[ReceivedDocument(code=code, name=code) for code in old.documents],
        received_at=old.received_at,
        appointment_at=old.appointment_at,
        statutory_limit_days=old.statutory_limit_days,
        fees=[FeeLine(name="Phí, lệ phí", amount_vnd=old.fees_vnd)] if old.fees_vnd else [],
        return_place=old.return_place,
    )


def _progressed_v1_to_v2(old: DossierEvent) -> DossierEvent:
    assert isinstance(old, DossierProgressedV1)
    # The applicant is dropped: v2 carries no personal data (see DossierProgressed).
    return DossierProgressed.model_validate(old.model_dump(exclude={"applicant"}))


UPCASTERS: dict[type[DossierEvent], Callable[[DossierEvent], DossierEvent]] = {
    DossierReceivedV1: _received_v1_to_v2,
    DossierProgressedV1: _progressed_v1_to_v2,
}
"""One step up for each superseded version; chains (v1 → v2 → v3) apply in turn."""


def upcast(event: DossierEvent) -> DossierEvent:
    """The newest version of ``event`` (itself if it is already the newest)."""
    while (step := UPCASTERS.get(type(event))) is not None:
        event = step(event)
    return event
