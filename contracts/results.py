"""What an agency's step produces, one pydantic model per action: the step result contracts.

A ``StepCompleted`` carries its ``result`` as a JSON object, and the desk passes the results of
earlier steps on in ``DossierHandedOver.results``, keyed by action. The object's shape is this
module's contract for the action, so a reader (tax reading the appraisal, the desk checking a
payment against the tax notice) depends on a published, versioned model rather than on the
keys another service happened to write. Each model has a versioned name
(``vn.gov.result.appraisal.v1``) and its JSON Schema is committed in the schema registry next
to the events' (``contracts/schemas/<name>/<revision>.json``), under the same compatibility
checks: a breaking change is a new version, never a revision.

Which model applies depends on the outcome: ``done`` carries the action's result
(:data:`RESULTS`), ``needs_supplement`` a :class:`SupplementNeeded`, ``rejected`` nothing
(:class:`NoResult`; the reason is the event's ``note``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError

from contracts.compatibility import CompatibilityMode
from contracts.events import Contract

Outcome = Literal["done", "rejected", "needs_supplement"]


class StepResult(Contract):
    """Base of every step result: frozen and closed, like the events, so typos surface."""

    NAME: ClassVar[str]
    """Registry name: ``vn.gov.result.<what>.v<major>``; a breaking change is a new name."""
    COMPATIBILITY: ClassVar[CompatibilityMode] = CompatibilityMode.BACKWARD_TRANSITIVE
    """How revisions of this version may change (checked by ``make contracts-check``)."""

    def wire(self) -> dict[str, Any]:
        """The JSON object that travels in ``StepCompleted.result``."""
        return self.model_dump(mode="json")


class AppraisalResult(StepResult):
    """The land registry's appraisal of a transfer: the parcel and its value (action ``appraise``).

    Tax assesses the obligations on the higher of the declared price and the table value.
    """

    NAME: ClassVar[str] = "vn.gov.result.appraisal.v1"

    parcel_ref: str = Field(min_length=1, examples=["phuong-3/tờ 12/thửa 345"])
    area_m2: Decimal = Field(gt=0, description="Area as on the registration form, square metres.")
    land_use_code: str = Field(examples=["ODT"])
    table_price_vnd_per_m2: int = Field(ge=0, description="The province's land price table, VND per m².")
    table_value_vnd: int = Field(ge=0, description="Area times the table price, rounded to the dong.")
    declared_price_vnd: int = Field(ge=0, description="The price declared in the transfer contract.")


class AssessmentResult(StepResult):
    """The tax authority's assessment (action ``assess``): the notice the citizen must pay.

    The desk accepts a payment only if it names this notice and pays exactly ``total_vnd``.
    """

    NAME: ClassVar[str] = "vn.gov.result.assessment.v1"

    notice_number: str = Field(min_length=1, examples=["TB-2026-000042"])
    total_vnd: int = Field(ge=0, description="Everything owed: registration fee plus income tax.")


class CertificateResult(StepResult):
    """The land registry issued the new certificate to the transferee (action ``issue_certificate``)."""

    NAME: ClassVar[str] = "vn.gov.result.certificate.v1"

    certificate_serial: str = Field(min_length=1, examples=["TA 100042"])
    holder: str = Field(min_length=1, description="The transferee, now the right holder.")
    parcel_ref: str = Field(min_length=1)


class MortgageResult(StepResult):
    """The land registry entered a mortgage on the parcel's record (action ``register_mortgage``)."""

    NAME: ClassVar[str] = "vn.gov.result.mortgage.v1"

    certificate_number: str = Field(min_length=1, description="The certificate naming the parcel.")
    mortgagee: str = Field(min_length=1, description="The lender.")


class SupplementNeeded(StepResult):
    """An agency found the dossier incomplete (outcome ``needs_supplement``, any action)."""

    NAME: ClassVar[str] = "vn.gov.result.supplement_needed.v1"

    missing_documents: list[str] = Field(
        default_factory=list, description="Names of the documents to add or correct."
    )


