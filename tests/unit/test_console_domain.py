"""The console's rules without I/O: lateness, on-time rates, search folding."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.console.domain import labels
from services.console.domain.dossiers import Lateness, first_promised, fold, lateness, search_text
from services.console.domain.on_time import (
    CompletedStep,
    Grouping,
    Period,
    Rate,
    SettledDossier,
    agency_rates,
    dossier_rate,
    dossier_rates,
)

PROMISED = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)  # 17:00 in Vietnam


def settled(
    returned: datetime,
    *,
    promised: datetime = PROMISED,
    procedure: str = "LAND-TRANSFER",
    level: str = "city",
) -> SettledDossier:
    return SettledDossier(
        procedure_code=procedure,
        procedure_name=f"name of {procedure}",
        level=level,
        returned_at=returned,
        first_promised_at=promised,
    )


def step(agency: str, *, late_by: timedelta) -> CompletedStep:
    return CompletedStep(agency=agency, completed_at=PROMISED + late_by, due_at=PROMISED)


# --- lateness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned_at", "overdue_open", "now", "expected"),
    [
        (PROMISED, False, PROMISED + timedelta(days=9), Lateness.ON_TIME),  # exactly on the date
        (PROMISED + timedelta(seconds=1), False, PROMISED, Lateness.LATE),
        (None, False, PROMISED - timedelta(hours=1), Lateness.IN_TIME),
        (None, True, PROMISED - timedelta(days=3), Lateness.OVERDUE),  # a step is past due already
        (None, False, PROMISED + timedelta(minutes=1), Lateness.OVERDUE),  # the promised date passed
    ],
)
def test_lateness(
    returned_at: datetime | None, overdue_open: bool, now: datetime, expected: Lateness
) -> None:
    assert (
        lateness(first_promised_at=PROMISED, returned_at=returned_at, overdue_open=overdue_open, now=now)
        is expected
    )


def test_only_late_and_overdue_count_as_late() -> None:
    assert {state for state in Lateness if state.is_late} == {Lateness.LATE, Lateness.OVERDUE}


def test_a_rescheduled_dossier_is_measured_against_its_first_date() -> None:
    new_date = PROMISED + timedelta(days=2)
    assert first_promised(new_date, PROMISED) == PROMISED
    assert first_promised(PROMISED, None) == PROMISED
    assert (
        lateness(
            first_promised_at=first_promised(new_date, PROMISED),
            returned_at=new_date,
            overdue_open=False,
            now=new_date,
        )
        is Lateness.LATE
    )


# --- on-time rates ------------------------------------------------------------------------------


def test_dossier_rate_is_the_share_returned_by_the_first_promised_date() -> None:
    dossiers = [settled(PROMISED - timedelta(days=1)) for _ in range(97)]
    dossiers += [settled(PROMISED + timedelta(hours=1)) for _ in range(3)]
    rate = dossier_rate(dossiers, period=Period())
    assert (rate.total, rate.on_time, rate.late) == (100, 97, 3)
    assert rate.percent == Decimal("97.0")


def test_returned_exactly_at_the_promised_time_is_on_time() -> None:
    assert dossier_rate([settled(PROMISED)], period=Period()).on_time == 1


def test_percent_is_rounded_half_up_and_absent_without_data() -> None:
    assert Rate(key="", label="", total=3, on_time=2).percent == Decimal("66.7")
    assert Rate(key="", label="", total=8, on_time=7).percent == Decimal("87.5")
    assert Rate(key="", label="", total=0, on_time=0).percent is None


def test_period_days_are_vietnam_days_both_ends_included() -> None:
    march = Period(date(2026, 3, 1), date(2026, 3, 31))
    # 31 March 23:30 in Vietnam is 16:30 UTC: inside. 1 April 00:10 in Vietnam (17:10 UTC): outside.
    inside = settled(datetime(2026, 3, 31, 16, 30, tzinfo=UTC), promised=datetime(2026, 4, 30, tzinfo=UTC))
    outside = settled(datetime(2026, 3, 31, 17, 10, tzinfo=UTC), promised=datetime(2026, 4, 30, tzinfo=UTC))
    # 1 March 00:05 in Vietnam is 28 February 17:05 UTC: inside.
    first = settled(datetime(2026, 2, 28, 17, 5, tzinfo=UTC), promised=datetime(2026, 4, 30, tzinfo=UTC))
    before = settled(datetime(2026, 2, 28, 16, 55, tzinfo=UTC), promised=datetime(2026, 4, 30, tzinfo=UTC))
    assert dossier_rate([inside, outside, first, before], period=march).total == 2
    assert (
        dossier_rate([inside, outside, first, before], period=Period(last_day=date(2026, 3, 31))).total == 3
    )
    assert (
        dossier_rate([inside, outside, first, before], period=Period(first_day=date(2026, 4, 1))).total == 1
    )


def test_a_period_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="ends"):
        Period(date(2026, 3, 2), date(2026, 3, 1))


def test_rates_by_procedure_and_by_level() -> None:
    dossiers = [
        settled(PROMISED, procedure="LAND-TRANSFER", level="city"),
        settled(PROMISED + timedelta(days=1), procedure="LAND-TRANSFER", level="city"),
        settled(PROMISED, procedure="CERTIFIED-COPY", level="ward"),
    ]
    by_procedure = dossier_rates(dossiers, by=Grouping.PROCEDURE, period=Period())
    assert [(r.key, r.label, r.total, r.on_time) for r in by_procedure] == [
        ("CERTIFIED-COPY", "name of CERTIFIED-COPY", 1, 1),
        ("LAND-TRANSFER", "name of LAND-TRANSFER", 2, 1),
    ]
    by_level = dossier_rates(dossiers, by=Grouping.LEVEL, period=Period(), labels=labels.level)
    assert [(r.key, r.label, r.percent) for r in by_level] == [
        ("city", "Cấp thành phố", Decimal("50.0")),
        ("ward", "Cấp phường, xã", Decimal("100.0")),
    ]


def test_dossiers_are_not_rated_by_agency() -> None:
    with pytest.raises(ValueError, match="steps"):
        dossier_rates([], by=Grouping.AGENCY, period=Period())


def test_agency_rate_is_the_share_of_its_steps_completed_by_due() -> None:
    steps = [
        step("land_registry", late_by=timedelta(0)),  # exactly at the due time: on time
        step("land_registry", late_by=-timedelta(hours=2)),
        step("land_registry", late_by=timedelta(hours=3)),
        step("tax", late_by=timedelta(days=1)),
    ]
    rates = agency_rates(steps, period=Period(), labels=labels.agency)
    assert [(r.key, r.label, r.total, r.on_time, r.late) for r in rates] == [
        ("land_registry", "Văn phòng Đăng ký đất đai", 3, 2, 1),
        ("tax", "Chi cục Thuế", 1, 0, 1),
    ]
    # Counted in the period in which the step was completed.
    march_20 = Period(date(2026, 3, 20), date(2026, 3, 20))
    assert [(r.key, r.total) for r in agency_rates(steps, period=march_20)] == [("land_registry", 3)]


# --- search -------------------------------------------------------------------------------------


def test_search_ignores_case_and_diacritics() -> None:
    assert fold("Nguyễn Văn Đức") == "nguyen van duc"
    assert fold("TRẦN THỊ BÌNH") == "tran thi binh"
    text = search_text("HS-260309-ABC", "Nguyễn Văn Đức", "079088001234")
    assert fold("nguyễn văn") in text
    assert fold("duc") in text
    assert fold("hs-260309") in text
    assert "001234" in text


def test_unknown_codes_are_shown_as_they_are() -> None:
    assert labels.agency("construction") == "construction"
    assert labels.status("awaiting_payment") == "Chờ thực hiện nghĩa vụ tài chính"
