"""Configuration every service reads from the environment, with safe local defaults."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contracts.signing import registry_paths
from services.runtime.batches import DEFAULT_COMMIT_INTERVAL_SECONDS
from services.runtime.kafka_access import KafkaAccess, KafkaAccessError

DEFAULT_CONSUMER_BATCH_SIZE = 200
"""Records per poll unless ``CONSUMER_BATCH_SIZE`` says otherwise (the bench's batched relay uses it too)."""


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """Settings of one service process.

    Every service binds to 127.0.0.1 unless told otherwise: these are internal services and
    exposing one is a deliberate act (``<SERVICE>_HOST=0.0.0.0`` in docker-compose).
    """

    service: str
    kafka: KafkaAccess
    """The broker and this service's own principal (``KAFKA_SASL_USERNAME``/``PASSWORD``)."""
    database_url: str
    host: str
    port: int
    db_pool_size: int = 10
    """``DB_POOL_SIZE``: Postgres connections per service. The outbox relay keeps one, every
    subscription holds one for the length of a batch, and HTTP requests need the rest: with 5,
    intake's requests queued for a connection at saturation (``make bench``: 23 dossiers/s at 5,
    27 at 15, the machine's CPU then used up)."""
    consumer_stall_seconds: float = 120.0
    """``CONSUMER_STALL_SECONDS``: a subscription with records waiting whose group has committed
    nothing for this long turns ``/health`` red (aiokafka consumers can stop fetching for good
    after a broker restart or a rebalance, aiokafka #1154, with no error anywhere)."""
    consumer_batch_size: int = DEFAULT_CONSUMER_BATCH_SIZE
    """``CONSUMER_BATCH_SIZE``: at most this many records per poll, handled in one transaction.
    1 handles records one by one (slower; same results)."""
    consumer_commit_seconds: float = DEFAULT_COMMIT_INTERVAL_SECONDS
    """``CONSUMER_COMMIT_MS``: while records keep coming, a subscription commits its offsets at
    most this often (and always once it has caught up). A crash reads that much again, and the
    inbox drops what it had handled."""
    signing_key_file: Path | None = None
    """``SIGNING_KEY_FILE``: the service's Ed25519 key (a private JWK, mode 0600). Everything it
    publishes is signed with it; a service that publishes refuses to start without one."""
    key_registry: tuple[Path, ...] = ()
    """``SIGNING_KEY_REGISTRY``: JWKS files with every agency's public keys, ``:``-separated.
    Every record consumed is verified against them before anything else."""
    topic_prefix: str = ""
    """Put before every topic and consumer group name (``KAFKA_TOPIC_PREFIX``), so that two
    deployments (staging next to training, or a test next to the running system) share one
    Kafka cluster without reading each other's events. Empty in a normal deployment."""

    @property
    def kafka_bootstrap_servers(self) -> str:
        """The brokers' addresses (``KAFKA_BOOTSTRAP_SERVERS``)."""
        return self.kafka.bootstrap_servers

    @classmethod
    def from_env(cls, service: str, *, default_port: int) -> ServiceSettings:
        """Read ``KAFKA_*`` (address, credentials, prefix), ``DATABASE_URL``, ``<SERVICE>_PORT``...

        Tracing and metrics read the standard ``OTEL_*`` variables (see ``telemetry.py``).
        """
        prefix = service.upper()
        database_url = os.environ.get("DATABASE_URL", "")
        if not database_url:
            raise ConfigurationError(
                "DATABASE_URL is not set (make run sets it; e.g. postgresql://user@127.0.0.1/db)"
            )
        port_text = os.environ.get(f"{prefix}_PORT", str(default_port))
        try:
            port = int(port_text)
        except ValueError as exc:
            raise ConfigurationError(f"{prefix}_PORT={port_text!r} is not a port number") from exc
        topic_prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
        if not re.fullmatch(r"[A-Za-z0-9._-]*", topic_prefix):
            raise ConfigurationError(
                f"KAFKA_TOPIC_PREFIX={topic_prefix!r}: only letters, digits, '.', '_' and '-' are allowed"
            )
        try:
            kafka = KafkaAccess.from_env(os.environ)
        except KafkaAccessError as exc:
            raise ConfigurationError(str(exc)) from exc
        registry = registry_paths(os.environ.get("SIGNING_KEY_REGISTRY", ""))
        if not registry:
            raise ConfigurationError(
                "SIGNING_KEY_REGISTRY is not set: every record is verified against the agencies' public"
                " keys (make run generates .run/trust/key-registry.json)"
            )
        key_file = os.environ.get("SIGNING_KEY_FILE", "")
        return cls(
            service=service,
            kafka=kafka,
            signing_key_file=Path(key_file) if key_file else None,
            key_registry=registry,
            database_url=database_url,
            host=os.environ.get(f"{prefix}_HOST", "127.0.0.1"),
            port=port,
            db_pool_size=_count("DB_POOL_SIZE", "10"),
            consumer_stall_seconds=_seconds("CONSUMER_STALL_SECONDS", "120"),
            consumer_batch_size=_count("CONSUMER_BATCH_SIZE", str(DEFAULT_CONSUMER_BATCH_SIZE)),
            consumer_commit_seconds=_count("CONSUMER_COMMIT_MS", "100") / 1000,
            topic_prefix=topic_prefix,
        )


def _seconds(name: str, default: str) -> float:
    """A positive number of seconds from the environment variable ``name``."""
    return _positive(name, default, float, "a positive number of seconds")


def _count(name: str, default: str) -> int:
    """A positive whole number from the environment variable ``name``."""
    return int(_positive(name, default, int, "a positive whole number"))


def _positive(name: str, default: str, parse: Callable[[str], float], what: str) -> float:
    text = os.environ.get(name, default)
    try:
        value = parse(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise ConfigurationError(f"{name}={text!r} is not {what}")
    return value
