"""The procedure catalog: procedures, their fees, required documents and routes, as data."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.agencies import CITIZEN, ONE_STOP, Agency

DESK_ACTIONS = frozenset(
    {
        "receive",
        "receive_payment_proof",
        "certify_copy",
        "register_business",
        "register_birth",
        "register_death",
        "register_marriage",
        "confirm_marital_status",
        "certify_signature",
        "certify_contract",
        "register_business_change",
        "return_result",
    }
)
"""What the one-stop desk does itself, at once, when a route reaches it.

The desk's officers decide these (the ward's civil-status and certification officer, the city's
economic office at the counter), so no other agency answers them and they have no result
contract. A new desk-only procedure names its action here as well as in the catalog."""


CATALOG_FILE = Path(__file__).resolve().parent.parent / "catalog" / "procedures.yaml"
"""The published catalog: intake routes by it, the console names agencies, actions and outcomes by it."""


LAST_DAY = Decimal(1)
"""A step longer than this is looked at (its agency and the desk warned) when this much is left."""


class CatalogError(ValueError):
    """The catalog file is inconsistent; the message says which procedure and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Step(_Strict):
    """One step of a route: which agency does what, within how many working days."""

    agency: Agency
    action: str = Field(pattern=r"^[a-z][a-z_]*$")
    budget_days: Decimal = Field(ge=0, multiple_of=0.5)
    counts: bool = True
    """False for financial-obligation time (the citizen paying), which the limit excludes."""
    mode: Literal["manual", "automatic"] = "automatic"
    """Who decides: an officer works the step from the agency's queue, or the agency's rule at once."""

    @property
    def watched(self) -> bool:
        """The desk sets an alarm on it: another agency's step whose time counts."""
        return self.counts and self.agency not in (ONE_STOP, CITIZEN)

    @property
    def first_alarm_days(self) -> Decimal:
        """Working days from the handoff to the desk's first look: its last day, or its due time."""
        return self.budget_days - LAST_DAY if self.budget_days > LAST_DAY else self.budget_days


class Fee(_Strict):
    """A published fee; ``per`` names an integer field of the details to multiply by."""

    name: str
    amount_vnd: int = Field(ge=0)
    per: str | None = None


class RequiredDocument(_Strict):
    """A document the applicant must hand in."""

    code: str = Field(pattern=r"^[A-Z][A-Z_]*$")
    name: str


class Procedure(_Strict):
    """An administrative procedure (thủ tục hành chính) as published."""

    code: str
    name: str
    name_en: str
    level: Literal["city", "ward"]
    field: str
    statutory_limit_days: Decimal = Field(gt=0)
    legal_basis: str
    return_place: str
    fees: tuple[Fee, ...]
    required_documents: tuple[RequiredDocument, ...]
    steps: tuple[Step, ...]
    details_schema: dict[str, Any]

    @model_validator(mode="after")
    def _route_is_sound(self) -> Procedure:
        counted = sum((s.budget_days for s in self.steps if s.counts), Decimal(0))
        if counted != self.statutory_limit_days:
            raise ValueError(
                f"counted step budgets add up to {counted} working days,"
                f" but the statutory limit is {self.statutory_limit_days}"
            )
        if self.steps[0] != Step(agency=ONE_STOP, action="receive", budget_days=self.steps[0].budget_days):
            raise ValueError("a route starts with the one-stop desk receiving the dossier")
        if (self.steps[-1].agency, self.steps[-1].action) != (ONE_STOP, "return_result"):
            raise ValueError("a route ends with the one-stop desk returning the result")
        for step in self.steps:
            if step.agency == ONE_STOP and step.action not in DESK_ACTIONS:
                raise ValueError(f"the one-stop desk cannot {step.action!r}")
            if step.agency == CITIZEN and (step.action != "pay" or step.counts):
                raise ValueError("the citizen's only step is to pay, and it does not count")
            if step.mode == "manual" and step.agency in (ONE_STOP, CITIZEN):
                raise ValueError(f"only an agency's step can be manual, not {step.agency}'s {step.action!r}")
        try:
            Draft202012Validator.check_schema(self.details_schema)
        except SchemaError as exc:
            raise ValueError(f"details_schema is not a valid JSON Schema: {exc.message}") from exc
        return self

    def missing_documents(self, documents: list[str]) -> list[str]:
        """Codes of required documents not handed in."""
        given = set(documents)
        return [d.code for d in self.required_documents if d.code not in given]

    def details_errors(self, details: dict[str, Any]) -> list[str]:
        """Why ``details`` does not match the procedure's schema (empty when it does)."""
        validator = Draft202012Validator(self.details_schema)
        return [
            f"details{''.join(f'[{p!r}]' for p in error.absolute_path)}: {error.message}"
            for error in sorted(validator.iter_errors(details), key=lambda e: list(e.absolute_path))
        ]

    def fee_lines(self, details: dict[str, Any]) -> list[tuple[str, int]]:
        """Each fee due for this dossier with its amount in VND."""
        return [(f.name, f.amount_vnd * (int(details[f.per]) if f.per else 1)) for f in self.fees]

    def fee_total(self, details: dict[str, Any]) -> int:
        """Fees due for this dossier, in VND."""
        return sum(amount for _, amount in self.fee_lines(details))

    def lists_document(self, paper: str) -> bool:
        """Whether ``paper`` (a document's code or published name) is in the procedure's list."""
        wanted = paper.strip().casefold()
        return any(wanted in (d.code.casefold(), d.name.casefold()) for d in self.required_documents)

    def document_name(self, code: str) -> str:
        """The published name of a document (the code itself for an extra document)."""
        return next((d.name for d in self.required_documents if d.code == code), code)


