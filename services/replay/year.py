"""A year of the seed city's dossiers, as a recording the replayer can play.

The seed (Tân An city's report on its one-stop desk) gives one year's figures: 23,602 dossiers
received at city level, 19,482 of them settled on time, and 73,334 at ward level, none late.
This generator writes the stream such a year makes at the system's boundary: the citizens'
filings and payments at the desk, and the agencies' answers, at the times they happened. The
replayed desk does everything else (routing, deadlines, apologies, letters), so what the
system reports can be checked against what was generated.

How the figures become dossiers (assumptions, since the seed gives totals only):

* Arrivals fall on working days only (the calendar's holidays and weekends skipped), at one of
  the eight office hours of the day, spread evenly through the year.
* Every procedure of the catalog has its share of its level (:data:`CITY_MIX`,
  :data:`WARD_MIX`; assumed, the seed giving none). City level: about half land (the field the
  seed names first, and the only one it calls late), a third household businesses, an eighth
  building permits. Ward level: certifications, most of them copies, are the bulk of a ward's
  counter (one dossier per paper brought in); the civil-status events follow a city of about
  150,000 people (assumed): some 2,200 births, 1,500 marriages and 700 deaths a year, with the
  marital-status certificates that loans, land deals and marriages elsewhere ask for.
* The late city dossiers are land dossiers (the seed: land dossiers "pass through many
  agencies, so the time limit is not met"). In a late one, one agency step overruns by 1.5 to
  2 working days (1 to 1.5 for a mortgage) while the others use their budget but an hour; in
  an on-time one every agency answers within its budget. So each late dossier is late for
  exactly one agency, which signs exactly one apology.
* Counts are exact at any scale: ``round(figure * scale)`` of each.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from contracts import topics
from contracts.agencies import ONE_STOP, source_uri
from contracts.envelope import CloudEvent
from contracts.events import (
    Applicant,
    DossierEvent,
    DossierReceived,
    FeeLine,
    PaymentReceived,
    ReceivedDocument,
    StepCompleted,
)
from contracts.results import (
    AppraisalResult,
    AssessmentResult,
    CertificateResult,
    ConstructionPermitResult,
    DesignReviewResult,
    MortgageResult,
    StepResult,
)
from services.intake.app import load_catalog
from services.intake.domain.catalog import Catalog, Procedure
from services.intake.handlers import LOOKUP_ALPHABET, LOOKUP_CODE_LENGTH
from services.replay.recording import RecordedRecord
from services.runtime.working_days import WorkingDayCalendar

CITY_RECEIVED = 23_602
CITY_ON_TIME = 19_482
WARD_RECEIVED = 73_334
WARD_ON_TIME = 73_334

CITY_MIX = (
    ("LAND-TRANSFER", 32),
    ("LAND-MORTGAGE", 20),
    ("HOUSEHOLD-BUSINESS", 22),
    ("HOUSEHOLD-BUSINESS-CHANGE", 14),
    ("CONSTRUCTION-PERMIT", 8),
    ("HOUSE-RENOVATION-PERMIT", 4),
)
"""Percent of the city's dossiers by procedure (assumed shares; they add up to 100)."""
WARD_MIX = (
    ("CERTIFIED-COPY", 70),
    ("SIGNATURE-CERTIFICATION", 12),
    ("CONTRACT-CERTIFICATION", 4),
    ("MARITAL-STATUS-CONFIRMATION", 8),
    ("BIRTH-REGISTRATION", 3),
    ("MARRIAGE-REGISTRATION", 2),
    ("DEATH-REGISTRATION", 1),
)
"""Percent of the wards' dossiers by procedure (assumed shares; they add up to 100)."""
LATE_STEP_WEIGHTS = {"appraise": 0.45, "assess": 0.2, "issue_certificate": 0.35}
"""Which step of a late land transfer overran (a late mortgage can only be late at its one step)."""

SLOTS = (time(7, 30), time(8, 30), time(9, 30), time(10, 30), time(13), time(14), time(15), time(16))
"""Arrival times: the start of each office hour (default office hours 07:30-11:30, 13:00-17:00)."""

