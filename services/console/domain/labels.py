"""Vietnamese labels for the codes the events carry; an unknown code is shown as it is.

The names of agencies, actions and outcomes come from the procedure catalog
(``services/intake/catalog/procedures.yaml``), the one place a new agency is described: the
console copies none of them. It reads the catalog file once, when its pages are built at start
(a broken catalog stops the console there, not on the first page). The console's own codes
(statuses, levels, lateness) are named here.

A code the catalog does not name (an event older than the catalog entry, or the citizen) is
shown as it is: normal, not an error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from contracts.agencies import CITIZEN
from services.intake.domain.catalog import CATALOG_FILE, Catalog

STATUSES: Final = {
    "received": "Đã tiếp nhận",
    "processing": "Đang xử lý",
    "awaiting_supplement": "Chờ bổ sung",
    "awaiting_payment": "Chờ thực hiện nghĩa vụ tài chính",
    "done": "Đã giải quyết",
    "returned": "Đã trả kết quả",
    "rejected": "Từ chối",
    "withdrawn": "Đã rút",
}

PARTIES: Final = {CITIZEN: "Công dân"}
"""Who takes part in a route without being an agency of the catalog."""

LEVELS: Final = {"city": "Cấp thành phố", "ward": "Cấp phường, xã"}

APOLOGY_KINDS: Final = {
    "late": "Trễ hẹn",
    "repeat_supplement_request": "Yêu cầu bổ sung hồ sơ lần thứ hai",
    "unlisted_document_requested": "Yêu cầu giấy tờ ngoài thành phần hồ sơ",
    "document_lost": "Làm mất, hư hỏng hồ sơ",
    "result_corrected": "Kết quả sai sót phải đính chính",
}
"""Why a letter apologises: lateness, or a fault's kind (``contracts.events.FaultKind``)."""

LATENESS: Final = {
    "on_time": "Đúng hạn",
    "late": "Trễ hạn",
    "overdue": "Quá hạn",
    "in_time": "Trong hạn",
}


@dataclass(frozen=True)
class CatalogNames:
    """The display names the catalog gives agencies, actions, step outcomes and procedures."""

    agencies: dict[str, str]
    actions: dict[str, str]
    outcomes: dict[str, str]
    procedures: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: Catalog) -> CatalogNames:
        """The names in ``catalog`` (agencies by their short name), with the non-agency parties."""
        agencies = {code: info.display_name for code, info in catalog.agencies.items()}
        return cls(
            agencies=PARTIES | agencies,
            actions=dict(catalog.actions),
            outcomes=dict(catalog.outcomes),
            procedures={p.code: p.name for p in catalog.procedures},
        )


@functools.cache
def catalog_names(path: Path = CATALOG_FILE) -> CatalogNames:
    """The catalog's display names, read once per process (at start: :func:`pages_router` asks)."""
    return CatalogNames.of(Catalog.load(path))


def status(code: str) -> str:
    """A dossier status as one-stop portals print it."""
    return STATUSES.get(code, code)


def agency(code: str) -> str:
    """An agency's short name, from the catalog."""
    return catalog_names().agencies.get(code, code)


def procedure(code: str) -> str:
    """A procedure's name, from the catalog."""
    return catalog_names().procedures.get(code, code)


def level(code: str) -> str:
    """City or ward level."""
    return LEVELS.get(code, code)


def action(code: str) -> str:
    """A step of a route, from the catalog."""
    return catalog_names().actions.get(code, code)


def lateness(code: str) -> str:
    """On time, late, overdue, in time."""
    return LATENESS.get(code, code)


def outcome(code: str) -> str:
    """What an agency answered for a step (done, needs a supplement, rejected), from the catalog."""
    return catalog_names().outcomes.get(code, code)
