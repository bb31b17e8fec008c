"""The step result contracts: one per action, registered, and matching what was recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from contracts.agencies import CITIZEN, ONE_STOP
from contracts.events import DossierHandedOver, StepCompleted
from contracts.examples import EXAMPLES, RESULT_EXAMPLES
from contracts.registry import SCHEMAS_DIR, check_registry, revisions
from contracts.results import (
    RESULT_TYPES,
    RESULTS,
    AppraisalResult,
    AssessmentResult,
    NoResult,
    ResultRejected,
    SupplementNeeded,
    earlier_result,
    parse_result,
    result_model,
)
from services.intake.app import load_catalog
from services.intake.domain.catalog import DESK_ACTIONS
from services.replay.recording import read_records
from services.replay.replay import payment_for
from services.replay.year import CITY_MIX, WARD_MIX, _result

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def test_every_action_an_agency_answers_has_a_result_contract() -> None:
    # The desk and the citizen answer no StepCompleted; every other agency's action does.
    catalog = load_catalog()
    answered = {
        step.action
        for procedure in catalog.procedures
        for step in procedure.steps
        if step.agency not in (ONE_STOP, CITIZEN)
    }
    assert answered == set(RESULTS)
    assert not DESK_ACTIONS & set(RESULTS)


def test_every_result_version_is_registered_with_an_example() -> None:
    assert check_registry(SCHEMAS_DIR) == []
    assert set(RESULT_EXAMPLES) == set(RESULT_TYPES)
    assert all(name.startswith("vn.gov.result.") and name[-3:-1] == ".v" for name in RESULT_TYPES)


@pytest.mark.parametrize("name", sorted(RESULT_TYPES))
def test_every_result_example_validates_against_its_committed_schema(name: str) -> None:
    data = RESULT_EXAMPLES[name].wire()
    jsonschema.validate(data, revisions(SCHEMAS_DIR, name)[-1])
    assert RESULT_TYPES[name].model_validate(data) == RESULT_EXAMPLES[name]


def test_the_step_completed_example_carries_an_appraisal_result() -> None:
    example = EXAMPLES[StepCompleted.TYPE]
    assert isinstance(example, StepCompleted)
    assert isinstance(parse_result(example.action, example.result), AppraisalResult)


def test_the_model_is_chosen_by_action_and_outcome() -> None:
    assert result_model("appraise") is AppraisalResult
    assert result_model("assess", "done") is AssessmentResult
    assert result_model("appraise", "rejected") is NoResult
    assert result_model("assess", "needs_supplement") is SupplementNeeded
    with pytest.raises(ResultRejected, match="no result contract for action 'paint_the_fence'"):
        result_model("paint_the_fence")


def test_a_mismatch_names_the_contract_and_every_problem() -> None:
    with pytest.raises(ResultRejected) as caught:
        parse_result("assess", {"notice_number": "TB-1", "total_vnd": "lots", "bank": "x"})
    message = str(caught.value)
    assert message.startswith("the done result of 'assess' does not match vn.gov.result.assessment.v1:")
    assert "total_vnd: Input should be a valid integer" in message
    assert "bank: Extra inputs are not permitted" in message
    with pytest.raises(ResultRejected, match=r"result\.none\.v1"):
        parse_result("appraise", {"why": "no"}, "rejected")


def test_the_wire_form_is_plain_json_and_reads_back() -> None:
    appraisal = RESULT_EXAMPLES[AppraisalResult.NAME]
    wire = appraisal.wire()
    assert wire["area_m2"] == "100.5"  # a decimal travels as a string, as the registry always wrote it
    assert json.loads(json.dumps(wire)) == wire
    assert parse_result("appraise", wire) == appraisal


def test_answering_with_a_typed_result_puts_its_json_on_the_event() -> None:
    handover = EXAMPLES[DossierHandedOver.TYPE]
    assert isinstance(handover, DossierHandedOver)
    at = datetime(2026, 3, 9, 2, tzinfo=UTC)
    notice = AssessmentResult(notice_number="TB-2026-000001", total_vnd=37_500_000)
    done = StepCompleted.answering(handover, outcome="done", received_at=at, completed_at=at, result=notice)
    assert done.result == {"notice_number": "TB-2026-000001", "total_vnd": 37_500_000}


def test_an_earlier_result_is_read_as_its_contract() -> None:
    results: dict[str, dict[str, Any]] = {"appraise": RESULT_EXAMPLES[AppraisalResult.NAME].wire()}
    appraisal = earlier_result(results, "appraise", AppraisalResult)
    assert appraisal.area_m2 == Decimal("100.5")
    with pytest.raises(ResultRejected, match="no 'assess' result"):
        earlier_result(results, "assess", AssessmentResult)
    with pytest.raises(ResultRejected, match=r"is a vn\.gov\.result\.appraisal\.v1, not"):
        earlier_result(results, "appraise", AssessmentResult)


def _recorded_results() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(file, action, outcome, result) of every result in the golden streams."""
    found = []
    for path in sorted(GOLDEN.glob("*.jsonl.gz")):
        for record in read_records(path):
            kind = record.header("ce_type")
            if record.value is None or kind not in (StepCompleted.TYPE, DossierHandedOver.TYPE):
                continue
            data = json.loads(record.value)
            if kind == StepCompleted.TYPE:
                found.append((path.name, data["action"], data["outcome"], data["result"]))
            else:
                found += [(path.name, action, "done", r) for action, r in data["results"].items()]
    return found


