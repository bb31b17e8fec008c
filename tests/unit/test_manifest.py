"""The service manifests: discovered from the packages, read by everything that lists services.

The last tests prove the claim of the manifest: a new agency's folder alone, with no edit
anywhere else, is started by the stack, granted its ACLs, documented in the specification,
known to the replayer, given a container user and written into docker-compose.yml.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import services
from infra import compose_gen, compose_trust, stack
from infra.kafka.acls import declared_grants, principals_of
from services import manifest, specification
from services.manifest import ManifestError, ServiceManifest
from services.replay import replay

REPO = Path(__file__).resolve().parents[2]


def clear_caches() -> None:
    manifest.manifests.cache_clear()
    stack.service_agencies.cache_clear()


# --- discovery ----------------------------------------------------------------------------------


def test_every_runnable_service_package_declares_a_manifest() -> None:
    runnable = {p.parent.name for p in (REPO / "services").glob("*/__main__.py")}
    assert set(manifest.names()) == runnable


def test_manifests_come_in_start_order_with_the_desk_first() -> None:
    names = manifest.names()
    assert (names[0], names[-1]) == ("intake", "console")
    assert {"land_registry", "tax", "notification"} <= set(names)
    assert manifest.default_ports() == stack.SERVICES


def test_each_app_takes_its_default_port_from_its_manifest() -> None:
    for m in manifest.manifests():
        assert m.default_port == importlib.import_module(m.app_module).DEFAULT_PORT, m.name


def test_libraries_without_a_manifest_are_not_services() -> None:
    assert "runtime" not in manifest.names()
    assert "replay" not in manifest.names()


def test_the_desk_and_the_readers_are_replayed_the_agencies_are_the_world() -> None:
    assert replay.default_services() == ("intake", "notification", "console")
    agencies = replay.service_agencies()
    assert agencies["intake"] == "one_stop"
    assert agencies == {m.name: m.agency for m in manifest.manifests() if m.agency is not None}


def test_the_console_is_not_in_the_specification() -> None:
    documented = [r.name for r in specification.runtimes()]
    assert "console" not in documented
    assert {"intake", "land_registry", "tax", "notification"} <= set(documented)


def test_import_all_imports_every_app() -> None:
    manifest.import_all()
    for name in manifest.names():
        assert f"services.{name}.app" in sys.modules


def test_the_compose_file_is_generated_from_the_manifests() -> None:
    assert compose_gen.main(["--check"]) == 0


def test_a_hand_edit_of_the_generated_part_is_caught(tmp_path: Path) -> None:
    edited = tmp_path / "docker-compose.yml"
    edited.write_text(compose_gen.COMPOSE_FILE.read_text().replace('TAX_PORT: "8002"', 'TAX_PORT: "9999"'))
    assert compose_gen.main(["--check", "--file", str(edited)]) == 1
    assert compose_gen.main(["--file", str(edited)]) == 0
    assert edited.read_text() == compose_gen.COMPOSE_FILE.read_text()


def test_compose_services_are_exactly_the_manifests_with_their_ports_and_users() -> None:
    services_ = yaml.safe_load(compose_gen.COMPOSE_FILE.read_text())["services"]
    built = {name for name, spec in services_.items() if "build" in spec and spec.get("restart") != "no"}
    assert built == set(manifest.names())
    for m in manifest.manifests():
        spec = services_[m.name]
        env = spec["environment"]
        assert env[f"{m.name.upper()}_PORT"] == str(m.default_port)
        assert spec["user"] == f"{m.uid}:{m.uid}"
        assert ("ports" in spec) == m.published_port, m.name
        assert ("AUTH_JWKS_FILE" in env) == m.checks_tokens, m.name
        assert all(env[key] == value for key, value in m.compose_env.items()), m.name


# --- clashes ------------------------------------------------------------------------------------


def write_package(root: Path, name: str, manifest_source: str, app_source: str = "") -> None:
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        '"""A throwaway service."""\n\nfrom services.manifest import ServiceManifest\n\n' + manifest_source
    )
    if app_source:
        (package / "app.py").write_text(textwrap.dedent(app_source))
        (package / "__main__.py").write_text('"""Run it."""\n')


@pytest.fixture
def extra_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder searched for ``services.*`` packages beside services/: a new agency's folder."""
    extra = tmp_path / "services"
    extra.mkdir()
    monkeypatch.setattr(services, "__path__", [*services.__path__, str(extra)])
    clear_caches()
    yield extra
    clear_caches()
    for module in [m for m in sys.modules if m.startswith(("services.construction", "services.clash"))]:
        del sys.modules[module]