_IDS = uuid.UUID("6f1d3a52-1c1e-4c52-9d55-0d7a3f0c2b10")


@dataclass(frozen=True)
class GeneratedDossier:
    """One dossier as generated: where it belongs in the report and what should happen to it."""

    dossier_id: str
    procedure_code: str
    level: str
    field: str
    received_at: datetime
    late_agency: str | None
    """The agency whose step overruns, or None for a dossier settled on time."""
    agencies: tuple[str, ...] = ()
    """The agencies on its route (the desk included, the citizen's own steps not)."""


@dataclass
class GeneratedYear:
    """The dossiers of the year and the records of the stream."""

    year: int
    scale: float
    dossiers: list[GeneratedDossier] = field(default_factory=list)
    records: list[RecordedRecord] = field(default_factory=list)

    @property
    def first_moment(self) -> datetime:
        """When the first dossier arrives (replay clocks start before it)."""
        return min(d.received_at for d in self.dossiers)


def scaled(figure: int, scale: float) -> int:
    """A seed figure at ``scale`` (exact rounding, so the report can be compared)."""
    return round(figure * scale)


def generate(
    *,
    scale: float = 1.0,
    year: int = 2026,
    seed: int = 20260101,
    catalog: Catalog | None = None,
    working_days: int | None = None,
) -> GeneratedYear:
    """The year's stream at ``scale`` (1.0 = the seed's figures).

    ``working_days``: only the dossiers that arrive in the year's first N working days (each
    with all its events, however late they come): a slice at the year's real density, for a
    benchmark. The counts of a slice are not the seed's.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], not {scale}")
    catalog = catalog or load_catalog()
    calendar = WorkingDayCalendar()
    rng = random.Random(seed)
    plan = _plan(scale, rng)
    days = [d for d in _dates(year) if calendar.is_working_day(d)]
    generated = GeneratedYear(year=year, scale=scale)
    tz = calendar.tz
    cutoff = days[working_days] if working_days is not None and working_days < len(days) else None
    for n, (code, late_step) in enumerate(plan):
        # Evenly through the year's working days, the office hour drawn at random.
        day = days[n * len(days) // len(plan)]
        if cutoff is not None and day >= cutoff:
            break  # arrivals come in day order
        received = datetime.combine(day, rng.choice(SLOTS), tzinfo=tz)
        procedure = catalog.get(code)
        assert procedure is not None, f"the catalog has no {code}"
        dossier_id = f"HS-{received:%y%m%d}-Y{n:09d}"
        late_agency = _route(procedure, late_step)
        generated.dossiers.append(
            GeneratedDossier(
                dossier_id,
                code,
                procedure.level,
                procedure.field,
                received,
                late_agency,
                tuple(dict.fromkeys(s.agency for s in procedure.steps if s.agency != "citizen")),
            )
        )
        generated.records.extend(_stream(procedure, dossier_id, n, received, late_step, rng, calendar))
    generated.records.sort(key=lambda r: (r.timestamp_ms, r.topic, r.key or b""))
    return generated


def _plan(scale: float, rng: random.Random) -> list[tuple[str, str | None]]:
    """(procedure code, late step or None) for every dossier, shuffled."""
    city = _split(scaled(CITY_RECEIVED, scale), CITY_MIX)
    ward = _split(scaled(WARD_RECEIVED, scale), WARD_MIX)
    late = scaled(CITY_RECEIVED, scale) - scaled(CITY_ON_TIME, scale)
    land = [code for code in city if code.startswith("LAND-")]
    if late > len(land):
        raise ValueError("more late dossiers than land dossiers at this scale")
    late_ids = set(rng.sample(range(len(land)), late))
    steps, weights = zip(*LATE_STEP_WEIGHTS.items(), strict=True)
    plan: list[tuple[str, str | None]] = []
    for i, code in enumerate(land):
        step = None
        if i in late_ids:
            step = "register_mortgage" if code == "LAND-MORTGAGE" else rng.choices(steps, weights)[0]
        plan.append((code, step))
    plan += [(code, None) for code in city if not code.startswith("LAND-")]
    plan += [(code, None) for code in ward]
    rng.shuffle(plan)
    return plan


def _split(total: int, mix: tuple[tuple[str, int], ...]) -> list[str]:
    """``total`` codes in the mix's percentages (largest remainder, so they add up exactly)."""
    if sum(share for _, share in mix) != 100:
        raise ValueError(f"the mix's shares add up to {sum(s for _, s in mix)}%, not 100%")
    # Integer arithmetic: float shares would make the counts depend on rounding.
    counts = {code: total * share // 100 for code, share in mix}
    leftover = total - sum(counts.values())
    by_remainder = sorted(mix, key=lambda item: total * item[1] % 100, reverse=True)
    for code, _ in by_remainder[:leftover]:
        counts[code] += 1
    return [code for code, n in counts.items() for _ in range(n)]


def _dates(year: int) -> Iterator[date]:
    day = date(year, 1, 1)
    while day.year == year:
        yield day
        day += timedelta(days=1)


def _route(procedure: Procedure, late_step: str | None) -> str | None:
    if late_step is None:
        return None
    return next(s.agency for s in procedure.steps if s.action == late_step)


HOUR = Decimal(1) / 8
"""One office hour in working days (8-hour days)."""


def dossier_stream(
    code: str,
    dossier_id: str,
    n: int,
    received: datetime,
    *,
    answered_at: Mapping[str, datetime],
    seed: int = 0,
    catalog: Catalog | None = None,
) -> list[RecordedRecord]:
    """One dossier's boundary records as the year writes them, its agencies answering when told.

    ``answered_at`` maps a step's action to the moment its agency answers (the others answer
    as in an on-time dossier of the year), for hand-made streams in tests.
    """
    procedure = (catalog or load_catalog()).get(code)
    if procedure is None:
        raise ValueError(f"the catalog has no {code}")
    stream = _stream(
        procedure, dossier_id, n, received, None, random.Random(seed), WorkingDayCalendar(), answered_at
    )
    return list(stream)


def _stream(
    procedure: Procedure,
    dossier_id: str,
    n: int,
    received: datetime,
    late_step: str | None,
    rng: random.Random,
    calendar: WorkingDayCalendar,
    answered_at: Mapping[str, datetime] | None = None,
) -> Iterator[RecordedRecord]:
    """The boundary records of one dossier: its filing, the agencies' answers, the payment."""
    applicant = Applicant(
        full_name=f"Công dân {n}",
        id_number=f"{79_000_000_000 + n:012d}",
        phone=f"09{n % 100_000_000:08d}",
        email=f"cong.dan.{n}@example.vn",
    )
    details = _details(procedure.code, n, received.date())
    documents = [d.code for d in procedure.required_documents]
    yield _record(
        topics.desk_topic(DossierReceived),
        ONE_STOP,
        DossierReceived(
            dossier_id=dossier_id,
            procedure_code=procedure.code,
            procedure_name=procedure.name,
            level=procedure.level,
            applicant=applicant,
            documents=[ReceivedDocument(code=c, name=procedure.document_name(c)) for c in documents],
            received_at=received,
            appointment_at=calendar.add_working_time(received, procedure.statutory_limit_days),
            statutory_limit_days=procedure.statutory_limit_days,
            fees=[FeeLine(name=name, amount_vnd=amount) for name, amount in procedure.fee_lines(details)],
            return_place=procedure.return_place,
            details=details,
            # As recorded: a replay files the dossier again with this code, so every replay of
            # the year gives the citizen the same one (the desk draws a random one otherwise).
            lookup_code=_lookup_code(dossier_id),
        ),
        received,
        f"{dossier_id}/received",
    )
    now = received
    for index, step in enumerate(procedure.steps):
        if step.agency == ONE_STOP:
            continue  # the desk does its own steps at once
        if step.agency == "citizen":
            # The citizen pays within two working days of the notice; that time is not counted.
            now = calendar.add_working_time(now, HOUR * rng.randint(1, 16))
            yield _record(
                topics.desk_topic(PaymentReceived),
                ONE_STOP,
                PaymentReceived(dossier_id=dossier_id, received_at=now),
                now,
                f"{dossier_id}/paid",
            )
            continue
        budget_hours = int(step.budget_days / HOUR)
        if late_step is None:
            hours = rng.randint(1, budget_hours - 1)
        elif step.action == late_step:
            overrun = (8, 12) if procedure.code == "LAND-MORTGAGE" else (12, 16)
            hours = budget_hours + rng.choice(overrun)
        else:
            hours = budget_hours - 1
        sent, now = now, calendar.add_working_time(now, HOUR * hours)
        if answered_at and step.action in answered_at:
            now = answered_at[step.action]
        yield _record(
            topics.agency_events(step.agency),
            step.agency,
            StepCompleted(
                dossier_id=dossier_id,
                step_index=index,
                agency=step.agency,
                action=step.action,
                outcome="done",
                received_at=sent,
                completed_at=now,
                note="",
                result=_result(step.action, n, now),
                handoff_row=index,  # no supplement in the year: one slip row per route step
            ),
            now,
            f"{dossier_id}/{step.action}",
        )


def _lookup_code(dossier_id: str) -> str:
    """A look-up code as the desk makes them, drawn from the dossier id (the same every run)."""
    digest = hashlib.sha256(f"lookup:{dossier_id}".encode()).digest()
    return "".join(LOOKUP_ALPHABET[b % len(LOOKUP_ALPHABET)] for b in digest[:LOOKUP_CODE_LENGTH])


HOUSE = {"parcel_area_m2": 100.0, "built_area_m2": 70.0, "storeys": 3, "total_floor_area_m2": 210.0}
"""The house of every generated permit: within the office's planning limits (70 % density)."""
BUSINESS_CHANGES = ("address", "trade", "name", "capital", "owner", "contacts")


def _parcel_ref(n: int) -> str:
    return f"phuong-3/tờ {1 + n % 40}/thửa {1 + n}"


def _details(code: str, n: int, received: date) -> dict[str, Any]:
    """The details of dossier ``n`` of procedure ``code``, valid against its catalog schema."""
    if code == "LAND-TRANSFER":
        return {
            "certificate_number": f"CS {n % 1_000_000:06d}",
            "parcel": {
                "ward": "phuong-3",
                "map_sheet": 1 + n % 40,
                "parcel_number": 1 + n,
                "area_m2": 100.0,
                "land_use_code": "ODT",
            },
            "transferee": {"full_name": f"Người nhận {n}", "id_number": f"{80_000_000_000 + n:012d}"},
            "transfer_price_vnd": 1_500_000_000,
        }
    if code == "LAND-MORTGAGE":
        return {"certificate_number": f"CT {n % 1_000_000:06d}", "lender": "Ngân hàng Nông nghiệp"}
    if code == "HOUSEHOLD-BUSINESS":
        return {"business_name": f"Hộ kinh doanh số {n}", "address": "Phường 1, thành phố Tân An"}
    if code == "HOUSEHOLD-BUSINESS-CHANGE":
        return {
            "registration_number": f"50A8{n % 1_000_000:06d}",
            "business_name": f"Hộ kinh doanh số {n}",
            "change": BUSINESS_CHANGES[n % len(BUSINESS_CHANGES)],
        }
    if code in ("CONSTRUCTION-PERMIT", "HOUSE-RENOVATION-PERMIT"):
        return {"parcel_ref": _parcel_ref(n), **HOUSE}
    if code == "CERTIFIED-COPY":
        return {"document_title": "Bằng tốt nghiệp", "pages": 1 + n % 4}
    if code == "SIGNATURE-CERTIFICATION":
        return {"document_title": "Giấy ủy quyền", "signers": 1 + n % 2}
    if code == "CONTRACT-CERTIFICATION":
        return {"contract_title": "Hợp đồng thuê nhà ở", "parties": 2}
    if code == "MARITAL-STATUS-CONFIRMATION":
        purposes = ("Vay vốn ngân hàng", "Giao dịch quyền sử dụng đất", "Đăng ký kết hôn")
        return {"purpose": purposes[n % len(purposes)]}
    if code == "MARRIAGE-REGISTRATION":
        return {
            "spouses": [
                {"full_name": f"Người chồng {n}", "birth_date": "1996-05-01"},
                {"full_name": f"Người vợ {n}", "birth_date": "1998-09-01"},
            ]
        }
    if code == "DEATH-REGISTRATION":
        # Registered within the 15 days the law gives the family (Law on Civil Status art. 33).
        died = received - timedelta(days=1 + n % 14)
        return {"deceased_name": f"Người mất {n}", "date_of_death": died.isoformat()}
    if code == "BIRTH-REGISTRATION":
        return {"child_name": f"Trẻ {n}", "birth_date": "2026-01-01"}
    raise ValueError(f"the year generates no details for {code}")


def _result(action: str, n: int, at: datetime | None = None) -> dict[str, Any]:
    """What the agency answering ``action`` for dossier ``n`` (at ``at``) returns."""
    # Each as its action's contract says (the desk dead-letters a result that is not), with the
    # figures the agencies would produce for the details above.
    parcel_ref = _parcel_ref(n)
    result: StepResult
    if action == "appraise":
        result = AppraisalResult(
            parcel_ref=parcel_ref,
            area_m2=Decimal("100.0"),
            land_use_code="ODT",
            table_price_vnd_per_m2=12_000_000,
            table_value_vnd=1_200_000_000,
            declared_price_vnd=1_500_000_000,
        )
    elif action == "assess":
        # As the tax service answers: the treasury's payment must name this notice and amount.
        result = AssessmentResult(notice_number=f"TB-2026-{n + 1:06d}", total_vnd=37_500_000)
    elif action == "issue_certificate":
        result = CertificateResult(
            certificate_serial=f"TA {n:06d}", holder=f"Người nhận {n}", parcel_ref=parcel_ref
        )
    elif action == "register_mortgage":
        result = MortgageResult(
            certificate_number=f"CT {n % 1_000_000:06d}", mortgagee="Ngân hàng Nông nghiệp"
        )
    elif action == "review_design":
        result = DesignReviewResult(
            parcel_ref=parcel_ref,
            built_area_m2=Decimal(str(HOUSE["built_area_m2"])),
            storeys=int(HOUSE["storeys"]),
            total_floor_area_m2=Decimal(str(HOUSE["total_floor_area_m2"])),
            building_density=Decimal("0.70"),
        )
    elif action == "issue_construction_permit":
        issued = (at or datetime(2026, 1, 1)).date()
        result = ConstructionPermitResult(
            permit_number=f"GPXD-{issued.year}-{n + 1:06d}",
            parcel_ref=parcel_ref,
            storeys=int(HOUSE["storeys"]),
            total_floor_area_m2=Decimal(str(HOUSE["total_floor_area_m2"])),
            # Works must start within 12 months (Law on Construction art. 99), as the office sets it.
            valid_until=_a_year_after(issued),
        )
    else:
        raise ValueError(f"the year has no answer for {action!r}")
    return result.wire()


def _a_year_after(day: date) -> date:
    # 29 February has no anniversary: the permit then runs to the 28th.
    if (day.month, day.day) == (2, 29):
        return day.replace(year=day.year + 1, day=28)
    return day.replace(year=day.year + 1)


def _record(topic: str, agency: str, data: DossierEvent, at: datetime, name: str) -> RecordedRecord:
    event = CloudEvent.wrap(data, source=source_uri(agency), time=at, event_id=str(uuid.uuid5(_IDS, name)))
    return RecordedRecord(
        topic=topic,
        partition=0,
        offset=0,
        timestamp_ms=int(at.timestamp() * 1000),
        key=event.key,
        headers=tuple((k, v) for k, v in event.headers()),
        value=event.value(),
    )
