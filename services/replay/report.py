"""The year's report in the seed's terms, from what the system recorded, beside what was generated.

Read from the operator console's read model (``console.dossiers``: level, procedure, on time;
``console.slip_rows``: each agency's steps, due and done) and the notification service's letters
(``notification.notices`` of kind ``apology``): the figures an operator and a citizen would see,
not the generator's own bookkeeping.

Rows by level and field count dossiers against the date on their receipt. Rows by agency count
the dossiers that passed through the agency (the desk included): settled there when all its
steps are done, late there when one of its steps was answered after its due time, and the
apology letters the agency signed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from services.intake.domain.catalog import Catalog
from services.replay.year import GeneratedYear


@dataclass
class Line:
    """One row of the report."""

    received: int = 0
    settled: int = 0
    on_time: int = 0
    late: int = 0
    apologies: int = 0

    @property
    def share_on_time(self) -> str:
        """Settled on time over settled, as the seed counts it."""
        return f"{100 * self.on_time / self.settled:.1f}%" if self.settled else "-"


@dataclass
class YearReport:
    """Rows by level, by (level, field) and by agency."""

    levels: dict[str, Line] = field(default_factory=dict)
    fields: dict[tuple[str, str], Line] = field(default_factory=dict)
    agencies: dict[str, Line] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, Line]]:
        """Every row with its label, in reading order."""
        rows = [(f"level {level}", line) for level, line in sorted(self.levels.items())]
        rows += [(f"  {level} / {name}", line) for (level, name), line in sorted(self.fields.items())]
        rows += [(f"agency {agency}", line) for agency, line in sorted(self.agencies.items())]
        return rows

    def figures(self) -> dict[str, tuple[int, int, int, int, int]]:
        """The rows as plain tuples, to compare two reports."""
        return {
            label.strip(): (line.received, line.settled, line.on_time, line.late, line.apologies)
            for label, line in self.rows()
        }


def expected(year: GeneratedYear) -> YearReport:
    """What the generated stream should produce: every dossier settled, late as generated."""
    report = YearReport()
    for dossier in year.dossiers:
        late = dossier.late_agency is not None
        for line in (
            report.levels.setdefault(dossier.level, Line()),
            report.fields.setdefault((dossier.level, dossier.field), Line()),
        ):
            _count(line, settled=True, on_time=not late, apologies=int(late))
        for agency in dossier.agencies:
            at_fault = agency == dossier.late_agency
            _count(report.agencies.setdefault(agency, Line()), True, not at_fault, int(at_fault))
    return report


async def measured(database_url: str, catalog: Catalog) -> YearReport:
    """The same report from the system's own tables (console read model, notification letters)."""
    conn = await asyncpg.connect(database_url)
    try:
        dossiers = await conn.fetch(
            "SELECT id, procedure_code, level, on_time, returned_at IS NOT NULL AS settled"
            " FROM console.dossiers"
        )
        letters = Counter(
            r["dossier_id"]
            for r in await conn.fetch("SELECT dossier_id FROM notification.notices WHERE kind = 'apology'")
        )
        signed = {
            r["dossier_id"]: r["issued_by_agency"]
            for r in await conn.fetch("SELECT dossier_id, issued_by_agency FROM console.apologies")
        }
        passages = await conn.fetch(
            "SELECT dossier_id, to_agency AS agency,"
            " bool_and(completed_at IS NOT NULL) AS settled, bool_or(late_by_days > 0) AS late"
            " FROM console.slip_rows WHERE to_agency <> 'citizen' GROUP BY dossier_id, to_agency"
        )
    finally:
        await conn.close()
    report = YearReport()
    for row in dossiers:
        procedure = catalog.get(row["procedure_code"])
        field_name = procedure.field if procedure is not None else row["procedure_code"]
        on_time = bool(row["on_time"]) and row["settled"]
        for line in (
            report.levels.setdefault(row["level"], Line()),
            report.fields.setdefault((row["level"], field_name), Line()),
        ):
            _count(line, row["settled"], on_time, letters[row["id"]])
    for row in passages:
        dossier, agency = row["dossier_id"], row["agency"]
        apologies = letters[dossier] if signed.get(dossier) == agency else 0
        _count(report.agencies.setdefault(agency, Line()), row["settled"], not row["late"], apologies)
    return report


def _count(line: Line, settled: bool, on_time: bool, apologies: int) -> None:
    line.received += 1
    line.settled += int(settled)
    line.on_time += int(settled and on_time)
    line.late += int(settled and not on_time)
    line.apologies += apologies


def render(system: YearReport, generated: YearReport) -> str:
    """The table: the system's figures, and whether each row matches the generated one."""
    want = generated.figures()
    rows = system.rows()
    width = max([44, *(len(label) for label, _ in rows), *(len(label) + 2 for label in want)])
    header = (
        f"{'':{width}} {'received':>9} {'settled':>9} {'on time':>9} {'late':>7} {'apologies':>9}"
        f" {'on time %':>9}  matches generated"
    )
    lines = [header, "-" * len(header)]
    for label, line in rows:
        wanted = want.get(label.strip())
        ok = wanted == (line.received, line.settled, line.on_time, line.late, line.apologies)
        lines.append(
            f"{label:{width}} {line.received:>9,} {line.settled:>9,} {line.on_time:>9,} {line.late:>7,}"
            f" {line.apologies:>9,} {line.share_on_time:>9}  {'yes' if ok else f'NO, generated {wanted}'}"
        )
    missing = sorted(set(want) - set(system.figures()))
    lines += [f"{label:{width}} missing from the system, generated {want[label]}" for label in missing]
    return "\n".join(lines)
