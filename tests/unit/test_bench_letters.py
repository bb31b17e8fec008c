"""The bench's letter measurement: a real render and a real PAdES signature, and the ceiling from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.agencies import ONE_STOP
from infra.bench import letter_cost
from infra.bench.report import _letter_rows
from infra.letter_ca import catalog_agencies, issue


@pytest.fixture(scope="module")
def signing_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-letters")
    issue(root / "signing", root / "ca", ONE_STOP, catalog_agencies()[ONE_STOP])
    return root / "signing"


def test_the_result_letter_is_rendered_and_signed_and_sets_a_ceiling(signing_dir: Path) -> None:
    cost = letter_cost.measure(signing_dir, cores=2, iterations=2, repeats=1)

    assert cost.render_ms > 0
    assert cost.sign_ms > 0
    assert cost.letter_bytes > 10_000  # a PDF with its font and a CMS signature, not an empty file
    assert cost.ceiling_dossiers_per_s == pytest.approx(2 * 1000 / (cost.render_ms + cost.sign_ms))
    (timing, ceiling) = _letter_rows(
        {**cost.__dict__, "render_ms": 6.5, "sign_ms": 12.0, "ceiling_dossiers_per_s": 108.1}
    )
    assert timing[1] == "6.5 / 12.0 ms"
    assert ceiling[1] == "108 dossiers/s"


def test_without_the_agency_certificate_there_is_nothing_to_measure(tmp_path: Path) -> None:
    issue(tmp_path / "signing", tmp_path / "ca", "tax", catalog_agencies()["tax"])

    with pytest.raises(LookupError, match="one_stop"):
        letter_cost.measure(tmp_path / "signing", cores=2, iterations=1, repeats=1)
