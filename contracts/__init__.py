"""The published contracts: every event, its envelope on Kafka and the topics it travels on.

Agencies plug in by reading this package (or the JSON Schemas generated from it); services
import it and never redefine an event.
"""

from contracts.agencies import CITIZEN, LAND_REGISTRY, NOTIFICATION, ONE_STOP, TAX, Agency
from contracts.envelope import CloudEvent, EnvelopeError
from contracts.events import (
    EVENT_TYPES,
    ApologyIssued,
    Applicant,
    DossierEscalated,
    DossierEvent,
    DossierHandedOver,
    DossierReceived,
    DossierReturned,
    PaymentNoticeIssued,
    StepCompleted,
    StepOverdue,
    SupplementRequested,
)

__all__ = [
    "CITIZEN",
    "EVENT_TYPES",
    "LAND_REGISTRY",
    "NOTIFICATION",
    "ONE_STOP",
    "TAX",
    "Agency",
    "ApologyIssued",
    "Applicant",
    "CloudEvent",
    "DossierEscalated",
    "DossierEvent",
    "DossierHandedOver",
    "DossierReceived",
    "DossierReturned",
    "EnvelopeError",
    "PaymentNoticeIssued",
    "StepCompleted",
    "StepOverdue",
    "SupplementRequested",
]
