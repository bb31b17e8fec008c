"""Topic names, who owns (writes) each one and who reads it.

An agency writes only to the topics it owns; everything addressed to an agency arrives on a
topic that only that agency reads, so Kafka ACLs can enforce both rules (see README).

| topic                 | owner (writer) | readers                 | events                                 |
|-----------------------|----------------|-------------------------|----------------------------------------|
| ``intake.events``     | intake         | notification            | dossier.received, dossier.returned     |
| ``handoffs.<agency>`` | intake         | that agency             | dossier.handed_over                    |
| ``<agency>.events``   | that agency    | intake (+ notification) | dossier.step_completed, agency notices |
| ``<service>.dlq``     | that service   | operators               | dead letters with the reason           |
"""

from __future__ import annotations

from typing import Final

from contracts.agencies import ONE_STOP

INTAKE_EVENTS: Final = "intake.events"
"""Lifecycle of dossiers as the one-stop desk sees it; the citizen-facing notices start here."""


def handoffs(agency: str) -> str:
    """The topic on which the one-stop desk hands dossiers to ``agency``."""
    return f"handoffs.{agency}"


def agency_events(agency: str) -> str:
    """The topic ``agency`` writes its step results (and its own notices) to."""
    if agency == ONE_STOP:
        return INTAKE_EVENTS
    return f"{agency}.events"


def owner(topic: str) -> str | None:
    """The agency allowed to write ``topic`` (None for topics no agency owns, e.g. DLQs)."""
    if topic == INTAKE_EVENTS or topic.startswith("handoffs."):
        return ONE_STOP
    if topic.endswith(".events"):
        return topic.removesuffix(".events")
    return None


def dead_letters(service: str) -> str:
    """Where ``service`` parks records it cannot process, with the reason."""
    return f"{service}.dlq"
