"""Topic names, who owns (writes) each one and who reads it.

An agency writes only to the topics it owns; everything addressed to an agency arrives on a
topic that only that agency reads, so Kafka ACLs can enforce both rules (see README).

| topic                 | owner  | readers                 | events                                         |
|-----------------------|--------|-------------------------|------------------------------------------------|
| ``intake.events``     | intake | anyone granted (public) | the dossier's lifecycle, no personal data      |
| ``intake.citizens``   | intake | notification, console   | what the citizen is sent, with their identity  |
| ``handoffs.<agency>`` | intake | that agency             | dossier.handed_over                            |
| ``<agency>.events``   | agency | intake (+ notification) | dossier.step_completed, agency notices         |
| ``<service>.dlq``     | it     | operators               | dead letters with the reason                   |

The rule for personal data: an event with the applicant in it (:func:`carries_personal_data`)
never goes on ``intake.events``.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

from contracts.agencies import ONE_STOP

INTAKE_EVENTS: Final = "intake.events"
"""Lifecycle of dossiers as the one-stop desk sees it, with no personal data: any consumer
granted it (an agency's dashboard, a statistics office) learns statuses, dates and the slip."""

INTAKE_CITIZENS: Final = "intake.citizens"
"""What the desk sends the citizen (receipt, supplement request, apology, result), with the
citizen's identity: read only by the notification service and the operators' console."""


def carries_personal_data(event: type[BaseModel]) -> bool:
    """Whether events of this type name the citizen (and so must not go on a public topic)."""
    return "applicant" in event.model_fields


def desk_topic(event: type[BaseModel]) -> str:
    """Where the desk publishes an event of this type (handoffs aside): the rule above."""
    return INTAKE_CITIZENS if carries_personal_data(event) else INTAKE_EVENTS


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
    if topic in (INTAKE_EVENTS, INTAKE_CITIZENS) or topic.startswith("handoffs."):
        return ONE_STOP
    if topic.endswith(".events"):
        return topic.removesuffix(".events")
    return None


def dead_letters(service: str) -> str:
    """Where ``service`` parks records it cannot process, with the reason."""
    return f"{service}.dlq"
