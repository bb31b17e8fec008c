"""A local token issuer, for ``make run`` and the tests: what an OIDC provider does in production.

It keeps one Ed25519 key under ``<trust>/tokens/`` (``issuer.pem``, mode 0600) and publishes
its public half as a JWKS (``jwks.json``) that the services read (``AUTH_JWKS_FILE``). Tokens
are short-lived JWTs naming a subject and their roles::

    python -m infra.tokens mint --role desk_officer --subject officer-1
    python -m infra.tokens mint --role agency_officer --agency land_registry --subject lr-1
    python -m infra.tokens mint --role operator --ttl-hours 8

A deployment with a real identity provider points ``AUTH_JWKS_URL`` at the provider's
``jwks_uri`` and has no use for this module.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from infra.trust import write_private
from services.runtime.access import DEFAULT_AUDIENCE, Role

LOCAL_ISSUER = "urn:dossier-routing:local-issuer"
DEFAULT_TTL_SECONDS = 8 * 3600
"""A working day: long enough for a shift, short enough that a lost token expires soon."""


@dataclass(frozen=True)
class LocalIssuer:
    """The issuer's directory (``<trust>/tokens``); the key is made on first use."""

    root: Path

    @property
    def jwks_path(self) -> Path:
        """The public keys the services verify tokens with (``AUTH_JWKS_FILE``)."""
        return self.root / "jwks.json"

    @property
    def _key_path(self) -> Path:
        return self.root / "issuer.pem"

    def env(self) -> dict[str, str]:
        """What a service needs to check this issuer's tokens."""
        self._key()
        return {"AUTH_JWKS_FILE": str(self.jwks_path), "AUTH_ISSUER": LOCAL_ISSUER}

    def _key(self) -> tuple[str, Ed25519PrivateKey]:
        if self._key_path.exists():
            key = serialization.load_pem_private_key(self._key_path.read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
        else:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_private(self._key_path, pem.decode())
        public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
        kid = _thumbprint_id(public)
        if not self.jwks_path.exists():
            jwks = {"keys": [{**public, "kid": kid, "alg": "EdDSA", "use": "sig"}]}
            write_private(self.jwks_path, json.dumps(jwks, indent=2) + "\n", mode=0o644)
        return kid, key

    def mint(
        self, *roles: str, subject: str, ttl_seconds: int = DEFAULT_TTL_SECONDS, agency: str | None = None
    ) -> str:
        """A signed token for ``subject`` with ``roles`` (and, for an officer, their ``agency``)."""
        unknown = set(roles) - {r.value for r in Role}
        if unknown:
            raise ValueError(f"unknown role {', '.join(sorted(unknown))}; roles: {', '.join(Role)}")
        kid, key = self._key()
        now = int(time.time())
        claims = {
            "iss": LOCAL_ISSUER,
            "aud": DEFAULT_AUDIENCE,
            "sub": subject,
            "roles": list(roles),
            "iat": now,
            "exp": now + ttl_seconds,
            **({"agency": agency} if agency else {}),
        }
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def _thumbprint_id(public: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an OKP key, used as its key id."""
    canonical = json.dumps({k: public[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    digest = hashes.Hash(hashes.SHA256())
    digest.update(canonical.encode())
    return jwt.utils.base64url_encode(digest.finalize()).decode()


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.tokens {init,mint}``."""
    parser = argparse.ArgumentParser(prog="python -m infra.tokens", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["init", "mint"])
    parser.add_argument("--run-dir", type=Path, default=Path(".run"), help="the deployment's run directory")
    parser.add_argument("--trust-dir", type=Path, help="the trust directory (default: <run-dir>/trust)")
    parser.add_argument("--role", action="append", default=[], help=f"one of {', '.join(Role)} (repeatable)")
    parser.add_argument("--subject", default="", help="who the token names (default: the first role)")
    parser.add_argument(
        "--agency", default=None, help="the agency an agency_officer works for (e.g. land_registry)"
    )
    parser.add_argument("--ttl-hours", type=float, default=DEFAULT_TTL_SECONDS / 3600)
    args = parser.parse_args(argv)
    issuer = LocalIssuer((args.trust_dir or args.run_dir / "trust") / "tokens")
    if args.command == "init":
        print(json.dumps(issuer.env()))
        return 0
    if not args.role:
        parser.error("give at least one --role")
    try:
        subject = args.subject or args.role[0]
        token = issuer.mint(
            *args.role, subject=subject, ttl_seconds=int(args.ttl_hours * 3600), agency=args.agency
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
