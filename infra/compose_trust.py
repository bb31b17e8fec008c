"""The secrets of the docker-compose deployment: ``python -m infra.compose_trust --trust-dir /trust``.

``docker-compose.yml`` runs this once before anything else (the one-shot ``trust-init`` service,
as root, on the ``trust`` volume). It does what ``make run`` does before it starts the broker
(:class:`infra.stack.Stack`), for containers that cannot share a run directory:

- the deployment's :class:`~infra.trust.TrustStore` (SCRAM passwords of every principal the ACLs
  of ``infra/kafka/acls.py`` name, the admin super user and the controller; a signing key for
  every service that publishes; the key registry), owned by :data:`TRUST_UID`, which the
  one-shot ``provision`` service runs as;
- ``kafka/``, readable by the broker's user alone (:data:`KAFKA_UID`): ``server.properties`` with
  SASL/SCRAM-SHA-512 on every client listener, SASL/PLAIN on the controller listener, the
  StandardAuthorizer with ``allow.everyone.if.no.acl.found=false`` and no topic auto-creation
  (:class:`infra.kafka.node.BrokerSecurity`, as ``make run``); ``start.sh``, which formats the
  storage with the admin's SCRAM credentials on first start (KRaft reads them from the metadata
  log, so they must be there before the broker can authenticate anyone) and refuses storage
  formatted for another admin password; ``admin.properties`` for the healthcheck;
- ``services/<name>/``, readable by that service's container user alone (:func:`service_uids`):
  ``kafka-password`` and, for a service that publishes, ``signing-key.jwk.json`` (a copy of its
  agency's active key, so a rotated key is picked up by the next ``docker compose up``); for
  the notification service, ``letter-signing/``: a copy of every agency's letter-signing key and
  certificate (a test CA each, :mod:`infra.letter_ca`; replace them with the real ones);
  ``services/operator/operator.env`` for the operators' tools.

The key registry (``key-registry.json``) is readable by all. Everything else is mode 0600 in
0700 directories. Running it again changes nothing: passwords, keys and the cluster id are made
once and kept. Ownership is only set when run as root (in the container); elsewhere (the tests)
the files stay the caller's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import services.notification
from infra.kafka.acls import declared_grants, principals_of
from infra.kafka.node import ADMIN_PRINCIPAL, SASL_MECHANISM
from infra.letter_ca import catalog_agencies
from infra.stack import service_agencies
from infra.tokens import LocalIssuer
from infra.trust import TrustStore, write_private
from services import manifest

BOOTSTRAP_SERVERS = "kafka:9092"
"""Where containers reach the broker (the ``BROKER`` listener)."""
HOST_BOOTSTRAP_SERVERS = "127.0.0.1:9094"
"""Where the host reaches the broker (the ``HOST`` listener, published on 127.0.0.1 only)."""
KAFKA_DATA_DIR = "/var/lib/kafka/data"
"""``log.dirs`` in the broker's container (the ``kafka-data`` volume)."""

KAFKA_UID = 1000
"""``appuser`` of the apache/kafka image; docker-compose.yml runs the broker as this user."""
TRUST_UID = 10000
"""Owner of the trust store itself: the ``provision`` service runs as this user."""
OPERATOR = "operator"
OPERATOR_UID = 10009
"""The operators' tools' user (``services/operator/operator.env``)."""


def service_uids() -> dict[str, int]:
    """The container user of each service (``user:`` in docker-compose.yml) and the operator's.

    The services' come from their manifests. One user per principal, so no service can read
    another's password or signing key on the shared volume.
    """
    return {**{m.name: m.uid for m in manifest.manifests()}, OPERATOR: OPERATOR_UID}


SERVICE_UIDS: dict[str, int] = service_uids()
""":func:`service_uids` when this module was imported."""
PASSWORD_FILE = "kafka-password"
SIGNING_KEY_FILE = "signing-key.jwk.json"
TOKENS_JWKS = Path("tokens") / "jwks.json"
"""The public keys of the local token issuer (``infra.tokens``), for the services' AUTH_JWKS_FILE."""


def _cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):
            return cid


