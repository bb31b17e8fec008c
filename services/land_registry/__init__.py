"""The land registry office: appraises transfers and issues certificates."""

from contracts.agencies import LAND_REGISTRY
from services.manifest import ServiceManifest

MANIFEST = ServiceManifest(
    name="land_registry", agency=LAND_REGISTRY, default_port=8001, uid=10002, checks_tokens=True
)
"""This service, as the stack, the ACLs, the specification and docker-compose see it."""
