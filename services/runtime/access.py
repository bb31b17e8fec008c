"""Who may call a service's HTTP API: bearer tokens (JWTs) checked against the issuer's JWKS.

In production the issuer is the government's OIDC provider (its JWKS by URL, ``AUTH_JWKS_URL``);
``make run`` and the tests use a local issuer whose public keys are a file (``AUTH_JWKS_FILE``,
made by :mod:`infra.tokens`). A token names its holder (``sub``) and their roles (the ``roles``
claim, or the one ``AUTH_ROLES_CLAIM`` names, dotted for nested claims such as Keycloak's
``realm_access.roles``), and an officer's agency (the ``agency`` claim, ``AUTH_AGENCY_CLAIM``).
A route declares the roles it admits with :meth:`Access.requires`:
no or bad token → 401, a valid token without one of the roles → 403. The check runs before the
route reads its body or looks anything up, so neither answer says whether a dossier exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.runtime.settings import ConfigurationError

ALGORITHMS = ("EdDSA", "ES256", "RS256")
"""Asymmetric algorithms only: a service never holds a key that could mint tokens."""
DEFAULT_AUDIENCE = "dossier-routing"
LEEWAY_SECONDS = 30
"""Clock skew tolerated between the issuer and the service."""


class Role(StrEnum):
    """The roles a token can carry, and what each is for."""

    CITIZEN = "citizen"
    """Files a dossier through the online portal."""
    DESK_OFFICER = "desk_officer"
    """Works the one-stop desk: files at the counter, asks for and takes supplements, sees dossiers."""
    AGENCY_OFFICER = "agency_officer"
    """Works in an agency (land registry, tax); reads the dossiers handed to it."""
    PAYMENT_GATEWAY = "payment_gateway"
    """The treasury or payment gateway confirming that a tax notice was paid."""
    OPERATOR = "operator"
    """Runs the system: sees dossiers and notices, moves a virtual clock."""


@dataclass(frozen=True)
class Principal:
    """The holder of a verified token."""

    subject: str
    roles: frozenset[str]
    agency: str | None = None
    """The agency an officer works for (the ``agency`` claim); an agency's queue admits only its own."""


class _Keys:
    """The issuer's public keys: a JWKS file (re-read when it changes) or a JWKS URL (cached)."""

    def __init__(self, *, file: Path | None = None, url: str | None = None) -> None:
        self._file = file
        self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300) if url else None
        self._loaded: tuple[float, jwt.PyJWKSet] | None = None

    def signing_key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        for candidate in self._jwks().keys:
            if candidate.key_id == kid:
                return candidate.key
        raise jwt.InvalidTokenError(f"no key {kid!r} in the issuer's JWKS")

    def _jwks(self) -> jwt.PyJWKSet:
        assert self._file is not None
        changed = self._file.stat().st_mtime
        if self._loaded is None or self._loaded[0] != changed:
            # A key added by rotation shows up without a restart.
            self._loaded = (changed, jwt.PyJWKSet.from_dict(json.loads(self._file.read_text())))
        return self._loaded[1]


_bearer = HTTPBearer(auto_error=False, description="A JWT from the issuer (`make run` prints how to get one)")


@dataclass
class Access:
    """The token check of one service."""

    keys: _Keys
    issuer: str | None
    audience: str
    roles_claim: str = "roles"
    agency_claim: str = "agency"
    _dependencies: dict[tuple[frozenset[Role], str | None], Callable[..., Awaitable[Principal]]] = field(
        default_factory=dict
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Access:
        """Read ``AUTH_JWKS_FILE`` or ``AUTH_JWKS_URL``, and ``AUTH_ISSUER``/``AUDIENCE``/``ROLES_CLAIM``."""
        file, url = environ.get("AUTH_JWKS_FILE", ""), environ.get("AUTH_JWKS_URL", "")
        if bool(file) == bool(url):
            raise ConfigurationError(
                "set one of AUTH_JWKS_FILE (a JWKS file) or AUTH_JWKS_URL (the OIDC provider's jwks_uri):"
                " the HTTP API admits only tokens signed by the issuer (make run sets AUTH_JWKS_FILE)"
            )
        if file and not Path(file).is_file():
            raise ConfigurationError(f"AUTH_JWKS_FILE={file}: no such file")
        return cls(
            keys=_Keys(file=Path(file)) if file else _Keys(url=url),
            issuer=environ.get("AUTH_ISSUER") or None,
            audience=environ.get("AUTH_AUDIENCE", DEFAULT_AUDIENCE),
            roles_claim=environ.get("AUTH_ROLES_CLAIM", "roles"),
            agency_claim=environ.get("AUTH_AGENCY_CLAIM", "agency"),
        )

    def verify(self, token: str) -> Principal:
        """The token's holder, if the issuer signed it for this audience and it has not expired."""
        try:
            claims = jwt.decode(
                token,
                self.keys.signing_key(token),
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"]},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise _unauthorized(f"invalid token: {exc}") from exc
        agency = _claim(claims, self.agency_claim)
        return Principal(
            subject=str(claims["sub"]),
            roles=frozenset(_roles(claims, self.roles_claim)),
            agency=agency if isinstance(agency, str) else None,
        )

    def requires(self, *roles: Role, of_agency: str | None = None) -> Any:
        """A FastAPI dependency admitting a valid token with any of ``roles`` (``Depends(...)``).

        With ``of_agency``, the ``agency_officer`` role counts only for an officer of that agency
        (a tax officer cannot decide the land registry's steps); other roles are not scoped.
        """
        admitted = frozenset(roles)
        key = (admitted, of_agency)
        if key not in self._dependencies:
            needed = " or ".join(
                f"{role} of {of_agency}" if of_agency and role == Role.AGENCY_OFFICER else str(role)
                for role in sorted(admitted)
            )

            async def dependency(
                request: Request,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
            ) -> Principal:
                if credentials is None or credentials.scheme.lower() != "bearer":
                    raise _unauthorized("a bearer token is needed")
                principal = self.verify(credentials.credentials)
                held = principal.roles & admitted
                if of_agency is not None and principal.agency != of_agency:
                    held -= {Role.AGENCY_OFFICER}
                if not held:
                    raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the role {needed}")
                request.state.principal = principal
                return principal

            self._dependencies[key] = dependency
        return Depends(self._dependencies[key])


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _roles(claims: Mapping[str, Any], path: str) -> list[str]:
    value = _claim(claims, path)
    if isinstance(value, str):
        return value.split()
    return [str(role) for role in value] if isinstance(value, list) else []


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or a token the issuer did not sign (or expired)"},
    403: {"description": "The token's holder does not have a role this operation needs"},
}
"""The statuses every guarded operation can answer, for its OpenAPI ``responses``."""
