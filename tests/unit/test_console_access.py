"""The console's token: every route refuses a request without it, except the few open ones.

The app is built but not started (no Kafka, no Postgres): refusals happen before any route
runs, which is the point.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount

from services.console.app import create_app, sign_in_url
from services.console.auth import COOKIE, ConsoleAccess, is_open, safe_next
from services.runtime.kafka_access import KafkaAccess
from services.runtime.settings import ConfigurationError, ServiceSettings

TOKEN = "unit-test-token-0123456789"
SETTINGS = ServiceSettings(
    service="console",
    kafka=KafkaAccess(bootstrap_servers="127.0.0.1:1", security_protocol="PLAINTEXT"),
    database_url="postgresql://nobody@127.0.0.1:1/none",
    host="127.0.0.1",
    port=8080,
)


@pytest.fixture(scope="module")
def client() -> TestClient:
    # Not entered as a context manager: the lifespan (Kafka, Postgres) does not run.
    return TestClient(create_app(SETTINGS, access=ConsoleAccess(TOKEN)), follow_redirects=False)


def concrete(path: str) -> str:
    return path.replace("{dossier_id}", "HS-1")


def api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """Every route, looking into included routers (FastAPI keeps them as one entry each)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def test_every_route_but_the_open_ones_refuses_without_the_token(client: TestClient) -> None:
    guarded = [
        (method, concrete(route.path))
        for route in api_routes(client.app.routes)  # type: ignore[attr-defined]
        if not is_open(route.path)
        for method in route.methods or ()
    ]
    assert ("GET", "/api/dossiers") in guarded
    assert ("POST", "/v1/traces") in guarded
    assert ("GET", "/") in guarded
    for method, path in guarded:
        response = client.request(method, path)
        if path.startswith(("/api/", "/v1/")) or method != "GET":
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"].startswith("Bearer")
        else:
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/login?next=")


def test_fastapi_docs_are_guarded_too(client: TestClient) -> None:
    for path in ("/docs", "/openapi.json"):
        assert client.get(path).status_code == 401


def test_a_wrong_bearer_or_cookie_is_refused(client: TestClient) -> None:
    assert client.get("/api/dossiers", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert client.get("/api/dossiers", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    token_as_cookie = TestClient(client.app, cookies={COOKIE: TOKEN})
    assert token_as_cookie.get("/api/dossiers").status_code == 401  # the cookie is not the token


def test_the_redirect_keeps_where_the_operator_was_going(client: TestClient) -> None:
    response = client.get("/dossiers/HS-1?x=1")
    assert response.headers["location"] == "/login?next=%2Fdossiers%2FHS-1%3Fx%3D1"


def test_sign_in_sets_a_cookie_derived_from_the_token(client: TestClient) -> None:
    refused = client.post("/login", content=b"token=nope&next=/on-time", headers=_form())
    assert refused.status_code == 401
    assert COOKIE not in refused.cookies
    accepted = client.post("/login", content=f"token={TOKEN}&next=/on-time".encode(), headers=_form())
    assert accepted.status_code == 303
    assert accepted.headers["location"] == "/on-time"
    session = accepted.cookies[COOKIE]
    assert session == ConsoleAccess(TOKEN).session
    assert TOKEN not in session
    set_cookie = accepted.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "samesite=lax" in set_cookie


def test_the_printed_sign_in_url_signs_in_and_drops_the_token_from_the_address(client: TestClient) -> None:
    response = client.get(f"/login?token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert COOKIE in response.cookies
    assert client.get("/login?token=wrong").status_code == 401


def test_open_paths(client: TestClient) -> None:
    assert client.get("/login").status_code == 200
    assert client.get("/static/console.js").status_code == 200
    assert client.get("/static/console.css").status_code == 200


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/dossiers/HS-1", "/dossiers/HS-1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_no_open_redirect_after_sign_in(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_token_from_the_environment() -> None:
    assert ConsoleAccess.from_env({"CONSOLE_TOKEN": TOKEN}) == ConsoleAccess(TOKEN, generated=False)
    with pytest.raises(ConfigurationError, match="CONSOLE_TOKEN"):
        ConsoleAccess.from_env({"CONSOLE_TOKEN": "short"})
    first, second = ConsoleAccess.from_env({}), ConsoleAccess.from_env({})
    assert first.generated
    assert len(first.token) >= 32
    assert first.token != second.token


def test_sign_in_url_for_a_wildcard_bind() -> None:
    access = ConsoleAccess(TOKEN)
    wildcard = ServiceSettings(**{**SETTINGS.__dict__, "host": "0.0.0.0"})
    assert sign_in_url(wildcard, access) == f"http://127.0.0.1:8080/login?token={TOKEN}"


def test_static_files_are_mounted(client: TestClient) -> None:
    assert any(isinstance(r, Mount) and r.path == "/static" for r in client.app.routes)  # type: ignore[attr-defined]


def _form() -> dict[str, str]:
    return {"content-type": "application/x-www-form-urlencoded"}
