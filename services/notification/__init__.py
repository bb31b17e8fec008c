"""The notification service: everything that reaches a citizen."""

from services.manifest import ServiceManifest

LETTER_SIGNING_MOUNT = "/trust/services/notification/letter-signing"
"""Its ``LETTER_SIGNING_DIR`` in docker-compose (``infra.compose_trust`` writes the copy there)."""

MANIFEST = ServiceManifest(
    name="notification",
    default_port=8003,
    uid=10004,
    checks_tokens=True,
    compose_env={"LETTER_SIGNING_DIR": LETTER_SIGNING_MOUNT},
)
"""This service, as the stack, the ACLs, the specification and docker-compose see it."""
