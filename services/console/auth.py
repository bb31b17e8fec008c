"""One token guards the console: the API and OTLP take it as a bearer header, browsers as a cookie.

``CONSOLE_TOKEN`` sets it; unset, a random token is made at start and the sign-in URL is
written to the log (so a token never has to be committed anywhere). Everything is refused
without it except what every service answers openly (``/health``, ``/metrics``, ``/clock``, ``/backlog``,
``/consumed``),
the sign-in page and the static files (none holds dossier data): pages redirect to the
sign-in page, the rest answer 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from services.runtime.settings import ConfigurationError

COOKIE = "console_session"
MIN_TOKEN_LENGTH = 16
OPEN_PATHS = frozenset(
    {"/health", "/metrics", "/clock", "/backlog", "/consumed", "/login", "/logout", "/favicon.ico"}
)
OPEN_PREFIXES = ("/static/",)
API_PREFIXES = ("/api/", "/v1/", "/docs", "/openapi.json", "/redoc")
"""Paths answered with 401 rather than a redirect: machines call them."""


@dataclass(frozen=True)
class ConsoleAccess:
    """The token, and whether it was generated here (then the log shows the sign-in URL)."""

    token: str
    generated: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ConsoleAccess:
        """``CONSOLE_TOKEN``, or a fresh random token when it is unset."""
        token = environ.get("CONSOLE_TOKEN", "")
        if not token:
            return cls(token=secrets.token_urlsafe(24), generated=True)
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"CONSOLE_TOKEN is too short: use at least {MIN_TOKEN_LENGTH} characters"
            )
        return cls(token=token)

    @property
    def session(self) -> str:
        """The cookie value: derived from the token, so the cookie never carries the token itself."""
        return hmac.new(self.token.encode(), b"console-session", hashlib.sha256).hexdigest()

    def accepts_token(self, candidate: str) -> bool:
        """Constant-time comparison with the token."""
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def allows(self, request: Request) -> bool:
        """A valid bearer header or a valid session cookie."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.accepts_token(credentials.strip()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self.session.encode())

    def sign_in(self, response: Response) -> None:
        """Set the session cookie (HttpOnly; SameSite=Lax keeps other sites' forms out)."""
        response.set_cookie(COOKIE, self.session, httponly=True, samesite="lax", path="/")

    @staticmethod
    def sign_out(response: Response) -> None:
        """Drop the session cookie."""
        response.delete_cookie(COOKIE, path="/")


def is_open(path: str) -> bool:
    """Paths anyone may request."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def guard(
    access: ConsoleAccess,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """HTTP middleware refusing every request without the token, unless its path is open.

    A middleware rather than a dependency per route, so a route added later is guarded too.
    """

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if is_open(path) or access.allows(request):
            return await call_next(request)
        if path.startswith(API_PREFIXES) or request.method not in ("GET", "HEAD"):
            return JSONResponse(
                {"detail": "sign in: Authorization: Bearer <CONSOLE_TOKEN>"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="console"'},
            )
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    return middleware


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path on this site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
