"""Who may do what on Kafka, derived from what each service declares, and applied to a cluster.

There is no hand-written ACL list. Every service already declares, in its wiring, the topics it
subscribes to (with its consumer group) and the topics it publishes to (``runtime.subscribe``,
``runtime.publishes``); intake declares one handoff topic and one answer topic per agency the
procedure catalog names. :func:`declared_grants` turns those declarations into ACLs:

- a subscription: READ on the topic and READ on the consumer group;
- a publication: WRITE on the topic; every service also writes its own ``<service>.dlq``;
- an agency that plugs in with software of its own (``python -m infra.agencies add``) gets the
  shape of an agency service: READ on ``handoffs.<agency>``, WRITE on ``<agency>.events`` and
  ``<agency>.dlq``, consumer groups named ``<agency>.*``;
- the ``operator`` principal (record, replay, dead-letter re-drive) reads and writes every
  topic: what it writes is only ever records signed by their producers, which consumers verify.

Kafka's READ and WRITE imply DESCRIBE, which the clients' metadata and offset requests need.
Everything not granted is refused (``allow.everyone.if.no.acl.found=false``).

``python -m infra.kafka.acls show`` prints the table; ``apply`` creates the principals' SCRAM
credentials, the topics and the ACLs on a cluster (idempotent; make run and the tests do it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from contracts import topics
from services import manifest
from services.runtime.kafka_access import KafkaAccess
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ServiceSettings

OPERATOR = "operator"
"""Operators' tools: record, replay, dead-letter list and re-drive."""

Operation = Literal["READ", "WRITE", "DESCRIBE"]
Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefixed"]


@dataclass(frozen=True, order=True)
class Grant:
    """One ACL: ``principal`` may do ``operation`` on the ``resource`` named ``name``."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "literal"

    def binding(self) -> AclBinding:
        """The ACL as the admin API takes it (allowed from any host)."""
        return AclBinding(
            ResourceType.TOPIC if self.resource == "topic" else ResourceType.GROUP,
            self.name,
            ResourcePatternType.LITERAL if self.pattern == "literal" else ResourcePatternType.PREFIXED,
            f"User:{self.principal}",
            "*",
            AclOperation[self.operation],
            AclPermissionType.ALLOW,
        )


def declaration_settings(service: str, topic_prefix: str = "") -> ServiceSettings:
    """Settings to build a service's wiring without connecting anything.

    The address and the SASL mechanism are what docker-compose uses, so the AsyncAPI document
    generated from the wiring names them; the password is never used.
    """
    return ServiceSettings(
        service=service,
        kafka=KafkaAccess(bootstrap_servers="kafka:9092", username=service, password="declaration-only"),
        database_url="postgresql://declaration-only",
        host="127.0.0.1",
        port=0,
        topic_prefix=topic_prefix,
    )


def service_runtimes(topic_prefix: str = "", names: Sequence[str] | None = None) -> list[ServiceRuntime]:
    """Every service's runtime (or those ``names``), wired but not started: what the grants come from.

    The services are those whose packages declare a manifest (:mod:`services.manifest`); each is
    also a Kafka principal of the same name.
    """
    runtimes = []
    for name in manifest.names() if names is None else names:
        built: Any = importlib.import_module(manifest.by_name()[name].app_module).build_runtime(
            declaration_settings(name, topic_prefix)
        )
        # Intake's build_runtime also returns its desk.
        runtimes.append(built[0] if isinstance(built, tuple) else built)
    return runtimes


def runtime_grants(runtime: ServiceRuntime) -> list[Grant]:
    """What one service's declarations let its principal do."""
    principal = runtime.name
    grants = [Grant(principal, "topic", runtime.kafka_name(topics.dead_letters(runtime.name)), "WRITE")]
    for subscription in runtime.subscriptions:
        grants.append(Grant(principal, "topic", runtime.kafka_name(subscription.topic), "READ"))
        grants.append(Grant(principal, "group", runtime.kafka_name(subscription.consumer), "READ"))
    for publication in runtime.publications:
        grants.append(Grant(principal, "topic", runtime.kafka_name(publication.topic), "WRITE"))
    return grants


def agency_grants(agency: str, topic_prefix: str = "") -> list[Grant]:
    """What an agency plugged in with its own software may do: the shape of an agency service."""
    return [
        Grant(agency, "topic", topic_prefix + topics.handoffs(agency), "READ"),
        Grant(agency, "group", f"{topic_prefix}{agency}.", "READ", "prefixed"),
        Grant(agency, "topic", topic_prefix + topics.agency_events(agency), "WRITE"),
        Grant(agency, "topic", topic_prefix + topics.dead_letters(agency), "WRITE"),
    ]


def desk_grants_for(agency: str, topic_prefix: str = "") -> list[Grant]:
    """What the desk needs to route to ``agency``: hand dossiers over, read its answers.

    The same grants the desk's declarations give once the catalog names the agency; granted at
    onboarding too, so the catalog change needs no second trip to the cluster.
    """
    return [
        Grant("intake", "topic", topic_prefix + topics.handoffs(agency), "WRITE"),
        Grant("intake", "topic", topic_prefix + topics.agency_events(agency), "READ"),
        Grant("intake", "group", f"{topic_prefix}intake.from.{agency}", "READ"),
    ]


def operator_grants() -> list[Grant]:
    """The operators' tools: every topic, read and write (see the module docstring)."""
    return [
        Grant(OPERATOR, "topic", "*", "READ"),
        Grant(OPERATOR, "topic", "*", "WRITE"),
        Grant(OPERATOR, "group", f"{OPERATOR}.", "READ", "prefixed"),
    ]


