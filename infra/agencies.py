"""Onboard an agency with software of its own: ``python -m infra.agencies add <agency>``.

One command gives the agency everything it needs to plug in, and nothing more:

- a Kafka principal of its own (SCRAM-SHA-512, a generated password);
- ACLs of the shape every agency has (``infra/kafka/acls.py``): read ``handoffs.<agency>``, write
  ``<agency>.events`` and ``<agency>.dlq``, consumer groups named ``<agency>.*``; and for the desk,
  write ``handoffs.<agency>`` and read ``<agency>.events``, so that adding the agency to the
  procedure catalog is all that is left to route dossiers to it;
- the topics;
- an Ed25519 signing key pair: the private key in a file only the agency gets, the public key in
  the deployment's key registry, where every consumer finds it (no restart needed).

It prints what the agency's software needs and writes it, mode 0600, to
``<run_dir>/trust/agencies/<agency>.env``. ``rotate-key`` gives the agency a new signing key (the
old one stays valid for what it signed); ``revoke-key`` withdraws a compromised one; ``list``
shows the agencies onboarded. Against ``make run``'s Kafka by default; ``--bootstrap-servers`` and
``--run-dir`` for another deployment.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from contracts import topics
from infra.kafka.acls import ProvisioningError, agency_grants, apply, desk_grants_for
from infra.kafka.node import ADMIN_PRINCIPAL
from infra.trust import TrustStore, write_private
from services import manifest

AGENCY_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
"""As ``contracts.agencies.Agency``: it becomes a topic name, a principal and a CloudEvents source."""

RESERVED = frozenset(
    {"admin", "controller", "operator", "one_stop", "citizen"}
    # The services that are no agency answering handoffs (an agency with software of its own may
    # replace one of ours, as it always could).
    | {m.name for m in manifest.manifests() if not m.answers_handoffs}
)
"""Names of the deployment's own principals and roles: an agency may not take them."""


class OnboardingError(RuntimeError):
    """The agency cannot be onboarded as asked; the message says why."""


def onboard(
    store: TrustStore, bootstrap_servers: str, agency: str, *, topic_prefix: str = ""
) -> dict[str, str]:
    """Create the agency's principal, ACLs, topics and signing key; return its connection settings."""
    if not AGENCY_NAME.fullmatch(agency):
        raise OnboardingError(f"{agency!r}: an agency name is lower-case letters, digits and '_' (2-40)")
    if agency in RESERVED:
        raise OnboardingError(f"{agency!r} is the name of one of the deployment's own principals")
    grants = [*agency_grants(agency, topic_prefix), *desk_grants_for(agency, topic_prefix)]
    admin = store.kafka_access(bootstrap_servers, ADMIN_PRINCIPAL)
    try:
        apply(admin, grants, {agency: store.kafka_password(agency), "intake": store.kafka_password("intake")})
    except ProvisioningError as exc:
        raise OnboardingError(str(exc)) from exc
    except Exception as exc:  # confluent-kafka raises its own types for an unreachable broker
        raise OnboardingError(f"cannot provision on {bootstrap_servers}: {exc}") from exc
    key_file = store.signing_key_path(agency)
    store.remember_agency(agency)
    settings = {
        **store.kafka_access(bootstrap_servers, agency).env(),
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "SIGNING_KEY_FILE": str(key_file),
        "SIGNING_KEY_REGISTRY": str(store.key_registry_path),
    }
    lines = [f"{name}={value}" for name, value in settings.items()]
    write_private(store.root / "agencies" / f"{agency}.env", "\n".join(lines) + "\n")
    return settings


def _describe(store: TrustStore, agency: str, settings: dict[str, str]) -> str:
    prefix = settings["KAFKA_TOPIC_PREFIX"]
    key = store.signing_key(agency)
    env_file = store.root / "agencies" / f"{agency}.env"
    return f"""\
Agency {agency!r} onboarded. What its software needs (also in {env_file}, mode 0600):

  Kafka          {settings["KAFKA_BOOTSTRAP_SERVERS"]}, {settings["KAFKA_SECURITY_PROTOCOL"]} with \
{settings["KAFKA_SASL_MECHANISM"]}
  principal      {agency} (password in the .env file; give it over a secure channel)
  reads          {prefix}{topics.handoffs(agency)}   (dossier.handed_over.v1, addressed to it alone)
  writes         {prefix}{topics.agency_events(agency)}   (dossier.step_completed.v1: its answers)
                 {prefix}{topics.dead_letters(agency)}   (records it could not process)
  groups         {prefix}{agency}.*
  signs with     {settings["SIGNING_KEY_FILE"]} (key id {key.key_id}; Ed25519, private JWK)
  verifies with  {settings["SIGNING_KEY_REGISTRY"]} (every agency's public keys, a JWKS)
  contracts      contracts/EVENTS.md, contracts/asyncapi.yaml, contracts/schemas/, contracts/signing.py

Every record it publishes must carry ce_signature and ce_keyid over the attributes and data
(contracts/signing.py says how); unsigned or mis-signed records are dead-lettered, not read.
To route dossiers to it, add its steps to the procedure catalog (services/intake/catalog/).
"""


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m infra.agencies",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", type=Path, default=Path(".run"), help="the deployment's run directory")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092", help="Kafka (make run's by default)")
    parser.add_argument("--topic-prefix", default="", help="the deployment's KAFKA_TOPIC_PREFIX")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="principal, ACLs, topics and signing key for a new agency")
    add.add_argument("agency")
    add.add_argument("--json", action="store_true", help="print the settings as JSON instead of a summary")
    rotate = commands.add_parser("rotate-key", help="a new signing key; the old one keeps verifying")
    rotate.add_argument("agency")
    revoke = commands.add_parser("revoke-key", help="withdraw a compromised key: nothing it signed verifies")
    revoke.add_argument("key_id")
    commands.add_parser("list", help="the agencies onboarded and their keys")
    args = parser.parse_args(argv)
    store = TrustStore(args.run_dir / "trust")
    try:
        if args.command == "add":
            settings = onboard(store, args.bootstrap_servers, args.agency, topic_prefix=args.topic_prefix)
            print(json.dumps(settings, indent=2) if args.json else _describe(store, args.agency, settings))
        elif args.command == "rotate-key":
            if args.agency not in {k.agency for k in store.registry()}:
                raise OnboardingError(f"{args.agency!r} has no key to rotate; onboard it first")
            path = store.rotate(args.agency)
            print(f"new key for {args.agency}: {path} (restart its software to sign with it)")
        elif args.command == "revoke-key":
            try:
                revoked = store.revoke(args.key_id)
            except KeyError:
                raise OnboardingError(f"no key {args.key_id!r} in {store.key_registry_path}") from None
            print(
                f"revoked {revoked.key_id} of {revoked.agency}; `rotate-key {revoked.agency}` gives a new one"
            )
        else:
            for agency in store.agencies():
                keys = [f"{k.key_id} ({k.status})" for k in store.registry() if k.agency == agency]
                print(f"{agency}: {', '.join(keys) or 'no key'}")
    except OnboardingError as exc:
        print(f"infra.agencies: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