def test_every_result_in_the_golden_streams_matches_its_contract() -> None:
    # The streams stand for records already on running systems: the contracts must read them.
    recorded = _recorded_results()
    assert {action for _, action, _, _ in recorded} >= {"appraise", "assess", "issue_certificate"}
    for name, action, outcome, result in recorded:
        parsed = parse_result(action, result, outcome)  # type: ignore[arg-type]
        assert parsed.wire() == result, (name, action)


def _generated_actions() -> list[str]:
    """The agencies' actions on the routes of the procedures the generated year files."""
    catalog = load_catalog()
    codes = [code for code, _ in (*CITY_MIX, *WARD_MIX)]
    procedures = [p for p in catalog.procedures if p.code in codes]
    assert len(procedures) == len(codes)
    return sorted({s.action for p in procedures for s in p.steps if s.action in RESULTS})


@pytest.mark.parametrize("action", _generated_actions())
def test_the_generated_year_answers_with_each_contract(action: str) -> None:
    assert isinstance(parse_result(action, _result(action, 7)), RESULTS[action])


def test_the_replayed_payment_reads_the_assessment_contract() -> None:
    dossier = {
        "results": {
            "appraise": RESULT_EXAMPLES[AppraisalResult.NAME].wire(),
            "assess": {"notice_number": "TB-2026-000009", "total_vnd": 37_500_000},
        }
    }
    assert payment_for(dossier) == {"notice_number": "TB-2026-000009", "amount_vnd": 37_500_000}
    assert payment_for({"results": {"appraise": dossier["results"]["appraise"]}}) == {}


# -- the registry's checks, on result schemas ---------------------------------------------------


def run_check(schemas: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contracts.registry", "check", "--schemas", str(schemas)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, target)
    return target


def test_check_fails_when_a_result_model_drifts(copy: Path) -> None:
    latest = copy / AppraisalResult.NAME / "1.json"
    schema = json.loads(latest.read_text())
    schema["properties"]["table_value_vnd"]["type"] = "string"
    latest.write_text(json.dumps(schema))
    result = run_check(copy)
    assert result.returncode == 1
    assert f"{AppraisalResult.NAME}: the model drifted from committed revision 1" in result.stderr
    assert "#/properties/table_value_vnd/type changed" in result.stderr


def test_check_fails_on_an_incompatible_result_revision(copy: Path) -> None:
    # A revision requiring a new field: assessments already kept by the desk lack it.
    folder = copy / AssessmentResult.NAME
    schema = json.loads((folder / "1.json").read_text())
    schema["properties"]["bank_account"] = {"type": "string"}
    schema["required"].append("bank_account")
    (folder / "2.json").write_text(json.dumps(schema))
    result = run_check(copy)
    assert result.returncode == 1
    assert (
        f"{AssessmentResult.NAME}: committed revision 2 breaks BACKWARD_TRANSITIVE against revision 1"
        in result.stderr
    )


def test_check_fails_when_a_result_is_unregistered_or_orphaned(copy: Path) -> None:
    shutil.rmtree(copy / AssessmentResult.NAME)
    shutil.copytree(copy / NoResult.NAME, copy / "vn.gov.result.vanished.v1")
    result = run_check(copy)
    assert result.returncode == 1
    assert f"{AssessmentResult.NAME}: not registered" in result.stderr
    assert "vn.gov.result.vanished.v1: committed schema without a model" in result.stderr
