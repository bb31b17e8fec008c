"""docker-compose.yml: valid against the Compose spec, and wired the way the services need.

No Docker engine is needed: the file is checked against the vendored compose-spec schema
(offline) and its behaviour-relevant facts are read from the YAML.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.stack import SERVICES

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
INFRASTRUCTURE = {"kafka", "postgres", "jaeger"}
LOCALHOST = "127.0.0.1"


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate ``path`` with the builtin (vendored) compose-spec schema, with no network.

    The proxies point at a closed port, so a schema download attempt would fail the check
    instead of silently depending on the internet.
    """
    assert CHECK_JSONSCHEMA.is_file(), f"{CHECK_JSONSCHEMA} missing: pip install -e '.[dev]'"
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "all_proxy"}}
    dead_proxy = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=dead_proxy, HTTPS_PROXY=dead_proxy, http_proxy=dead_proxy, https_proxy=dead_proxy)
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def python_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services built from the project's Dockerfile."""
    built = {name: spec for name, spec in services.items() if "build" in spec}
    assert built, "no service is built from the Dockerfile"
    return built


def service_modules() -> set[str]:
    """Packages under services/ that run as ``python -m services.<name>``."""
    return {p.parent.name for p in (REPO / "services").glob("*/__main__.py")}


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whether written as a mapping or as a KEY=VALUE list."""
    env = spec.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published_host_ips(port: str | int | dict[str, Any]) -> str | None:
    """The host IP a ``ports`` entry binds to (None when it binds to every interface)."""
    if isinstance(port, dict):
        return port.get("host_ip")
    text = str(port).split("/", 1)[0]
    if text.startswith("["):  # [::1]:8000:8000
        return text[1 : text.index("]")]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else None


# --- schema ---------------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    result = check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump({"services": {"x": {"image": 1, "healthcheck": "nope"}}}))
    result = check_compose_schema(broken)
    assert result.returncode != 0
    assert "healthcheck" in result.stdout + result.stderr


# --- every service --------------------------------------------------------------------------


def test_the_expected_services_are_defined(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == INFRASTRUCTURE | service_modules()


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        check = spec.get("healthcheck")
        assert isinstance(check, dict), f"{name}: no healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        assert check.get("test"), f"{name}: empty healthcheck"
        assert check["test"] != ["NONE"], f"{name}: healthcheck disabled"


def test_every_service_has_a_memory_limit(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        deploy_limit = spec.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
        assert spec.get("mem_limit") or deploy_limit, f"{name}: no memory limit"


def test_every_service_restarts_unless_stopped(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        assert spec.get("restart") == "unless-stopped", name


def test_published_ports_bind_to_localhost_only(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        assert spec.get("network_mode") != "host", f"{name}: host networking publishes everything"
        for port in spec.get("ports", []):
            assert published_host_ips(port) == LOCALHOST, f"{name}: {port!r} is not bound to {LOCALHOST}"


@pytest.mark.parametrize(
    ("port", "host_ip"),
    [
        ("127.0.0.1:8000:8000", "127.0.0.1"),
        ("8000:8000", None),
        ("8000", None),
        ("0.0.0.0:8000:8000/tcp", "0.0.0.0"),
        ("[::1]:8000:8000", "::1"),
        ({"target": 8000, "published": 8000}, None),
        ({"target": 8000, "published": 8000, "host_ip": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_port_parsing_sees_the_host_ip(port: str | dict[str, Any], host_ip: str | None) -> None:
    assert published_host_ips(port) == host_ip


# --- infrastructure -------------------------------------------------------------------------


def test_kafka_is_the_pinned_kraft_broker_reachable_as_kafka_9092(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.2"
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_postgres_password_is_an_overridable_local_default(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert environment(postgres)["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:-")
    assert "pg_isready" in postgres["healthcheck"]["test"]


def test_jaeger_receives_otlp_and_shows_its_ui_on_localhost(services: dict[str, dict[str, Any]]) -> None:
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert environment(jaeger).get("COLLECTOR_OTLP_ENABLED") == "true"
    assert "127.0.0.1:16686:16686" in jaeger["ports"]


# --- the four python services ---------------------------------------------------------------


def test_python_services_run_the_existing_service_modules(
    python_services: dict[str, dict[str, Any]],
) -> None:
    assert set(python_services) == service_modules()
    for name, spec in python_services.items():
        assert (REPO / "services" / name / "__main__.py").is_file(), f"services/{name} does not exist"
        assert spec["command"] == ["python", "-m", f"services.{name}"], name


def test_python_services_wait_for_healthy_kafka_and_postgres(
    python_services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in python_services.items():
        depends_on = spec.get("depends_on")
        assert isinstance(depends_on, dict), f"{name}: depends_on must use conditions"
        for dependency in ("kafka", "postgres"):
            assert depends_on.get(dependency, {}).get("condition") == "service_healthy", (
                f"{name} does not wait for {dependency} to be healthy"
            )


def test_python_services_are_configured_for_containers(
    python_services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in python_services.items():
        env = environment(spec)
        prefix = name.upper()
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert "@postgres:5432/" in env["DATABASE_URL"], name
        assert env[f"{prefix}_HOST"] == "0.0.0.0", f"{name} must listen on every interface in its container"
        assert int(env[f"{prefix}_PORT"]) == SERVICES[name], name
        assert env["OTEL_SERVICE_NAME"] == name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"


def test_python_healthchecks_probe_their_own_health_endpoint(
    python_services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in python_services.items():
        test = spec["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        assert f"http://127.0.0.1:{SERVICES[name]}/health" in test[3], name


def test_intake_api_is_published_on_8000(services: dict[str, dict[str, Any]]) -> None:
    assert "127.0.0.1:8000:8000" in services["intake"]["ports"]


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_health() -> Iterator[tuple[HTTPServer, type[_Health]]]:
    handler = type("Health", (_Health,), {})
    server = HTTPServer((LOCALHOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_python_healthcheck_fails_when_the_service_is_not_ready(
    python_services: dict[str, dict[str, Any]],
    fake_health: tuple[HTTPServer, type[_Health]],
    status: int,
    healthy: bool,
) -> None:
    server, handler = fake_health
    handler.status = status
    for name, spec in python_services.items():
        code = spec["healthcheck"]["test"][3].replace(
            f"127.0.0.1:{SERVICES[name]}", f"127.0.0.1:{server.server_address[1]}"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=False)
        assert (result.returncode == 0) is healthy, f"{name}: {result.stderr.decode()}"
