"""The published catalog covers the seed's mix: procedures, fields, levels, each with its sources.

The seed counts 399 procedures in 64 fields at city and ward level; the catalog carries a sample
of the commonest, each as its regulation publishes it. These tests hold it to that: enough
procedures across enough fields at both levels, each with its legal basis, a positive limit and
its documents, routed only to agencies that have a service, and each one a dossier the desk
(and, for the second permit, the urban management office) actually takes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

import pytest

from contracts.agencies import CITIZEN, ONE_STOP
from contracts.events import Applicant, DossierHandedOver, DossierReceived, DossierReturned
from contracts.results import ConstructionPermitResult, DesignReviewResult
from services.intake.app import load_catalog
from services.intake.domain.catalog import DESK_ACTIONS, Procedure
from services.intake.domain.dossier import Dossier
from services.manifest import manifests
from services.replay.year import _details
from services.runtime.working_days import VIETNAM_TZ, WorkingDayCalendar
from services.urban_management.domain.permits import perform
from tests.dossier_samples import applicant

CATALOG = load_catalog()
CALENDAR = WorkingDayCalendar()
MONDAY = datetime(2026, 3, 9, 8, tzinfo=VIETNAM_TZ)
CODES = [p.code for p in CATALOG.procedures]


def _procedure(code: str) -> Procedure:
    procedure = CATALOG.get(code)
    assert procedure is not None, code
    return procedure


def test_the_catalog_spans_the_seeds_fields_at_both_levels() -> None:
    assert len(CODES) == len(set(CODES)) >= 10
    fields = defaultdict(set)
    for procedure in CATALOG.procedures:
        fields[procedure.level].add(procedure.field)
    assert set(fields) == {"city", "ward"}
    assert len(fields["city"] | fields["ward"]) >= 5
    # Each level has more than one field, so the report's per-field rows say something.
    assert all(len(names) >= 2 for names in fields.values())
    # Both levels have several procedures; the wards' are the bulk of the seed's dossiers.
    levels = [p.level for p in CATALOG.procedures]
    assert levels.count("city") >= 4
    assert levels.count("ward") >= 4


@pytest.mark.parametrize("code", CODES)
def test_each_procedure_has_its_source_limit_documents_and_fees(code: str) -> None:
    procedure = _procedure(code)
    # The legal basis names at least one law, decree or circular by number.
    assert any(word in procedure.legal_basis for word in ("Luật", "Nghị định", "Thông tư")), code
    assert procedure.statutory_limit_days > 0
    assert procedure.required_documents
    assert len({d.code for d in procedure.required_documents}) == len(procedure.required_documents)
    assert all(d.name.strip() for d in procedure.required_documents)
    assert procedure.name.strip()
    assert procedure.name_en.strip()
    assert procedure.return_place.strip()
    # A fee the details multiply by names an integer field of the details.
    for fee in procedure.fees:
        if fee.per is not None:
            assert procedure.details_schema["properties"][fee.per]["type"] == "integer"
    # Every procedure has details, checked against a closed schema.
    assert procedure.details_schema["type"] == "object"
    assert procedure.details_schema.get("additionalProperties") is False
    assert procedure.details_schema["required"]


def test_routes_reach_only_agencies_that_run_a_service() -> None:
    served = {m.agency for m in manifests() if m.agency is not None}
    assert CATALOG.agencies_routed() <= served
    # Ward procedures are decided at the ward's own desk: no agency of the city is involved.
    for procedure in CATALOG.procedures:
        if procedure.level == "ward":
            assert {s.agency for s in procedure.steps} == {ONE_STOP}, procedure.code


@pytest.mark.parametrize("code", CODES)
def test_the_desk_takes_a_dossier_of_each_procedure(code: str) -> None:
    procedure = _procedure(code)
    details = _details(code, 7, MONDAY.date())
    assert procedure.details_errors(details) == []
    dossier, events = Dossier.receive(
        dossier_id="HS-CATALOG-1",
        procedure=procedure,
        procedure_code=code,
        applicant=Applicant.model_validate(applicant(7)),
        documents=[d.code for d in procedure.required_documents],
        details=details,
        now=MONDAY,
        calendar=CALENDAR,
    )
    received = events[0]
    assert isinstance(received, DossierReceived)
    assert received.appointment_at == CALENDAR.add_working_time(MONDAY, procedure.statutory_limit_days)
    assert dossier.appointment_at == received.appointment_at
    if all(s.agency in (ONE_STOP, CITIZEN) for s in procedure.steps):
        # Decided at the desk: returned at once, every action one the desk performs.
        assert all(s.action in DESK_ACTIONS for s in procedure.steps)
        assert isinstance(events[-1], DossierReturned)
    else:
        assert isinstance(events[-1], DossierHandedOver)


def test_the_urban_management_office_decides_a_renovation_permit() -> None:
    # The second permit reuses the office's steps: its rule must take the renovation's details.
    procedure = _procedure("HOUSE-RENOVATION-PERMIT")
    details = _details(procedure.code, 7, MONDAY.date())
    results: dict[str, dict[str, object]] = {}
    for index, step in enumerate(procedure.steps):
        if step.agency != "urban_management":
            continue
        handover = DossierHandedOver(
            dossier_id="HS-RENOVATION-1",
            procedure_code=procedure.code,
            step_index=index,
            from_agency=ONE_STOP,
            to_agency="urban_management",
            action=step.action,
            budget_days=step.budget_days,
            sent_at=MONDAY,
            due_at=CALENDAR.add_working_time(MONDAY, step.budget_days),
            applicant=Applicant.model_validate(applicant(7)),
            details=details,
            results=results,
        )
        outcome = perform(handover, permit_number="GPXD-2026-000008", now=MONDAY)
        assert outcome.outcome == "done", outcome.note
        results[step.action] = outcome.typed.wire()
    assert DesignReviewResult.model_validate(results["review_design"]).building_density == Decimal("0.70")
    assert ConstructionPermitResult.model_validate(results["issue_construction_permit"]).storeys == 3