class NoResult(StepResult):
    """A refused step (outcome ``rejected``) produces nothing; the reason is the event's note."""

    NAME: ClassVar[str] = "vn.gov.result.none.v1"


class DesignReviewResult(StepResult):
    """The urban management office found the house's design fits its parcel (action ``review_design``)."""

    NAME: ClassVar[str] = "vn.gov.result.design_review.v1"

    parcel_ref: str = Field(min_length=1, examples=["phuong-3/tờ 12/thửa 345"])
    built_area_m2: Decimal = Field(gt=0, description="Ground area the house covers, square metres.")
    storeys: int = Field(ge=1)
    total_floor_area_m2: Decimal = Field(gt=0)
    building_density: Decimal = Field(ge=0, le=1, description="Built area over parcel area.")


class ConstructionPermitResult(StepResult):
    """The urban management office issued the building permit (action ``issue_construction_permit``)."""

    NAME: ClassVar[str] = "vn.gov.result.construction_permit.v1"

    permit_number: str = Field(min_length=1, examples=["GPXD-2026-000042"])
    parcel_ref: str = Field(min_length=1)
    storeys: int = Field(ge=1)
    total_floor_area_m2: Decimal = Field(gt=0)
    valid_until: date = Field(description="Works must start by then, or the permit lapses.")


RESULTS: dict[str, type[StepResult]] = {
    "appraise": AppraisalResult,
    "assess": AssessmentResult,
    "issue_certificate": CertificateResult,
    "register_mortgage": MortgageResult,
    "review_design": DesignReviewResult,
    "issue_construction_permit": ConstructionPermitResult,
}
"""The result of a ``done`` step, by action. Every action the catalog routes to an agency
other than the desk has one (a test checks it); the desk's own steps (receive, the
certifications and registrations its officers decide, receive_payment_proof, return_result:
``DESK_ACTIONS`` in the catalog module) and the citizen's ``pay`` are done without a
``StepCompleted``, so they have no result contract."""

_ALL: tuple[type[StepResult], ...] = (*RESULTS.values(), SupplementNeeded, NoResult)
RESULT_TYPES: dict[str, type[StepResult]] = {cls.NAME: cls for cls in _ALL}
"""Every step result version, by registry name (what the schema registry checks)."""


R = TypeVar("R", bound=StepResult)


class ResultRejected(ValueError):
    """A result does not match its action's contract; the message says which and why."""


def result_model(action: str, outcome: Outcome = "done") -> type[StepResult]:
    """The contract a step's result must match, given its action and outcome."""
    if outcome == "rejected":
        return NoResult
    if outcome == "needs_supplement":
        return SupplementNeeded
    try:
        return RESULTS[action]
    except KeyError:
        raise ResultRejected(f"no result contract for action {action!r}") from None


def parse_result(action: str, data: Mapping[str, Any], outcome: Outcome = "done") -> StepResult:
    """The typed result of a step, or :class:`ResultRejected` saying what does not match."""
    model = result_model(action, outcome)
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ResultRejected(
            f"the {outcome} result of {action!r} does not match {model.NAME}: {problems}"
        ) from exc


def earlier_result(results: Mapping[str, Mapping[str, Any]], action: str, model: type[R]) -> R:
    """The result of an earlier step as ``model``, from a handoff's or a dossier's ``results``.

    Raises :class:`ResultRejected` if that step has no result yet, or if it is not a ``model``.
    """
    if model is not result_model(action):
        raise ResultRejected(f"the result of {action!r} is a {result_model(action).NAME}, not {model.NAME}")
    if action not in results:
        raise ResultRejected(f"no {action!r} result among the earlier steps")
    parsed = parse_result(action, results[action])
    assert isinstance(parsed, model)  # result_model(action) is model, checked above
    return parsed
