"""The notification service: everything that reaches a citizen."""

from services.manifest import ServiceManifest

MANIFEST = ServiceManifest(name="notification", default_port=8003, uid=10004, checks_tokens=True)
"""This service, as the stack, the ACLs, the specification and docker-compose see it."""
