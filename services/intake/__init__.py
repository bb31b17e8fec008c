"""The one-stop desk: receives dossiers, owns their route and slip, returns results."""

from contracts.agencies import ONE_STOP
from services.manifest import ServiceManifest

MANIFEST = ServiceManifest(
    name="intake", agency=ONE_STOP, default_port=8000, uid=10001, published_port=True, checks_tokens=True
)
"""This service, as the stack, the ACLs, the specification and docker-compose see it."""
