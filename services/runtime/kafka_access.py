"""How a process reaches Kafka: the bootstrap address and the principal it authenticates as.

The broker refuses anonymous clients, and its ACLs let each principal read and write only the
topics its role needs (README "Security"). Every Kafka client of the system (the services'
FastStream brokers, producers and admin clients, the record/replay/dead-letter tools, the
bench) takes its settings from one :class:`KafkaAccess`, so no client can be left on an
unauthenticated connection by mistake.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram256, SASLScram512

SecurityProtocol = Literal["SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


class KafkaAccessError(ValueError):
    """The Kafka connection settings are incomplete or contradictory; the message names the variable."""


def _read_secret(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KafkaAccessError(f"KAFKA_SASL_PASSWORD_FILE={path}: {exc.strerror}") from exc


@dataclass(frozen=True, kw_only=True)
class KafkaAccess:
    """Bootstrap servers plus the credentials of one principal.

    SASL/SCRAM-SHA-512 over plain TCP by default (``make run`` and the tests bind the broker to
    127.0.0.1); ``SASL_SSL`` with ``ssl_cafile`` where the network is not trusted.
    ``PLAINTEXT`` exists only for a cluster the operator chose to run without security, and must
    be asked for by name: a missing password never silently turns security off.
    """

    bootstrap_servers: str
    username: str = ""
    password: str = ""
    security_protocol: SecurityProtocol = "SASL_PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        if self.security_protocol.startswith("SASL") and not (self.username and self.password):
            raise KafkaAccessError(
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set: the broker refuses"
                " anonymous clients (make run generates them under .run/trust/)"
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, default_bootstrap: str = "127.0.0.1:9092"
    ) -> KafkaAccess:
        """Read the ``KAFKA_*`` connection variables (README "Configuration").

        ``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``,
        ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD`` (or ``KAFKA_SASL_PASSWORD_FILE``, a file
        holding it: Docker secrets) and ``KAFKA_SSL_CAFILE``.
        """
        protocol = environ.get("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        if protocol not in ("SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT", "SSL"):
            raise KafkaAccessError(
                f"KAFKA_SECURITY_PROTOCOL={protocol!r}: use SASL_PLAINTEXT, SASL_SSL, SSL or PLAINTEXT"
            )
        mechanism = environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        if mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            raise KafkaAccessError(f"KAFKA_SASL_MECHANISM={mechanism!r}: use SCRAM-SHA-512 or SCRAM-SHA-256")
        return cls(
            bootstrap_servers=environ.get("KAFKA_BOOTSTRAP_SERVERS", default_bootstrap),
            username=environ.get("KAFKA_SASL_USERNAME", ""),
            password=environ.get("KAFKA_SASL_PASSWORD", "")
            or _read_secret(environ.get("KAFKA_SASL_PASSWORD_FILE")),
            security_protocol=protocol,  # type: ignore[arg-type]  # checked just above
            sasl_mechanism=mechanism,  # type: ignore[arg-type]
            ssl_cafile=environ.get("KAFKA_SSL_CAFILE") or None,
        )

    @classmethod
    def for_tool(cls, bootstrap_servers: str) -> KafkaAccess:
        """An operator tool's access: ``bootstrap_servers`` from its option, credentials from ``KAFKA_*``.

        Raises :class:`KafkaAccessError` naming the variables when the credentials are missing.
        """
        return cls.from_env({**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers})

    def env(self) -> dict[str, str]:
        """The environment variables that give a child process this access (see :meth:`from_env`)."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.username,
            "KAFKA_SASL_PASSWORD": self.password,
        }
        if self.ssl_cafile:
            env["KAFKA_SSL_CAFILE"] = self.ssl_cafile
        return env

    @property
    def principal(self) -> str:
        """The Kafka principal the broker sees (``User:<name>``), for messages and ACLs."""
        return f"User:{self.username}" if self.username else "User:ANONYMOUS"

    def security(self) -> BaseSecurity | None:
        """FastStream's security object for ``KafkaBroker(..., security=...)``."""
        context = self._ssl_context()
        if self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
            scram = SASLScram512 if self.sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
            return scram(
                self.username,
                self.password,
                ssl_context=context,
                use_ssl=self.security_protocol == "SASL_SSL",
            )
        if self.security_protocol == "SSL":
            return BaseSecurity(ssl_context=context, use_ssl=True)
        return None

    @property
    def servers(self) -> list[str]:
        """The bootstrap addresses one by one (``KAFKA_BOOTSTRAP_SERVERS`` is comma-separated)."""
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client: bootstrap servers and security."""
        return {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
            **parse_security(self.security()),
        }

    def librdkafka(self) -> dict[str, str]:
        """The same settings in librdkafka's names (confluent-kafka's admin client, Kafka's tools)."""
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            config |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.username,
                "sasl.password": self.password,
            }
        if self.ssl_cafile:
            config["ssl.ca.location"] = self.ssl_cafile
        return config

    def java_properties(self) -> str:
        """The same settings as a Java client's properties file (Kafka's own command-line tools)."""
        lines = [f"bootstrap.servers={self.bootstrap_servers}", f"security.protocol={self.security_protocol}"]
        if self.security_protocol.startswith("SASL"):
            module = "org.apache.kafka.common.security.scram.ScramLoginModule"
            lines += [
                f"sasl.mechanism={self.sasl_mechanism}",
                f'sasl.jaas.config={module} required username="{self.username}" password="{self.password}";',
            ]
        if self.ssl_cafile:
            lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={self.ssl_cafile}"]
        return "\n".join(lines) + "\n"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.security_protocol.endswith("SSL"):
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile)
