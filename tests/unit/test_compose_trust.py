"""What trust-init writes for docker-compose: complete, private, and the same every time it runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

import services.notification
from infra.compose_trust import KAFKA_UID, SERVICE_UIDS, TRUST_UID, ComposeTrust, main
from infra.kafka.acls import declared_grants, principals_of
from infra.letter_ca import catalog_agencies
from infra.stack import service_agencies
from infra.tokens import LocalIssuer
from services.notification.document_signing import LetterSigner
from services.runtime.access import Access


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def properties(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture
def trust(tmp_path: Path) -> ComposeTrust:
    root = tmp_path / "trust"
    assert main(["--trust-dir", str(root)]) == 0
    return ComposeTrust(root)


def test_running_it_again_changes_nothing(trust: ComposeTrust) -> None:
    first = snapshot(trust.root)
    assert main(["--trust-dir", str(trust.root)]) == 0
    assert snapshot(trust.root) == first
    credentials = json.loads((trust.root / "kafka-credentials.json").read_text())
    for name in SERVICE_UIDS:
        assert trust.password_file(name).read_text().strip() == credentials[name]


def test_every_principal_the_acls_name_has_a_password_and_the_admin_too(trust: ComposeTrust) -> None:
    credentials = json.loads((trust.root / "kafka-credentials.json").read_text())
    assert set(principals_of(declared_grants())) | {"admin", "controller"} <= set(credentials)
    assert len(set(credentials.values())) == len(credentials), "two principals share a password"


def test_secrets_are_readable_by_their_owner_alone(trust: ComposeTrust) -> None:
    public = {trust.root / "key-registry.json", trust.root / ".lock", trust.root / "tokens" / "jwks.json"}
    for path in trust.root.rglob("*"):
        if path.is_file() and path not in public:
            assert mode(path) & 0o077 == 0, f"{path} is readable by others ({oct(mode(path))})"
    for name in SERVICE_UIDS:
        assert mode(trust.password_file(name)) == 0o600
        assert mode(trust.service_dir(name)) == 0o700
    assert mode(trust.kafka_dir) == 0o700
    assert mode(trust.kafka_dir / "server.properties") == 0o600
    assert mode(trust.kafka_dir / "start.sh") == 0o700
    # Reachable, not listable: each container finds its own directory and the key registry.
    assert mode(trust.root) == 0o711
    assert mode(trust.root / "services") == 0o711
    assert mode(trust.root / "key-registry.json") == 0o644


def test_the_broker_authenticates_with_scram_and_authorizes_by_acl(trust: ComposeTrust) -> None:
    props = properties(trust.kafka_dir / "server.properties")
    admin = json.loads((trust.root / "kafka-credentials.json").read_text())["admin"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert all(p.endswith(":SASL_PLAINTEXT") for p in props["listener.security.protocol.map"].split(","))
    assert (
        f'username="admin" password="{admin}"' in props["listener.name.broker.scram-sha-512.sasl.jaas.config"]
    )
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    assert "User:admin" in props["super.users"].split(";")
    admin_client = properties(trust.kafka_dir / "admin.properties")
    assert admin_client["bootstrap.servers"] == "kafka:9092"
    assert f'password="{admin}"' in admin_client["sasl.jaas.config"]


def test_each_publishing_service_gets_its_agencys_active_key(trust: ComposeTrust) -> None:
    for name, agency in service_agencies().items():
        key = json.loads(trust.signing_key_file(name).read_text())
        assert key == trust.store.signing_key(agency).private_jwk()
        assert mode(trust.signing_key_file(name)) == 0o600
    for name in set(SERVICE_UIDS) - set(service_agencies()):
        assert not trust.signing_key_file(name).exists()


def test_a_rotated_key_reaches_the_service_at_the_next_run(trust: ComposeTrust) -> None:
    before = trust.signing_key_file("tax").read_text()
    trust.store.rotate("tax")
    main(["--trust-dir", str(trust.root)])
    after = json.loads(trust.signing_key_file("tax").read_text())
    assert trust.signing_key_file("tax").read_text() != before
    assert after == trust.store.signing_key("tax").private_jwk()


def test_the_operator_gets_its_own_settings(trust: ComposeTrust) -> None:
    env = dict(
        line.split("=", 1)
        for line in (trust.service_dir("operator") / "operator.env").read_text().splitlines()
    )
    assert env["KAFKA_SASL_USERNAME"] == "operator"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["SIGNING_KEY_REGISTRY"] == str(trust.store.key_registry_path)


def test_each_file_belongs_to_the_one_user_that_reads_it(trust: ComposeTrust) -> None:
    assert trust.owner(trust.kafka_dir / "start.sh") == KAFKA_UID
    assert trust.owner(trust.password_file("tax")) == SERVICE_UIDS["tax"]
    assert trust.owner(trust.service_dir("intake")) == SERVICE_UIDS["intake"]
    assert trust.owner(trust.root / "kafka-credentials.json") == TRUST_UID
    assert trust.owner(trust.root / "services") == TRUST_UID
    assert trust.owner(trust.root) == TRUST_UID


def test_owners_are_set_when_run_as_root(trust: ComposeTrust, monkeypatch: pytest.MonkeyPatch) -> None:
    chowned: dict[Path, int] = {}

    def chown(path: Path, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        assert uid == gid
        chowned[Path(path)] = uid

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "chown", chown)
    trust.write()
    assert chowned[trust.password_file("land_registry")] == SERVICE_UIDS["land_registry"]
    assert chowned[trust.kafka_dir / "server.properties"] == KAFKA_UID
    assert chowned[trust.root / "kafka-credentials.json"] == TRUST_UID
    assert set(chowned) == {trust.root, *trust.root.rglob("*")}


def test_the_token_issuer_publishes_its_jwks_to_every_service_and_keeps_its_key(trust: ComposeTrust) -> None:
    issuer = LocalIssuer(trust.root / "tokens")
    # The services' AUTH_JWKS_FILE verifies what the issuer mints.
    token = issuer.mint("operator", subject="ops")
    principal = Access.from_env({"AUTH_JWKS_FILE": str(trust.root / "tokens" / "jwks.json")}).verify(token)
    assert principal.roles == {"operator"}
    assert mode(trust.root / "tokens" / "jwks.json") == 0o644
    assert mode(trust.root / "tokens") == 0o711
    assert mode(trust.root / "tokens" / "issuer.pem") == 0o600


def fake_kafka(tmp_path: Path) -> tuple[Path, Path]:
    """A KAFKA_HOME whose tools record how they were called."""
    home = tmp_path / "kafka-home"
    (home / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    for tool, extra in (
        ("kafka-storage.sh", 'touch "$KAFKA_DATA_DIR/meta.properties"'),
        ("kafka-server-start.sh", ""),
    ):
        script = home / "bin" / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n{extra}\n')
        script.chmod(0o755)
    return home, calls


def test_the_broker_formats_its_storage_with_the_admin_once_then_starts(
    trust: ComposeTrust, tmp_path: Path
) -> None:
    home, calls = fake_kafka(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, "KAFKA_HOME": str(home), "KAFKA_DATA_DIR": str(data)}
    start = [str(trust.kafka_dir / "start.sh")]
    admin = json.loads((trust.root / "kafka-credentials.json").read_text())["admin"]
    for _ in range(2):
        subprocess.run(start, env=env, check=True, capture_output=True, timeout=30)
    lines = calls.read_text().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("kafka-storage.sh format --config ")
    assert f"--add-scram SCRAM-SHA-512=[name=admin,password={admin}]" in lines[0]
    assert f"--cluster-id {(trust.kafka_dir / 'cluster-id').read_text().strip()}" in lines[0]
    assert lines[1] == lines[2] == f"kafka-server-start.sh {trust.kafka_dir / 'server.properties'}"


def test_the_broker_refuses_storage_formatted_for_another_admin(trust: ComposeTrust, tmp_path: Path) -> None:
    home, calls = fake_kafka(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.properties").write_text("formatted before\n")
    env = {**os.environ, "KAFKA_HOME": str(home), "KAFKA_DATA_DIR": str(data)}
    result = subprocess.run(
        [str(trust.kafka_dir / "start.sh")], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
    assert "docker compose down -v" in result.stderr
    assert not calls.exists(), "the broker started on storage it cannot authenticate to"


def test_the_notification_service_gets_every_agencys_letter_signing_certificate(trust: ComposeTrust) -> None:
    directory = trust.letter_signing_dir()
    assert trust.service_environment("notification")["LETTER_SIGNING_DIR"] == str(directory)
    assert str(directory).replace(str(trust.root), "/trust") == services.notification.LETTER_SIGNING_MOUNT
    assert LetterSigner.from_directory(directory).agencies == set(catalog_agencies())
    assert trust.owner(directory / "tax.key.pem") == SERVICE_UIDS["notification"]
    assert {mode(path) for path in directory.iterdir()} == {0o600}
    # The test CAs' keys stay in the trust store, out of the service's reach.
    assert not list(directory.glob("*.ca.key.pem"))
