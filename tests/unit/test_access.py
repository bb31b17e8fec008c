"""The token check on its own: what it accepts, and the forgeries and mistakes it refuses."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, HTTPException

from infra.tokens import LOCAL_ISSUER, LocalIssuer
from services.runtime.access import DEFAULT_AUDIENCE, Access, Role
from services.runtime.settings import ConfigurationError


@pytest.fixture
def issuer(tmp_path: Path) -> LocalIssuer:
    return LocalIssuer(tmp_path / "tokens")


@pytest.fixture
def access(issuer: LocalIssuer) -> Access:
    return Access.from_env(issuer.env())


def refused(access: Access, token: str) -> str:
    with pytest.raises(HTTPException) as caught:
        access.verify(token)
    assert caught.value.status_code == 401
    return str(caught.value.detail).lower()


def claims(**more: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": LOCAL_ISSUER,
        "aud": DEFAULT_AUDIENCE,
        "sub": "x",
        "roles": ["operator"],
        "exp": now + 60,
    } | more


def test_a_token_from_the_issuer_names_its_holder_and_roles(issuer: LocalIssuer, access: Access) -> None:
    principal = access.verify(issuer.mint("desk_officer", "operator", subject="desk-1"))
    assert principal.subject == "desk-1"
    assert principal.roles == {"desk_officer", "operator"}


def test_forged_expired_and_misaddressed_tokens_are_refused(
    issuer: LocalIssuer, access: Access, tmp_path: Path
) -> None:
    kid, key = issuer._key()
    other = Ed25519PrivateKey.generate()
    headers = {"kid": kid}
    assert "signature" in refused(access, jwt.encode(claims(), other, algorithm="EdDSA", headers=headers))
    assert "expired" in refused(
        access, jwt.encode(claims(exp=int(time.time()) - 3600), key, "EdDSA", headers)
    )
    assert "audience" in refused(access, jwt.encode(claims(aud="another-system"), key, "EdDSA", headers))
    assert "issuer" in refused(access, jwt.encode(claims(iss="https://evil.example"), key, "EdDSA", headers))
    no_subject = claims()
    del no_subject["sub"]
    assert "sub" in refused(access, jwt.encode(no_subject, key, "EdDSA", headers))

    # Algorithm confusion: an HMAC token "signed" with the public key, and an unsigned one.
    def hand_made(alg: str, secret: bytes | None) -> str:
        signed = b".".join(
            jwt.utils.base64url_encode(json.dumps(part).encode())
            for part in ({"alg": alg, "kid": kid}, claims())
        )
        mac = hmac.new(secret, signed, hashlib.sha256).digest() if secret else b""
        return (signed + b"." + jwt.utils.base64url_encode(mac)).decode()

    refused(access, hand_made("HS256", issuer.jwks_path.read_bytes()))
    refused(access, hand_made("none", None))
    refused(access, "not a token")


def test_roles_can_come_from_a_nested_claim(issuer: LocalIssuer) -> None:
    kid, key = issuer._key()
    keycloak = Access.from_env({**issuer.env(), "AUTH_ROLES_CLAIM": "realm_access.roles"})
    token = jwt.encode(
        claims(roles=None, realm_access={"roles": ["payment_gateway"]}), key, "EdDSA", {"kid": kid}
    )
    assert keycloak.verify(token).roles == {"payment_gateway"}


def test_exactly_one_jwks_source_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="AUTH_JWKS_FILE"):
        Access.from_env({})
    with pytest.raises(ConfigurationError, match="one of"):
        Access.from_env({"AUTH_JWKS_FILE": "a", "AUTH_JWKS_URL": "http://127.0.0.1/jwks"})
    with pytest.raises(ConfigurationError, match="no such file"):
        Access.from_env({"AUTH_JWKS_FILE": str(tmp_path / "missing.json")})


@pytest.fixture
def jwks_server(issuer: LocalIssuer) -> Iterator[str]:
    """The issuer's JWKS over HTTP on 127.0.0.1, as an OIDC provider serves its jwks_uri."""
    issuer.env()
    body = issuer.jwks_path.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks"
    finally:
        server.shutdown()


def test_the_jwks_can_come_from_the_providers_url(issuer: LocalIssuer, jwks_server: str) -> None:
    access = Access.from_env({"AUTH_JWKS_URL": jwks_server, "AUTH_ISSUER": LOCAL_ISSUER})
    assert access.verify(issuer.mint("agency_officer", subject="lr-1")).roles == {"agency_officer"}
    stranger = LocalIssuer(issuer.root.parent / "elsewhere")
    refused(access, stranger.mint("operator", subject="intruder"))


async def test_an_agency_scoped_route_admits_only_that_agencys_officers(
    issuer: LocalIssuer, access: Access
) -> None:
    app = FastAPI()

    @app.get(
        "/queue",
        dependencies=[access.requires(Role.AGENCY_OFFICER, Role.OPERATOR, of_agency="land_registry")],
    )
    async def queue() -> dict[str, str]:
        return {"ok": "yes"}

    async def status(token: str) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/queue", headers={"Authorization": f"Bearer {token}"})).status_code

    assert await status(issuer.mint("agency_officer", subject="lr", agency="land_registry")) == 200
    assert await status(issuer.mint("agency_officer", subject="tax", agency="tax")) == 403
    assert await status(issuer.mint("agency_officer", subject="nobody")) == 403
    assert await status(issuer.mint("operator", subject="ops")) == 200, "operators are not scoped"