@dataclass(frozen=True)
class ComposeTrust:
    """The ``trust`` volume of docker-compose.yml, mounted at ``root``."""

    root: Path
    topic_prefix: str = ""

    @property
    def store(self) -> TrustStore:
        """The deployment's trust store (the volume's root)."""
        return TrustStore(self.root)

    @property
    def kafka_dir(self) -> Path:
        """What the broker reads: its configuration, start script and the healthcheck's client config."""
        return self.root / "kafka"

    def service_dir(self, name: str) -> Path:
        """What service ``name`` (or ``operator``) reads: its password and signing key."""
        return self.root / "services" / name

    def password_file(self, name: str) -> Path:
        """``KAFKA_SASL_PASSWORD_FILE`` of service ``name``."""
        return self.service_dir(name) / PASSWORD_FILE

    def signing_key_file(self, name: str) -> Path:
        """``SIGNING_KEY_FILE`` of service ``name`` (only services that publish have one)."""
        return self.service_dir(name) / SIGNING_KEY_FILE

    def letter_signing_dir(self) -> Path:
        """The notification service's ``LETTER_SIGNING_DIR``: its copy of the agencies' letter keys."""
        return self.service_dir(services.notification.MANIFEST.name) / "letter-signing"

    def principals(self) -> list[str]:
        """Every principal the deployment's ACLs name (services, onboarded agencies, operator)."""
        return principals_of(declared_grants(self.topic_prefix, self.store.agencies()))

    def service_environment(self, name: str) -> dict[str, str]:
        """The security settings of service ``name``'s container (as docker-compose.yml sets them)."""
        env = {
            "KAFKA_SASL_USERNAME": name,
            "KAFKA_SASL_PASSWORD_FILE": str(self.password_file(name)),
            "SIGNING_KEY_REGISTRY": str(self.store.key_registry_path),
        }
        if name in service_agencies():
            env["SIGNING_KEY_FILE"] = str(self.signing_key_file(name))
        if name == services.notification.MANIFEST.name:
            env["LETTER_SIGNING_DIR"] = str(self.letter_signing_dir())
        return env

    def cluster_id(self) -> str:
        """The Kafka cluster id, made once (the storage is formatted with it)."""
        path = self.kafka_dir / "cluster-id"
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            cid = _cluster_id()
            write_private(path, cid + "\n")
            return cid

    def broker_properties(self) -> dict[str, str]:
        """``server.properties`` of the broker container: the settings of ``make run``'s broker.

        Two client listeners, both SASL/SCRAM-SHA-512: ``BROKER`` (``kafka:9092``, containers and
        the broker itself) and ``HOST`` (``127.0.0.1:9094`` once published); the controller
        listener is bound to the container's loopback.
        """
        security = self.store.broker_security().properties()
        scram_login = security["listener.name.broker.scram-sha-512.sasl.jaas.config"]
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:9093",
            "listeners": "BROKER://0.0.0.0:9092,HOST://0.0.0.0:9094,CONTROLLER://127.0.0.1:9093",
            "advertised.listeners": f"BROKER://{BOOTSTRAP_SERVERS},HOST://{HOST_BOOTSTRAP_SERVERS}",
            "controller.listener.names": "CONTROLLER",
            **security,
            "listener.security.protocol.map": (
                "BROKER:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
            ),
            # Every SASL listener needs a JAAS entry of its own, even though SCRAM users live in
            # the metadata log.
            "listener.name.host.scram-sha-512.sasl.jaas.config": scram_login,
            "log.dirs": KAFKA_DATA_DIR,
            "num.partitions": "6",
            # One broker: a factor above 1 makes the internal topics uncreatable.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
        }

    def server_properties(self) -> str:
        """The broker's ``server.properties`` text."""
        header = "# Generated by infra.compose_trust (trust-init); edits are overwritten.\n"
        return header + "".join(f"{k}={v}\n" for k, v in self.broker_properties().items())

    def admin_fingerprint(self) -> str:
        """SHA-256 of the admin password: what the storage was formatted for."""
        return hashlib.sha256(self.store.kafka_password(ADMIN_PRINCIPAL).encode()).hexdigest()

    def start_script(self) -> str:
        """The broker container's command: format once with the admin's SCRAM credentials, then start."""
        admin = self.store.kafka_password(ADMIN_PRINCIPAL)
        scram = f"{SASL_MECHANISM}=[name={ADMIN_PRINCIPAL},password={admin}]"
        return f"""#!/bin/sh
# Generated by infra.compose_trust (trust-init); edits are overwritten. Holds the admin password.
set -eu
KAFKA_HOME="${{KAFKA_HOME:-/opt/kafka}}"
DATA="${{KAFKA_DATA_DIR:-{KAFKA_DATA_DIR}}}"  # log.dirs of server.properties
CONFIG="$(cd "$(dirname "$0")" && pwd)/server.properties"
MARKER="$DATA/admin-credentials.sha256"
if [ ! -f "$DATA/meta.properties" ]; then
  # KRaft: the admin's SCRAM credentials go into the metadata log when the storage is formatted.
  "$KAFKA_HOME/bin/kafka-storage.sh" format --config "$CONFIG" --cluster-id '{self.cluster_id()}' \\
    --add-scram '{scram}'
  echo '{self.admin_fingerprint()}' > "$MARKER"
fi
if [ "$(cat "$MARKER" 2>/dev/null || true)" != '{self.admin_fingerprint()}' ]; then
  echo "the Kafka storage in $DATA was formatted without SASL/SCRAM or for other credentials" \\
    "(the trust volume was made anew); remove it: docker compose down -v" >&2
  exit 1
fi
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$CONFIG"
"""

    def write(self) -> None:
        """Create or complete everything under ``root`` (idempotent); set owners when run as root."""
        store = self.store
        for principal in [*self.principals(), ADMIN_PRINCIPAL]:
            store.kafka_password(principal)
        store.broker_security()  # the controller's password
        write_private(self.kafka_dir / "server.properties", self.server_properties())
        write_private(self.kafka_dir / "start.sh", self.start_script(), mode=0o700)
        admin = store.kafka_access(BOOTSTRAP_SERVERS, ADMIN_PRINCIPAL)
        write_private(self.kafka_dir / "admin.properties", admin.java_properties())
        for name in service_uids():
            write_private(self.password_file(name), store.kafka_password(name) + "\n")
        for name, agency in service_agencies().items():
            key = store.signing_key_path(agency).read_text(encoding="utf-8")
            write_private(self.signing_key_file(name), key)
        for source in store.letter_signing_dir(catalog_agencies()).iterdir():
            write_private(self.letter_signing_dir() / source.name, source.read_text(encoding="utf-8"))
        operator = {**store.kafka_access(BOOTSTRAP_SERVERS, OPERATOR).env()}
        operator["SIGNING_KEY_REGISTRY"] = str(store.key_registry_path)
        write_private(
            self.service_dir(OPERATOR) / "operator.env", "".join(f"{k}={v}\n" for k, v in operator.items())
        )
        LocalIssuer(self.root / "tokens").env()  # the token issuer's key and public JWKS
        self._open_public_paths()
        if os.geteuid() == 0:
            self.set_owners()

    def _open_public_paths(self) -> None:
        """Let every container reach what is public: the key registry and the token issuer's JWKS."""
        for directory in (self.root, self.root / "services"):
            directory.chmod(0o711)  # traverse, not list
        jwks = self.root / TOKENS_JWKS
        if jwks.exists():
            jwks.parent.chmod(0o711)
            jwks.chmod(0o644)

    def owner(self, path: Path) -> int:
        """The user that owns ``path`` (under ``root``) in the containers."""
        parts = path.relative_to(self.root).parts
        if parts[:1] == ("kafka",):
            return KAFKA_UID
        if parts[:1] == ("services",) and len(parts) > 1:
            return service_uids()[parts[1]]
        return TRUST_UID

    def set_owners(self) -> None:
        """Give each file to the container user that reads it (needs root)."""
        for directory, _, files in os.walk(self.root):
            for path in [Path(directory), *(Path(directory) / f for f in files)]:
                uid = self.owner(path)
                os.chown(path, uid, uid, follow_symlinks=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.compose_trust --trust-dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m infra.compose_trust", description=__doc__.split("\n")[0])
    parser.add_argument("--trust-dir", type=Path, required=True, help="the trust volume's mount point")
    parser.add_argument("--topic-prefix", default=os.environ.get("KAFKA_TOPIC_PREFIX", ""))
    args = parser.parse_args(argv)
    trust = ComposeTrust(args.trust_dir, args.topic_prefix)
    trust.write()
    print(
        f"trust store ready in {args.trust_dir}: {len(trust.principals())} Kafka principals,"
        f" signing keys for {', '.join(sorted(service_agencies()))}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