def declared_grants(topic_prefix: str = "", agencies: Iterable[str] = ()) -> list[Grant]:
    """Every ACL of a deployment: the services', the plugged-in agencies' and the operator's."""
    grants = {g for runtime in service_runtimes(topic_prefix) for g in runtime_grants(runtime)}
    for agency in agencies:
        grants.update(agency_grants(agency, topic_prefix))
        grants.update(desk_grants_for(agency, topic_prefix))
    grants.update(operator_grants())
    return sorted(grants)


def topics_of(grants: Iterable[Grant]) -> list[str]:
    """The concrete topics the grants name (not patterns)."""
    return sorted(
        {g.name for g in grants if g.resource == "topic" and g.pattern == "literal" and g.name != "*"}
    )


def principals_of(grants: Iterable[Grant]) -> list[str]:
    """Every principal the grants name."""
    return sorted({g.principal for g in grants})


class ProvisioningError(RuntimeError):
    """The cluster refused part of the provisioning; the message says what and why."""


def apply(
    admin: KafkaAccess,
    grants: Sequence[Grant],
    passwords: dict[str, str],
    *,
    partitions: int = 6,
    replication: int = 1,
) -> None:
    """Create the principals' SCRAM credentials, the topics and the ACLs (idempotent).

    ``admin`` must be a super user. Existing topics, credentials and ACLs are left as they are
    (a credential is set again to the stored password).
    """
    client = AdminClient({**admin.librdkafka(), "client.id": "provisioning"})
    if passwords:
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(
                name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
            )
            for name, password in sorted(passwords.items())
        ]
        _wait(client.alter_user_scram_credentials(upserts), "SCRAM credentials")
    wanted = topics_of(grants)
    existing = set(client.list_topics(timeout=30).topics)
    missing = [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in wanted]
    missing = [t for t in missing if t.topic not in existing]
    if missing:
        _wait(client.create_topics(missing, operation_timeout=30), "topics", ignore=("TOPIC_ALREADY_EXISTS",))
    bindings = [g.binding() for g in grants]
    _wait(client.create_acls(bindings), "ACLs")
    _until_enforced(client, bindings)


def _until_enforced(client: AdminClient, bindings: Sequence[AclBinding], timeout: float = 30) -> None:
    """Wait until the broker's authorizer has every binding.

    The controller accepts new ACLs before the broker has replayed them from the metadata log;
    a client that connects in between (a service just started, an agency just onboarded) would
    be refused. DescribeAcls is answered from the broker's own authorizer, so it tells.
    """
    # None means "any" here (confluent-kafka's documentation); its type hints say str.
    anything: Any = None
    everything = AclBindingFilter(
        ResourceType.ANY,
        anything,
        ResourcePatternType.ANY,
        anything,
        anything,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    wanted = set(bindings)
    deadline = time.monotonic() + timeout
    while True:
        present = set(client.describe_acls(everything).result(timeout=30))
        if wanted <= present:
            return
        if time.monotonic() > deadline:
            raise ProvisioningError(f"{len(wanted - present)} ACLs not in force after {timeout:.0f} s")
        time.sleep(0.1)


def _wait(futures: dict[Any, Future[Any]], what: str, ignore: tuple[str, ...] = ()) -> None:
    failures = []
    for key, future in futures.items():
        try:
            future.result(timeout=60)
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() not in ignore:
                failures.append(f"{key}: {error.str()}")
    if failures:
        raise ProvisioningError(f"the cluster refused {what}: " + "; ".join(failures))


def markdown_table(grants: Sequence[Grant]) -> str:
    """The grants as a Markdown table, one row per principal and resource."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for g in grants:
        name = f"`{g.name}*`" if g.pattern == "prefixed" else f"`{g.name}`"
        rows.setdefault((g.principal, g.resource, name), []).append(g.operation)
    lines = ["| principal | resource | name | operations |", "|---|---|---|---|"]
    lines += [
        f"| `{principal}` | {resource} | {name} | {', '.join(sorted(ops))} |"
        for (principal, resource, name), ops in sorted(rows.items())
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.kafka.acls {show,apply}``."""
    parser = argparse.ArgumentParser(prog="python -m infra.kafka.acls", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["show", "apply"])
    parser.add_argument("--topic-prefix", default="", help="the deployment's KAFKA_TOPIC_PREFIX")
    parser.add_argument("--agency", action="append", default=[], help="an agency plugged in (repeatable)")
    parser.add_argument(
        "--run-dir", type=Path, default=Path(".run"), help="the trust store is <run-dir>/trust"
    )
    parser.add_argument(
        "--trust-dir",
        type=Path,
        help="the trust store itself (docker-compose's trust volume); beats --run-dir",
    )
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--partitions", type=int, default=int(os.environ.get("KAFKA_PARTITIONS", "6")))
    parser.add_argument(
        "--replication-factor", type=int, default=int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    )
    args = parser.parse_args(argv)
    if args.command == "show":
        print(markdown_table(declared_grants(args.topic_prefix, args.agency)), end="")
        return 0
    from infra.kafka.node import ADMIN_PRINCIPAL
    from infra.trust import TrustStore

    store = TrustStore(args.trust_dir or args.run_dir / "trust")
    # As make run does: the agencies onboarded with `python -m infra.agencies add` are granted again.
    grants = declared_grants(args.topic_prefix, sorted({*args.agency, *store.agencies()}))
    admin = store.kafka_access(args.bootstrap_servers, ADMIN_PRINCIPAL)
    apply(
        admin,
        grants,
        {p: store.kafka_password(p) for p in principals_of(grants)},
        partitions=args.partitions,
        replication=args.replication_factor,
    )
    print(f"applied {len(grants)} ACLs for {len(principals_of(grants))} principals", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
