"""The operator console: where each dossier is, which handoff is slow, the on-time rates, its traces.

- **Read model** from Kafka only: ``intake.events`` (``DossierProgressed`` snapshots, newest
  ``updated_at`` wins; ``StepOverdue``, ``ApologyIssued``, ``DossierEscalated``) into the
  ``console`` schema. Never another service's tables.
- **Traces**: an OTLP/HTTP receiver, ``POST /v1/traces`` (``application/x-protobuf`` as SDK
  exporters send by default, or ``application/json``; gzip accepted). Spans are kept with their
  resource's ``service.name``; the ``dossier.id`` attribute ties a trace to a dossier.
- **JSON API** under ``/api`` and **pages** (server-rendered, a little vanilla JS and SVG).

Access (``auth.py``): one token, ``CONSOLE_TOKEN``; unset, a random one is generated at start
and the sign-in URL is logged. The API and ``/v1/traces`` take it as ``Authorization: Bearer``
(an exporter sets ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>``); browsers sign
in once and go by an HttpOnly cookie derived from it. The receiver is not open on localhost
alone, because in docker-compose the services reach it over the network. ``/health``,
``/metrics``, ``/clock``, the sign-in page and static files are open, as on every service.

Settings: ``CONSOLE_PORT`` (8080), ``CONSOLE_HOST`` (127.0.0.1), ``CONSOLE_TOKEN``, and the
usual ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``.
"""

from services.manifest import ServiceManifest

MANIFEST = ServiceManifest(
    name="console",
    default_port=8080,
    uid=10005,
    # It only reads what the desk publishes: nothing of its own for the AsyncAPI document.
    documented=False,
    published_port=True,
    checks_tokens=True,
    # Sign in with this token; set your own (no default token ships with the repo).
    compose_env={
        "CONSOLE_TOKEN": "${CONSOLE_TOKEN:?set CONSOLE_TOKEN (16+ characters) to sign in to the console}"
    },
)
"""This service, as the stack, the ACLs, the specification and docker-compose see it."""
