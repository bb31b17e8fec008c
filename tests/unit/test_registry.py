"""The schema registry in the repo: the committed schemas, and the check that guards them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from contracts.events import EVENT_TYPES
from contracts.examples import EXAMPLES
from contracts.registry import SCHEMAS_DIR, check_registry, revisions


def run_check(schemas: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contracts.registry", "check", "--schemas", str(schemas)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_committed_registry_matches_the_models() -> None:
    assert check_registry(SCHEMAS_DIR) == []
    result = run_check(SCHEMAS_DIR)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_example_validates_against_its_committed_schema(event_type: str) -> None:
    data = json.loads(EXAMPLES[event_type].model_dump_json())
    jsonschema.validate(data, revisions(SCHEMAS_DIR, event_type)[-1])


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, target)
    return target


def test_check_fails_on_a_hand_edited_schema(copy: Path) -> None:
    latest = max((copy / "vn.gov.dossier.received.v2").glob("*.json"), key=lambda p: int(p.stem))
    schema = json.loads(latest.read_text())
    schema["properties"]["fees"]["type"] = "string"
    latest.write_text(json.dumps(schema))
    result = run_check(copy)
    assert result.returncode == 1
    assert (
        f"vn.gov.dossier.received.v2: the model drifted from committed revision {latest.stem}"
        in result.stderr
    )
    assert "#/properties/fees/type changed" in result.stderr


def test_check_fails_on_an_incompatible_committed_revision(copy: Path) -> None:
    # A second revision that adds a required field: old records lack it, new readers would
    # refuse them, so BACKWARD(_TRANSITIVE) is broken.
    folder = copy / "vn.gov.tax.payment_notice_issued.v1"
    schema = json.loads((folder / "1.json").read_text())
    schema["properties"]["bank_account"] = {"type": "string"}
    schema["required"].append("bank_account")
    (folder / "2.json").write_text(json.dumps(schema))
    result = run_check(copy)
    assert result.returncode == 1
    assert "committed revision 2 breaks BACKWARD_TRANSITIVE against revision 1" in result.stderr


def test_check_fails_when_a_version_is_unregistered_or_orphaned(copy: Path) -> None:
    shutil.rmtree(copy / "vn.gov.dossier.returned.v1")
    shutil.copytree(copy / "vn.gov.dossier.received.v1", copy / "vn.gov.dossier.vanished.v1")
    result = run_check(copy)
    assert result.returncode == 1
    assert "vn.gov.dossier.returned.v1: not registered" in result.stderr
    assert "vn.gov.dossier.vanished.v1: committed schema without a model" in result.stderr


def run_register(schemas: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contracts.registry", "register", "--schemas", str(schemas)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_register_records_a_compatible_change_as_a_new_revision(copy: Path) -> None:
    # Pretend the committed revision predates the optional `results` field: adding an optional
    # field to a closed model is BACKWARD compatible, so the model is registered as revision 2.
    folder = copy / "vn.gov.dossier.handed_over.v1"
    schema = json.loads((folder / "1.json").read_text())
    del schema["properties"]["results"]
    (folder / "1.json").write_text(json.dumps(schema))
    result = run_register(copy)
    assert result.returncode == 0, result.stderr
    assert (folder / "2.json").exists()
    assert run_check(copy).returncode == 0


def test_register_refuses_a_breaking_change(copy: Path) -> None:
    # Pretend old records carried a field the model has since dropped: a closed new reader
    # would refuse them, so the change must be a new version, not a revision.
    folder = copy / "vn.gov.dossier.escalated.v1"
    schema = json.loads((folder / "1.json").read_text())
    schema["properties"]["legacy_code"] = {"type": "string"}
    (folder / "1.json").write_text(json.dumps(schema))
    result = run_register(copy)
    assert result.returncode == 1
    assert (
        "REFUSED vn.gov.dossier.escalated.v1: breaks BACKWARD_TRANSITIVE against revision 1" in result.stderr
    )
    assert "new version with an upcaster" in result.stderr
    assert not (folder / "2.json").exists()
