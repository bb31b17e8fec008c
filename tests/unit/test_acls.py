"""ACLs come from the services' own declarations: the right ones, and only those."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import topics
from infra.kafka.acls import (
    OPERATOR,
    Grant,
    agency_grants,
    declared_grants,
    markdown_table,
    runtime_grants,
    service_runtimes,
)
from services.intake.app import load_catalog
from services.runtime.kafka_access import KafkaAccess, KafkaAccessError


def grants_of(principal: str, prefix: str = "") -> set[Grant]:
    return {g for g in declared_grants(prefix) if g.principal == principal}


def test_an_agency_service_reads_its_handoffs_and_writes_its_answers_only() -> None:
    assert grants_of("tax") == {
        Grant("tax", "topic", "handoffs.tax", "READ"),
        Grant("tax", "group", "tax.handoffs", "READ"),
        Grant("tax", "topic", "tax.events", "WRITE"),
        Grant("tax", "topic", "tax.dlq", "WRITE"),
    }


def test_the_desk_hands_over_to_and_hears_from_every_agency_of_the_catalog() -> None:
    desk = grants_of("intake")
    for agency in load_catalog().consumers():
        assert Grant("intake", "topic", topics.handoffs(agency), "WRITE") in desk
        assert Grant("intake", "topic", topics.agency_events(agency), "READ") in desk
        assert Grant("intake", "group", f"intake.from.{agency}", "READ") in desk
    # It reads no handoff topic: those are for the agencies.
    assert not [g for g in desk if g.operation == "READ" and g.name.startswith("handoffs.")]


def test_only_a_topics_owner_writes_it() -> None:
    for runtime in service_runtimes():
        for grant in runtime_grants(runtime):
            if grant.operation == "WRITE" and grant.name.endswith(".events"):
                assert topics.owner(grant.name) == runtime.agency, grant


def test_a_prefixed_deployment_gets_grants_on_its_own_names_only() -> None:
    prefixed = [g for g in declared_grants("staging.") if g.principal != OPERATOR]
    assert prefixed
    assert all(g.name.startswith("staging.") for g in prefixed)


def test_an_agency_plugged_in_gets_the_shape_of_an_agency_service() -> None:
    assert set(agency_grants("urban_planning")) == {
        Grant("urban_planning", "topic", "handoffs.urban_planning", "READ"),
        Grant("urban_planning", "group", "urban_planning.", "READ", "prefixed"),
        Grant("urban_planning", "topic", "urban_planning.events", "WRITE"),
        Grant("urban_planning", "topic", "urban_planning.dlq", "WRITE"),
    }


def test_the_table_lists_every_principal() -> None:
    table = markdown_table(declared_grants())
    for principal in ("intake", "land_registry", "tax", "notification", "console", OPERATOR):
        assert f"| `{principal}` |" in table


def test_kafka_access_refuses_to_go_without_credentials() -> None:
    with pytest.raises(KafkaAccessError, match="KAFKA_SASL_USERNAME"):
        KafkaAccess.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"})
    access = KafkaAccess.from_env({"KAFKA_SASL_USERNAME": "tax", "KAFKA_SASL_PASSWORD": "p"})
    assert access.client_kwargs()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert access.client_kwargs()["security_protocol"] == "SASL_PLAINTEXT"
    # Security off only when asked for by name.
    plain = KafkaAccess.from_env({"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"})
    assert plain.client_kwargs()["security_protocol"] == "PLAINTEXT"
    with pytest.raises(KafkaAccessError, match="KAFKA_SECURITY_PROTOCOL"):
        KafkaAccess.from_env({"KAFKA_SECURITY_PROTOCOL": "NONE"})


def test_only_notification_and_the_console_read_the_letters_to_citizens() -> None:
    readers = {
        g.principal
        for g in declared_grants()
        if g.resource == "topic" and g.name == topics.INTAKE_CITIZENS and g.operation == "READ"
    }
    assert readers == {"notification", "console"}


def test_nothing_with_personal_data_is_declared_on_the_public_topic() -> None:
    for runtime in service_runtimes():
        for publication in runtime.publications:
            if publication.topic == topics.INTAKE_EVENTS:
                assert publication.events, runtime.name
                assert not [e for e in publication.events if topics.carries_personal_data(e)]


def test_the_published_acl_table_is_the_acls_as_they_are() -> None:
    published = (Path(__file__).resolve().parents[2] / "contracts" / "ACL.md").read_text(encoding="utf-8")
    assert published.endswith(markdown_table(declared_grants())), "contracts/ACL.md is stale: run `make docs`"


def test_a_password_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "intake.password"
    secret.write_text("s3cret\n")
    access = KafkaAccess.from_env({"KAFKA_SASL_USERNAME": "intake", "KAFKA_SASL_PASSWORD_FILE": str(secret)})
    assert access.password == "s3cret"
    with pytest.raises(KafkaAccessError, match="KAFKA_SASL_PASSWORD_FILE"):
        KafkaAccess.from_env(
            {"KAFKA_SASL_USERNAME": "intake", "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "no")}
        )