def test_two_services_on_one_port_are_refused(extra_services: Path) -> None:
    write_package(
        extra_services, "clash", 'MANIFEST = ServiceManifest(name="clash", default_port=8002, uid=1)\n'
    )
    with pytest.raises(ManifestError, match="clash and tax both declare port 8002"):
        manifest.discover()


def test_a_manifest_must_name_its_own_package(extra_services: Path) -> None:
    write_package(
        extra_services, "clash", 'MANIFEST = ServiceManifest(name="other", default_port=1, uid=1)\n'
    )
    with pytest.raises(ManifestError, match="declares the name 'other'"):
        manifest.discover()


# --- a new agency, from its folder alone --------------------------------------------------------

CONSTRUCTION_APP = '''\
"""A construction department: answers handoffs addressed to it."""

from __future__ import annotations

from contracts import topics
from contracts.envelope import CloudEvent
from contracts.events import DossierHandedOver, StepCompleted
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings
from services.runtime.unit_of_work import UnitOfWork

import services.construction

DEFAULT_PORT = services.construction.MANIFEST.default_port


async def _answer(uow: UnitOfWork, event: CloudEvent) -> None:
    """Nothing to do: the test never starts it."""


def build_runtime(settings: ServiceSettings, **_: object) -> ServiceRuntime:
    """Its declarations: read its handoffs, answer on its own topic."""
    runtime = ServiceRuntime(settings=settings, agency="construction", migrations=[])
    runtime.publishes(topics.agency_events("construction"), StepCompleted)
    runtime.subscribe(
        topics.handoffs("construction"),
        consumer="construction.handoffs",
        accepts=(DossierHandedOver,),
        handler=_answer,
    )
    return runtime
'''


@pytest.fixture
def construction(extra_services: Path) -> ServiceManifest:
    write_package(
        extra_services,
        "construction",
        "MANIFEST = ServiceManifest(\n"
        '    name="construction", agency="construction", default_port=8070, uid=10096\n'
        ")\n",
        CONSTRUCTION_APP,
    )
    return manifest.by_name()["construction"]


def test_a_new_agency_folder_is_discovered(construction: ServiceManifest) -> None:
    names = manifest.names()
    assert "construction" in names
    assert names[-1] == "console", "start order is port order: the console's 8080 comes last"
    manifest.import_all()


def test_the_stack_starts_a_new_agency(construction: ServiceManifest, tmp_path: Path) -> None:
    assert stack.Stack(run_dir=tmp_path).ports["construction"] == 8070
    assert stack.service_agencies()["construction"] == "construction", "it publishes: it gets a signing key"


def test_the_acls_grant_a_new_agency_what_its_wiring_declares(construction: ServiceManifest) -> None:
    grants = declared_grants()
    assert "construction" in principals_of(grants)
    mine = {(g.resource, g.name, g.operation) for g in grants if g.principal == "construction"}
    assert {
        ("topic", "handoffs.construction", "READ"),
        ("group", "construction.handoffs", "READ"),
        ("topic", "construction.events", "WRITE"),
        ("topic", "construction.dlq", "WRITE"),
    } <= mine


def test_the_specification_documents_a_new_agency(construction: ServiceManifest) -> None:
    runtimes = specification.runtimes()
    assert "construction" in [r.name for r in runtimes]
    document: dict[str, Any] = yaml.safe_load(specification.asyncapi_yaml(runtimes))
    assert any(
        "construction.events" in str(channel.get("address")) for channel in document["channels"].values()
    )


def test_the_replayer_knows_a_new_agency(
    construction: ServiceManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONSTRUCTION_PORT", raising=False)
    assert replay._services(["construction"]) == {"construction": "http://127.0.0.1:8070"}
    assert replay.service_agencies()["construction"] == "construction"
    assert "construction" not in replay.default_services(), "an agency's answers are the recorded world"


def test_compose_gives_a_new_agency_a_user_a_password_and_a_service(
    construction: ServiceManifest, tmp_path: Path
) -> None:
    assert compose_trust.service_uids()["construction"] == 10096
    trust = compose_trust.ComposeTrust(tmp_path / "trust")
    trust.write()
    assert trust.password_file("construction").is_file()
    assert trust.signing_key_file("construction").is_file()
    rendered = compose_gen.render(compose_gen.COMPOSE_FILE.read_text())
    assert rendered != compose_gen.COMPOSE_FILE.read_text(), "the committed file lacks it until regenerated"
    generated = yaml.safe_load(rendered)["services"]
    spec = generated["construction"]
    assert spec["command"] == ["python", "-m", "services.construction"]
    assert spec["user"] == "10096:10096"
    assert spec["environment"]["CONSTRUCTION_PORT"] == "8070"
    assert spec["environment"]["SIGNING_KEY_FILE"] == "/trust/services/construction/signing-key.jwk.json"