class AgencyInfo(_Strict):
    """How an agency is named on letters and on screens, and who signs for it."""

    name: str
    head_title: str
    short_name: str = ""
    """The name screens show where the letters' full name would not fit (the console)."""

    @property
    def display_name(self) -> str:
        """What screens show: the short name, or the full one when there is none."""
        return self.short_name or self.name


class Catalog(_Strict):
    """All procedures, by code, and the agencies they route to."""

    agencies: dict[str, AgencyInfo]
    actions: dict[str, str] = Field(default_factory=dict)
    """Each action's Vietnamese name, as screens show it."""
    outcomes: dict[str, str] = Field(default_factory=dict)
    """Each step outcome's Vietnamese name (``dossier.step_completed.v1``), as screens show it."""
    procedures: tuple[Procedure, ...]

    @model_validator(mode="after")
    def _agencies_are_named(self) -> Catalog:
        unnamed = self.agencies_routed() - set(self.agencies)
        if unnamed:
            raise ValueError(f"agencies {sorted(unnamed)} are routed to but not listed under `agencies`")
        # Every action a route names has a display name, so no screen shows a machine code.
        unnamed = {s.action for p in self.procedures for s in p.steps} - set(self.actions)
        if unnamed:
            raise ValueError(f"actions {sorted(unnamed)} are routed but not named under `actions`")
        return self

    @classmethod
    def from_mapping(cls, data: Any) -> Catalog:
        """Build from parsed YAML/JSON; raise :class:`CatalogError` with a readable reason."""
        try:
            return cls.model_validate(data)
        except ValueError as exc:
            raise CatalogError(f"procedure catalog is invalid: {exc}") from exc

    @classmethod
    def load(cls, path: Path = CATALOG_FILE) -> Catalog:
        """Read and check a catalog file (the published one by default)."""
        return cls.from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")))

    def get(self, code: str) -> Procedure | None:
        """The procedure with ``code``, if published."""
        return next((p for p in self.procedures if p.code == code), None)

    def agencies_routed(self) -> set[str]:
        """Every agency a route can reach, the desk included, the citizen not."""
        return {s.agency for p in self.procedures for s in p.steps} - {CITIZEN}

    def soonest_first_alarm(self) -> Decimal | None:
        """The least time any alarm can be set ahead of a handoff (working days), None if none is."""
        return min((s.first_alarm_days for p in self.procedures for s in p.steps if s.watched), default=None)

    def consumers(self) -> set[str]:
        """Agencies that take handoffs over Kafka: all but the desk itself and the citizen."""
        return self.agencies_routed() - {ONE_STOP}
