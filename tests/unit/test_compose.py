"""docker-compose.yml: valid against the Compose spec, wired the way the services need, secure.

No Docker engine is needed: the file is checked against the vendored compose-spec schema
(offline) and its behaviour-relevant facts are read from the YAML; what the one-shot
``trust-init`` generates for Kafka and the services (``infra/compose_trust.py``) is generated
here into a temporary directory and read back.
"""

from __future__ import annotations

import json
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

from contracts.signing import SigningKey, read_jwks
from infra.compose_trust import KAFKA_UID, SERVICE_UIDS, TRUST_UID, ComposeTrust
from infra.kafka.acls import declared_grants, principals_of
from infra.stack import SERVICES, service_agencies
from services.runtime.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
INFRASTRUCTURE = {"kafka", "postgres", "jaeger"}
ONE_SHOTS = {"trust-init", "provision"}
"""Run to completion before the services start: the secrets, then principals, topics and ACLs."""
TRUST_MOUNT = "/trust"
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
def long_running(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every service but the one-shots."""
    return {name: spec for name, spec in services.items() if name not in ONE_SHOTS}


@pytest.fixture(scope="module")
def python_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The long-running services built from the project's Dockerfile."""
    built = {name: spec for name, spec in services.items() if "build" in spec and name not in ONE_SHOTS}
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
    assert set(services) == INFRASTRUCTURE | service_modules() | ONE_SHOTS


def test_every_service_has_a_healthcheck(long_running: dict[str, dict[str, Any]]) -> None:
    for name, spec in long_running.items():
        check = spec.get("healthcheck")
        assert isinstance(check, dict), f"{name}: no healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        assert check.get("test"), f"{name}: empty healthcheck"
        assert check["test"] != ["NONE"], f"{name}: healthcheck disabled"


def test_every_service_has_a_memory_limit(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        deploy_limit = spec.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
        assert spec.get("mem_limit") or deploy_limit, f"{name}: no memory limit"


def test_every_service_restarts_unless_stopped(long_running: dict[str, dict[str, Any]]) -> None:
    for name, spec in long_running.items():
        assert spec.get("restart") == "unless-stopped", name


def test_one_shots_run_once_and_their_dependents_wait_for_success(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ONE_SHOTS:
        assert services[name].get("restart") == "no", f"{name} is a one-shot: it must not be restarted"
        assert services[name]["image"] == "dossier-routing:local", name
    for name, spec in services.items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            if dependency in ONE_SHOTS:
                assert condition.get("condition") == "service_completed_successfully", (name, dependency)


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


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> ComposeTrust:
    """What trust-init writes into the trust volume, written into a temporary directory."""
    trust = ComposeTrust(tmp_path_factory.mktemp("trust"))
    trust.write()
    return trust


def in_volume(generated: ComposeTrust, path: Path) -> str:
    """``path`` (under the temporary trust directory) as the containers see it."""
    return f"{TRUST_MOUNT}/{path.relative_to(generated.root).as_posix()}"


def properties(text: str) -> dict[str, str]:
    """A Java properties file's entries."""
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def mounts(spec: dict[str, Any]) -> dict[str, str]:
    """A service's volumes as target -> "source[:mode]"."""
    found = {}
    for volume in spec.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        found[target] = ":".join([source, *mode])
    return found


def test_kafka_is_the_pinned_kraft_broker_reachable_as_kafka_9092(
    services: dict[str, dict[str, Any]], generated: ComposeTrust
) -> None:
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.2"
    assert kafka["command"] == ["/bin/sh", in_volume(generated, generated.kafka_dir / "start.sh")]
    props = properties((generated.kafka_dir / "server.properties").read_text())
    assert props["process.roles"] == "broker,controller"
    assert "BROKER://kafka:9092" in props["advertised.listeners"].split(",")
    assert props["log.dirs"] in mounts(kafka)
    assert mounts(kafka)[props["log.dirs"]] == "kafka-data"
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_kafka_authenticates_everyone_and_authorizes_by_acl(generated: ComposeTrust) -> None:
    props = properties((generated.kafka_dir / "server.properties").read_text())
    listeners = dict(item.split(":", 1) for item in props["listener.security.protocol.map"].split(","))
    assert set(listeners.values()) == {"SASL_PLAINTEXT"}, "a listener without SASL"
    for listener in props["listeners"].split(","):
        assert listener.split("://")[0] in listeners
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    for name in listeners:
        if name != props["controller.listener.names"]:
            assert f"listener.name.{name.lower()}.scram-sha-512.sasl.jaas.config" in props, name
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    assert props["super.users"].split(";")[0] == "User:admin"
    assert props["listeners"].endswith("CONTROLLER://127.0.0.1:9093"), "controller reachable from outside"


def test_kafka_healthcheck_authenticates_as_the_admin(
    services: dict[str, dict[str, Any]], generated: ComposeTrust
) -> None:
    test = " ".join(services["kafka"]["healthcheck"]["test"])
    admin_properties = generated.kafka_dir / "admin.properties"
    assert f"--command-config {in_volume(generated, admin_properties)}" in test
    props = properties(admin_properties.read_text())
    assert props["security.protocol"] == "SASL_PLAINTEXT"
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert 'username="admin"' in props["sasl.jaas.config"]


def test_kafka_starts_after_trust_init_as_the_owner_of_its_files(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["depends_on"]["trust-init"]["condition"] == "service_completed_successfully"
    assert kafka["user"] == f"{KAFKA_UID}:{KAFKA_UID}"
    assert mounts(kafka)[TRUST_MOUNT] == "trust:ro"


def test_trust_init_writes_the_trust_volume(services: dict[str, dict[str, Any]]) -> None:
    init = services["trust-init"]
    assert init["command"] == ["python", "-m", "infra.compose_trust", "--trust-dir", TRUST_MOUNT]
    assert mounts(init)[TRUST_MOUNT] == "trust"


def test_provisioning_applies_the_declared_acls_once_kafka_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    provision = services["provision"]
    command = provision["command"]
    assert command[:4] == ["python", "-m", "infra.kafka.acls", "apply"]
    assert command[command.index("--trust-dir") + 1] == TRUST_MOUNT
    assert command[command.index("--bootstrap-servers") + 1] == "kafka:9092"
    assert provision["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert provision["user"] == f"{TRUST_UID}:{TRUST_UID}"


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
        assert depends_on.get("provision", {}).get("condition") == "service_completed_successfully", (
            f"{name} does not wait for its principal, topics and ACLs"
        )


def test_every_service_is_a_principal_the_acls_grant(python_services: dict[str, dict[str, Any]]) -> None:
    granted = principals_of(declared_grants())
    for name, spec in python_services.items():
        assert environment(spec)["KAFKA_SASL_USERNAME"] == name
        assert name in granted, f"{name}: no ACL names this principal"


def test_every_service_authenticates_and_verifies_with_the_generated_secrets(
    python_services: dict[str, dict[str, Any]], generated: ComposeTrust
) -> None:
    for name, spec in python_services.items():
        env = environment(spec)
        assert env.get("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT") == "SASL_PLAINTEXT", name
        assert env.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512") == "SCRAM-SHA-512", name
        assert "KAFKA_SASL_PASSWORD" not in env, f"{name}: a password in the compose file"
        wanted = {
            key: value.replace(str(generated.root), TRUST_MOUNT)
            for key, value in generated.service_environment(name).items()
        }
        assert {key: env.get(key) for key in wanted} == wanted, name
        assert (generated.root / env["KAFKA_SASL_PASSWORD_FILE"].removeprefix(TRUST_MOUNT + "/")).is_file()
        assert (generated.root / env["SIGNING_KEY_REGISTRY"].removeprefix(TRUST_MOUNT + "/")).is_file()


def test_every_publishing_service_signs_with_its_own_agency_key(
    python_services: dict[str, dict[str, Any]], generated: ComposeTrust
) -> None:
    signers = service_agencies()
    for name, spec in python_services.items():
        env = environment(spec)
        assert ("SIGNING_KEY_FILE" in env) == (name in signers), name
        if name in signers:
            key = generated.root / env["SIGNING_KEY_FILE"].removeprefix(TRUST_MOUNT + "/")
            assert generated.store.signing_key(signers[name]).private_jwk() == json.loads(key.read_text())


def test_token_checking_services_find_the_issuers_keys(python_services: dict[str, dict[str, Any]]) -> None:
    for name in ("intake", "notification", "console"):
        assert environment(python_services[name])["AUTH_JWKS_FILE"] == f"{TRUST_MOUNT}/tokens/jwks.json", name


def test_each_service_runs_as_its_own_user_with_the_trust_volume_read_only(
    python_services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in python_services.items():
        assert spec["user"] == f"{SERVICE_UIDS[name]}:{SERVICE_UIDS[name]}", name
        assert mounts(spec)[TRUST_MOUNT] == "trust:ro", name
    uids = [SERVICE_UIDS[name] for name in python_services]
    assert len(set(uids)) == len(uids), "two services share a user: each could read the other's secrets"
    assert not {KAFKA_UID, TRUST_UID, 0} & set(uids)


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


def test_every_service_reads_its_settings_from_the_compose_environment(
    python_services: dict[str, dict[str, Any]], generated: ComposeTrust, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a container starts with is enough: password from the file, key loadable and active."""
    for name, spec in python_services.items():
        env = {
            key: value.replace(TRUST_MOUNT, str(generated.root))
            for key, value in environment(spec).items()
            if not value.startswith("${")
        }
        for key in [k for k in os.environ if k.startswith(("KAFKA_", "SIGNING_"))]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = ServiceSettings.from_env(name, default_port=SERVICES[name])
        assert settings.kafka.username == name
        assert settings.kafka.password == generated.password_file(name).read_text().strip()
        if settings.signing_key_file is not None:
            signing_key = SigningKey.load(settings.signing_key_file)
            active = {k.key_id for k in read_jwks(settings.key_registry[0]) if k.status == "active"}
            assert signing_key.key_id in active, f"{name} would refuse to start: its key is not active"
