"""The tax authority: assesses financial obligations and issues payment notices."""

from contracts.agencies import TAX
from services.manifest import ServiceManifest

MANIFEST = ServiceManifest(name="tax", agency=TAX, default_port=8002, uid=10003)
"""This service, as the stack, the ACLs, the specification and docker-compose see it."""
