"""The secrets of one deployment, generated at first start and kept under ``<run_dir>/trust/``.

Nothing here is committed: passwords and private keys are made on the machine that runs the
system, written with mode 0600 in a 0700 directory, and handed to each process through its
environment. Layout:

    trust/kafka-credentials.json   SCRAM passwords of every Kafka principal, and the controller's
    trust/signing/<agency>/        each agency's Ed25519 signing keys (private, one file per key id)
    trust/key-registry.json        the public half of every signing key (readable by all)
    trust/tokens/                  the local token issuer (infra.tokens)
    trust/agencies.json            agencies onboarded with software of their own (infra.agencies)
    trust/agencies/<agency>.env    what each of them was given (mode 0600)
    trust/letter-signing/          the notification service's LETTER_SIGNING_DIR: per agency a
                                   key (0600), a signing certificate and its test CA's certificate
    trust/letter-ca/               the private keys of those test CAs (infra.letter_ca)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.signing import PublicKey, SigningKey, jwks_document, read_jwks, with_status
from infra.kafka.node import ADMIN_PRINCIPAL, BrokerSecurity
from services.runtime.kafka_access import KafkaAccess

if TYPE_CHECKING:
    from services.intake.domain.catalog import AgencyInfo

CONTROLLER = "controller"
"""Not a client principal: the password of the KRaft controller listener."""


def write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` readable by the owner alone (0600), atomically.

    The file is created 0600 before anything is written, so a secret is never readable by others,
    not even for a moment; a crash leaves the old file or the new one, never half of one.
    ``mode`` 0o644 writes a public document (the key registry) the same safe way.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class TrustStore:
    """The deployment's secrets directory (``<run_dir>/trust``)."""

    root: Path

    @property
    def kafka_credentials_path(self) -> Path:
        """SCRAM passwords by principal (mode 0600)."""
        return self.root / "kafka-credentials.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (make run, a test session and an onboarding command may overlap)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def kafka_password(self, principal: str) -> str:
        """The principal's SCRAM password, generated and stored the first time it is asked for."""
        passwords = self._kafka_passwords()
        if principal in passwords:
            return passwords[principal]
        with self._locked():
            passwords = self._kafka_passwords()
            if principal not in passwords:
                passwords[principal] = secrets.token_urlsafe(32)
                text = json.dumps(passwords, indent=2, sort_keys=True) + "\n"
                write_private(self.kafka_credentials_path, text)
        return passwords[principal]

    def kafka_principals(self) -> list[str]:
        """Every client principal with a stored password (not the controller)."""
        return sorted(p for p in self._kafka_passwords() if p != CONTROLLER)

    def _kafka_passwords(self) -> dict[str, str]:
        try:
            stored = json.loads(self.kafka_credentials_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in stored.items()}

    def broker_security(self) -> BrokerSecurity:
        """What a broker of this deployment starts with."""
        return BrokerSecurity(
            admin_password=self.kafka_password(ADMIN_PRINCIPAL),
            controller_password=self.kafka_password(CONTROLLER),
        )

    def kafka_access(self, bootstrap_servers: str, principal: str) -> KafkaAccess:
        """How ``principal`` reaches the brokers at ``bootstrap_servers``."""
        return KafkaAccess(
            bootstrap_servers=bootstrap_servers, username=principal, password=self.kafka_password(principal)
        )

    def agencies(self) -> list[str]:
        """Agencies onboarded with software of their own (``python -m infra.agencies add``)."""
        try:
            return sorted(json.loads((self.root / "agencies.json").read_text(encoding="utf-8")))
        except FileNotFoundError:
            return []

    def remember_agency(self, agency: str) -> None:
        """Keep ``agency`` among the onboarded, so every provisioning grants it again."""
        with self._locked():
            known = set(self.agencies()) | {agency}
            write_private(self.root / "agencies.json", json.dumps(sorted(known)) + "\n")

    @property
    def key_registry_path(self) -> Path:
        """The public half of every signing key of the deployment (a JWKS, readable by all)."""
        return self.root / "key-registry.json"

    def _key_path(self, agency: str, key_id: str) -> Path:
        return self.root / "signing" / agency / f"{key_id}.jwk.json"

    def registry(self) -> list[PublicKey]:
        """The keys in the registry file."""
        return read_jwks(self.key_registry_path)

    def _write_registry(self, keys: list[PublicKey]) -> None:
        text = json.dumps(jwks_document(keys), indent=2) + "\n"
        write_private(self.key_registry_path, text, mode=0o644)

    def signing_key_path(self, agency: str) -> Path:
        """The file of ``agency``'s active signing key; the first call makes the key."""
        with self._locked():
            active = [k for k in self.registry() if k.agency == agency and k.status == "active"]
            if active:
                return self._key_path(agency, active[-1].key_id)
            return self._rotate(agency)

    def signing_key(self, agency: str) -> SigningKey:
        """``agency``'s active signing key (made on first use)."""
        return SigningKey.load(self.signing_key_path(agency))

    def rotate(self, agency: str) -> Path:
        """A new active key for ``agency``; its keys so far are retired, still verifying what they signed."""
        with self._locked():
            return self._rotate(agency)

    def _rotate(self, agency: str) -> Path:
        key = SigningKey.generate(agency)
        path = self._key_path(agency, key.key_id)
        write_private(path, json.dumps(key.private_jwk(), indent=2) + "\n")
        keys = [
            with_status(k, "retired") if k.agency == agency and k.status == "active" else k
            for k in self.registry()
        ]
        self._write_registry([*keys, key.public])
        return path

    @property
    def letter_signing_path(self) -> Path:
        """Where the agencies' letter-signing keys and certificates are (``LETTER_SIGNING_DIR``)."""
        return self.root / "letter-signing"

    def letter_signing_dir(self, agencies: Mapping[str, AgencyInfo]) -> Path:
        """``LETTER_SIGNING_DIR`` with a test CA and certificate for each of ``agencies`` (the catalog's).

        Made the first time an agency is asked for, then kept (see :mod:`infra.letter_ca`).
        """
        # Imported here: it loads the catalog and pyHanko, which only the letters' signer needs.
        from infra.letter_ca import ensure_test_certificates

        with self._locked():
            ensure_test_certificates(self.letter_signing_path, self.root / "letter-ca", agencies)
        return self.letter_signing_path

    def revoke(self, key_id: str) -> PublicKey:
        """Mark a key revoked: nothing it signed verifies any more. KeyError if there is no such key."""
        with self._locked():
            keys = self.registry()
            if key_id not in {k.key_id for k in keys}:
                raise KeyError(key_id)
            revoked = [with_status(k, "revoked") if k.key_id == key_id else k for k in keys]
            self._write_registry(revoked)
        return next(k for k in revoked if k.key_id == key_id)
