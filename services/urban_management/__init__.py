"""The urban management office (Phòng Quản lý đô thị): reviews house designs, issues building permits."""

from contracts.agencies import URBAN_MANAGEMENT
from services.manifest import ServiceManifest

MANIFEST = ServiceManifest(name="urban_management", agency=URBAN_MANAGEMENT, default_port=8004, uid=10006)
"""This service, as the stack, the ACLs, the specification and docker-compose see it."""
