"""Who takes part in a route.

Agencies are open-ended data, not an enum: a new agency plugs in by appearing in the
procedure catalog and subscribing to its handoff topic.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

Agency = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,39}$", examples=["land_registry"])]
"""An agency's machine name: lower-case, also used in topic names and CloudEvents sources."""

ONE_STOP: Final = "one_stop"
"""The one-stop desk (bộ phận một cửa), run by the intake service."""
LAND_REGISTRY: Final = "land_registry"
"""The land registry office (văn phòng đăng ký đất đai)."""
TAX: Final = "tax"
"""The tax authority (chi cục thuế)."""
URBAN_MANAGEMENT: Final = "urban_management"
"""The urban management office (phòng quản lý đô thị): building permits for houses."""
NOTIFICATION: Final = "notification"
"""The service that writes to citizens."""
CITIZEN: Final = "citizen"
"""Not an agency: the applicant, whose steps (paying) pause the clock."""


SOURCE_PREFIX: Final = "/vn/gov/agencies/"


def source_uri(agency: str) -> str:
    """The CloudEvents ``source`` of everything an agency publishes."""
    return f"{SOURCE_PREFIX}{agency}"


def agency_of(source: str) -> str | None:
    """The agency a CloudEvents ``source`` names (None if it names none)."""
    return source.removeprefix(SOURCE_PREFIX) if source.startswith(SOURCE_PREFIX) else None
