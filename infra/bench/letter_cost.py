"""What a citizen's signed letter costs: rendering the PDF and signing it (PAdES), CPU per letter.

Every land transfer ends with one: the result letter, rendered by the notification service and
signed with the issuing agency's certificate. Both are CPU in one Python thread, whatever the
plumbing around them, so they set a ceiling no tuning of Kafka, Postgres or the services can
lift: ``cores × 1000 / (render + sign)`` dossiers/s with the machine doing nothing but letters.
Measured on the example result event (``contracts.examples``) with the run's own letter-signing
certificates, as the service loads them (:meth:`LetterSigner.from_directory`), after one
letter to warm the signer (the signature's reserved size is then known, as in the service).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts.events import DossierReturned
from contracts.examples import EXAMPLES
from infra.bench.common import cpu_per_call_us
from services.notification.document_signing import LetterSigner
from services.notification.domain.notices import DEFAULT_PLACE, render


@dataclass(frozen=True)
class LetterCost:
    """CPU milliseconds per result letter, and the rate letters alone would allow."""

    render_ms: float
    sign_ms: float
    letter_bytes: int
    letters_per_dossier: int
    cores: int
    ceiling_dossiers_per_s: float
    """``cores × 1000 / (letters_per_dossier × (render_ms + sign_ms))``: every core on letters."""
    iterations: int
    repeats: int


def result_event() -> DossierReturned:
    """The example result the catalog documents (an accepted land transfer)."""
    for event in EXAMPLES.values():
        if isinstance(event, DossierReturned) and event.outcome != "rejected":
            return event
    raise LookupError("contracts.examples has no accepted DossierReturned")


def measure(signing_dir: Path, *, cores: int, iterations: int = 20, repeats: int = 3) -> LetterCost:
    """Median over ``repeats`` of the thread's CPU time per render and per signature."""
    signer = LetterSigner.from_directory(signing_dir)
    notice = render(result_event(), place=DEFAULT_PLACE)
    attachment = notice.attachment if notice is not None else None
    agency = attachment.signed_by if attachment is not None else None
    if attachment is None or agency is None:
        raise LookupError("the example result renders no signed letter")

    def sign_once() -> bytes:
        return signer.sign_now(attachment.data, agency=agency, location=DEFAULT_PLACE)

    signed = sign_once()  # the signature's reserved size is known from here on, as in the service

    render_ms = (
        cpu_per_call_us(lambda: render(result_event(), place=DEFAULT_PLACE), iterations, repeats) / 1000
    )
    sign_ms = cpu_per_call_us(sign_once, iterations, repeats) / 1000
    letters = 1  # the land transfer's result letter; receipt and payment notice carry no PDF
    return LetterCost(
        render_ms=render_ms,
        sign_ms=sign_ms,
        letter_bytes=len(signed),
        letters_per_dossier=letters,
        cores=cores,
        ceiling_dossiers_per_s=cores * 1000 / (letters * (render_ms + sign_ms)),
        iterations=iterations,
        repeats=repeats,
    )
