"""The generated year (``services.replay.year``) and its expected report, without a broker.

The year replay proves the system reproduces what was generated; these tests prove the
generated stream is the seed's year: its counts, its calendar, and its one late step per
late dossier.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import datetime

import pytest

from contracts import topics
from contracts.envelope import CloudEvent
from contracts.events import DossierReceived, StepCompleted
from infra.replay_year import cpu_profile
from services.intake.app import load_catalog
from services.intake.domain.catalog import Catalog
from services.replay.report import expected, render
from services.replay.year import CITY_MIX, SLOTS, WARD_MIX, GeneratedYear, _plan, generate, scaled
from services.runtime.working_days import WorkingDayCalendar

SCALE = 0.01


@pytest.fixture(scope="module")
def year() -> GeneratedYear:
    return generate(scale=SCALE)


def _events(year: GeneratedYear) -> list[CloudEvent]:
    return [CloudEvent.from_record(key=r.key, value=r.value, headers=r.headers) for r in year.records]


def test_counts_are_the_seed_figures_scaled_exactly(year: GeneratedYear) -> None:
    levels = Counter(d.level for d in year.dossiers)
    assert (
        levels == {"city": scaled(23_602, SCALE), "ward": scaled(73_334, SCALE)} == {"city": 236, "ward": 733}
    )
    late = [d for d in year.dossiers if d.late_agency is not None]
    assert len(late) == scaled(23_602, SCALE) - scaled(19_482, SCALE) == 41
    # Late dossiers are land dossiers at city level; the ward is never late.
    assert {d.procedure_code for d in late} <= {"LAND-TRANSFER", "LAND-MORTGAGE"}
    assert all(d.level == "city" for d in late)


def test_arrivals_fall_on_working_days_in_office_hours(year: GeneratedYear) -> None:
    calendar = WorkingDayCalendar()
    for dossier in year.dossiers:
        local = dossier.received_at.astimezone(calendar.tz)
        assert calendar.is_working_day(local.date()), dossier
        assert local.timetz().replace(tzinfo=None) in SLOTS
    received = [e for e in _events(year) if isinstance(e.data, DossierReceived)]
    assert len(received) == len(year.dossiers)
    assert len({e.data.dossier_id for e in received}) == len(year.dossiers)


def test_each_late_dossier_overruns_at_exactly_its_late_agency(year: GeneratedYear) -> None:
    calendar = WorkingDayCalendar()
    catalog = load_catalog()
    overruns: dict[str, list[str]] = {}
    codes = {d.dossier_id: d.procedure_code for d in year.dossiers}
    for event in _events(year):
        data = event.data
        if isinstance(data, StepCompleted):
            procedure = catalog.get(codes[data.dossier_id])
            assert procedure is not None
            budget = procedure.steps[data.step_index].budget_days
            if calendar.working_time_between(data.received_at, data.completed_at) > budget:
                overruns.setdefault(data.dossier_id, []).append(data.agency)
            # An agency answers on its own topic, as itself.
            assert event.source.endswith(data.agency)
    for dossier in year.dossiers:
        want = [dossier.late_agency] if dossier.late_agency else []
        assert overruns.get(dossier.dossier_id, []) == want, dossier


def test_records_are_in_time_order_on_the_topics_their_writers_own(year: GeneratedYear) -> None:
    stamps = [r.timestamp_ms for r in year.records]
    assert stamps == sorted(stamps)
    assert {r.topic for r in year.records} == {
        topics.INTAKE_CITIZENS,  # the receipts, with who applied
        topics.INTAKE_EVENTS,  # the payments
        topics.agency_events("land_registry"),
        topics.agency_events("tax"),
        topics.agency_events("urban_management"),  # the building permits
    }


def test_expected_report_counts_every_agency_on_the_route(year: GeneratedYear) -> None:
    figures = expected(year).figures()
    assert figures["level city"] == (236, 236, 195, 41, 41)
    assert figures["level ward"] == (733, 733, 733, 0, 0)
    land = sum(1 for d in year.dossiers if d.procedure_code.startswith("LAND-"))
    transfers = sum(1 for d in year.dossiers if d.procedure_code == "LAND-TRANSFER")
    late_at = Counter(d.late_agency for d in year.dossiers if d.late_agency)
    assert figures["agency land_registry"] == (
        land,
        land,
        land - late_at["land_registry"],
        late_at["land_registry"],
        late_at["land_registry"],
    )
    assert figures["agency tax"][:2] == (transfers, transfers)
    assert figures["agency one_stop"] == (969, 969, 969, 0, 0)
    permits = sum(1 for d in year.dossiers if d.field == "Xây dựng")
    assert permits > 0
    assert figures["agency urban_management"] == (permits, permits, permits, 0, 0)


def test_the_year_files_every_procedure_of_the_catalog_in_its_share(year: GeneratedYear) -> None:
    # The mix is the catalog: a procedure added to the catalog without a share fails here, so the
    # generated year and the console always show every published procedure.
    catalog = load_catalog()
    mixes = {"city": dict(CITY_MIX), "ward": dict(WARD_MIX)}
    assert {code for mix in mixes.values() for code in mix} == {p.code for p in catalog.procedures}
    for level, mix in mixes.items():
        assert sum(mix.values()) == 100
        assert all(p.level == level for code in mix if (p := catalog.get(code)) is not None)
    # Each procedure's count is its share of its level's total to within one dossier.
    counts = Counter(d.procedure_code for d in year.dossiers)
    totals = {"city": scaled(23_602, SCALE), "ward": scaled(73_334, SCALE)}
    for level, mix in mixes.items():
        assert sum(counts[code] for code in mix) == totals[level]
        for code, share in mix.items():
            assert abs(counts[code] - totals[level] * share / 100) < 1, code


def test_the_full_year_keeps_the_seeds_totals_across_the_mix() -> None:
    # Only the plan (no stream): the seed's figures exactly, whatever the shares.
    plan = _plan(1.0, random.Random(20260101))
    catalog = load_catalog()
    levels = Counter(level_of(catalog, code) for code, _ in plan)
    assert levels == {"city": 23_602, "ward": 73_334}
    late = [code for code, step in plan if step is not None]
    assert len(late) == 23_602 - 19_482
    assert set(late) <= {"LAND-TRANSFER", "LAND-MORTGAGE"}


def level_of(catalog: Catalog, code: str) -> str:
    procedure = catalog.get(code)
    assert procedure is not None
    return procedure.level


def test_render_marks_a_row_that_differs(year: GeneratedYear) -> None:
    generated = expected(year)
    system = expected(year)
    system.levels["city"].on_time -= 1
    system.levels["city"].late += 1
    table = render(system, generated)
    assert "NO, generated (236, 236, 195, 41, 41)" in table
    assert table.count("  yes") == len(generated.rows()) - 1
    # Every row's first figure ends in the same column, however long the field's name.
    rows = table.splitlines()[2:]
    ends = {match.end() for line in rows if (match := re.search(r"\d[\d,]*", line))}
    assert len(rows) == len(generated.rows())
    assert len(ends) == 1


def test_generation_is_deterministic() -> None:
    first, again = generate(scale=0.001), generate(scale=0.001)
    assert [r.value for r in first.records] == [r.value for r in again.records]
    assert first.first_moment == again.first_moment
    assert isinstance(first.first_moment, datetime)


def test_a_slice_of_working_days_keeps_the_year_density() -> None:
    whole = generate(scale=0.01)
    first_two = generate(scale=0.01, working_days=2)
    days = sorted({d.received_at.date() for d in whole.dossiers})[:2]
    assert {d.received_at.date() for d in first_two.dossiers} == set(days)
    assert first_two.dossiers == [d for d in whole.dossiers if d.received_at.date() in days]
    # Each sliced dossier comes with all its events, also those after the slice's last day.
    ids = {d.dossier_id.encode() for d in first_two.dossiers}
    assert first_two.records == [r for r in whole.records if r.key in ids]


def test_the_cpu_profile_names_the_busiest_process_first_and_the_cores_kept_busy() -> None:
    line = cpu_profile({"console": 4.0, "notification": 20.0, "replayer": 6.0}, wall_seconds=20.0)
    assert line.startswith("CPU during the replay: 30.0 s (1.50 of ")
    assert line.endswith(": notification 20.0 s, replayer 6.0 s, console 4.0 s")
