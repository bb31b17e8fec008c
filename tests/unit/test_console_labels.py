"""The console names agencies, actions and outcomes as the procedure catalog does: no copy of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.events import StepCompleted
from services.console import pages
from services.console.domain import labels
from services.console.domain.labels import CatalogNames
from services.intake.domain.catalog import CATALOG_FILE, Catalog

PUBLISHED = Catalog.load()


def test_agencies_actions_and_outcomes_are_named_as_in_the_catalog() -> None:
    for code, info in PUBLISHED.agencies.items():
        assert labels.agency(code) == info.short_name, code
    for code, name in PUBLISHED.actions.items():
        assert labels.action(code) == name, code
    for code, name in PUBLISHED.outcomes.items():
        assert labels.outcome(code) == name, code
    assert labels.agency("citizen") == "Công dân", "the citizen is no agency of the catalog"


def test_every_step_outcome_of_the_contract_has_a_name() -> None:
    outcomes = StepCompleted.model_json_schema()["properties"]["outcome"]["enum"]
    assert set(outcomes) <= set(PUBLISHED.outcomes)


@pytest.fixture
def catalog_with_construction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The published catalog file plus a construction department and its action."""
    data: dict[str, Any] = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    data["agencies"]["construction"] = {
        "name": "Phòng Quản lý đô thị thành phố Tân An",
        "short_name": "Phòng Quản lý đô thị",
        "head_title": "Trưởng phòng",
    }
    data["actions"]["review_design"] = "Thẩm định hồ sơ thiết kế"
    path = tmp_path / "procedures.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    # What the console would read at start if this were the published catalog.
    monkeypatch.setattr(labels, "catalog_names", lambda: CatalogNames.of(Catalog.load(path)))
    return path


def test_the_console_shows_a_new_agency_by_the_name_the_catalog_gives_it(
    catalog_with_construction: Path,
) -> None:
    at = datetime(2026, 3, 9, 8, tzinfo=UTC)
    dossier = {
        "id": "HS-260309-ABC",
        "applicant_name": "Nguyễn Văn Đức",
        "applicant_id_number": "079088001234",
        "procedure_name": "Cấp giấy phép xây dựng",
        "level": "city",
        "status": "processing",
        "returned_at": None,
        "current_agency": "construction",
        "current_action": "review_design",
        "received_at": at,
        "appointment_at": at,
        "original_appointment_at": None,
        "lateness": "in_time",
    }
    html = pages.templates().get_template("_dossier_rows.html").render(dossiers=[dossier])
    assert "Phòng Quản lý đô thị" in html
    assert "Thẩm định hồ sơ thiết kế" in html
    assert "construction" not in html.replace("HS-260309-ABC", "")


def test_the_catalog_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    labels.catalog_names.cache_clear()
    reads = []
    load = Catalog.load

    def counting(path: Path = CATALOG_FILE) -> Catalog:
        reads.append(path)
        return load(path)

    monkeypatch.setattr(Catalog, "load", staticmethod(counting))
    labels.agency("tax")
    labels.action("assess")
    labels.outcome("done")
    assert len(reads) == 1
    labels.catalog_names.cache_clear()
