"""The whole system on one machine: Kafka, Postgres and every service as real processes.

``make run`` uses it in the foreground; the end-to-end tests use the same class, so what
the tests prove is what a user runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import services.notification
from contracts.agencies import agency_of
from infra.kafka import KafkaNode, ensure_jars, free_port
from infra.kafka.acls import OPERATOR, ProvisioningError, declared_grants, principals_of, service_runtimes
from infra.kafka.acls import apply as apply_grants
from infra.kafka.cluster import KafkaCluster
from infra.kafka.node import ADMIN_PRINCIPAL
from infra.mailbox import MailboxProcess
from infra.postgres import EmbeddedPostgres, database_url_or_embedded
from infra.tokens import LocalIssuer
from infra.trust import TrustStore, write_private
from services import manifest
from services.runtime.access import Access
from services.runtime.kafka_access import KafkaAccess, KafkaAccessError
from services.runtime.settings import ServiceSettings

SERVICES: dict[str, int] = manifest.default_ports()
"""Every service and its default port (``<SERVICE>_PORT`` overrides it), from the services' manifests.

Kept for callers that want a constant; the stack itself asks :func:`services.manifest.default_ports`
when it is made, so a service package added at run time (a test's throwaway agency) is seen too.
"""

REPO = Path(__file__).resolve().parent.parent
MAX_INSTANCES = 6
"""``SERVICE_INSTANCES`` above this is refused: topics have six partitions, a seventh consumer idles."""


@functools.cache
def service_agencies() -> dict[str, str]:
    """The agency each service publishes as (only services that publish: they need a signing key)."""
    return {r.name: r.agency for r in service_runtimes() if r.publications}


class StackError(RuntimeError):
    """A component did not come up; the message carries its log's tail."""


@dataclass
class ServiceProcess:
    """One running service."""

    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    """Stopped on purpose (``Stack.stop_service``); one that exited otherwise is for a supervisor."""

    @property
    def service(self) -> str:
        """The service this process runs: ``intake`` for ``intake`` and for ``intake#2``."""
        return self.name.partition("#")[0]

    @property
    def extra(self) -> bool:
        """An instance beyond the first (:meth:`Stack.start_instance`)."""
        return self.service != self.name

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP side."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the service's log, for error messages."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    """Kafka + Postgres + the mailbox + every service, started in order and stopped in reverse."""

    run_dir: Path
    kafka_port: int = 9092
    controller_port: int = 9093
    ports: dict[str, int] = field(default_factory=manifest.default_ports)
    extra_env: dict[str, str] = field(default_factory=dict)
    mail_port: int = 0
    """SMTP port of the development mailbox; 0 picks a free port at start."""
    mail_dir: Path | None = None
    """Where the mailbox stores what it receives (default ``<run_dir>/mail``)."""
    brokers: int = field(default_factory=lambda: int(os.environ.get("KAFKA_BROKERS", "1")))
    """Kafka nodes to start: 1 (the default), or 3 or more for a replicated cluster (``KAFKA_BROKERS``)."""
    kafka: KafkaNode | KafkaCluster | None = None
    postgres: EmbeddedPostgres | None = None
    mailbox: MailboxProcess | None = None
    """The mailbox this stack started (None when ``SMTP_HOST`` points at a real server)."""
    bootstrap_servers: str = ""
    database_url: str = ""
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    trust: TrustStore | None = None
    """The deployment's secrets (default ``<run_dir>/trust``); a system beside a stack shares its store."""
    admin_access: KafkaAccess | None = None
    """The super user that provisions principals, topics and ACLs."""
    extra_key_registries: tuple[Path, ...] = ()
    """Public keys trusted beside the deployment's own (the golden streams' signers, in tests)."""
    per_service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per service, what its processes (every instance, every restart) get beside ``extra_env``."""

    def __post_init__(self) -> None:
        if self.trust is None:
            self.trust = TrustStore(self.run_dir / "trust")

    @property
    def secrets(self) -> TrustStore:
        """The trust store (set in ``__post_init__``)."""
        assert self.trust is not None
        return self.trust

    @property
    def issuer(self) -> LocalIssuer:
        """The local token issuer whose JWKS the services trust (``<trust>/tokens``)."""
        return LocalIssuer(self.secrets.root / "tokens")

    def access(self) -> Access:
        """The token check the stack's services apply (for services run inside a test)."""
        return Access.from_env(self.issuer.env())

    def token(self, *roles: str, subject: str = "", agency: str | None = None) -> str:
        """A bearer token for ``roles`` (tests, tools; ``make run`` prints how to mint one)."""
        return self.issuer.mint(*roles, subject=subject or "-".join(roles), agency=agency)

    @property
    def topic_prefix(self) -> str:
        """The system's ``KAFKA_TOPIC_PREFIX`` (empty for a normal deployment)."""
        return self.extra_env.get("KAFKA_TOPIC_PREFIX", "")

    def kafka_access(self, principal: str) -> KafkaAccess:
        """How ``principal`` reaches this stack's Kafka (``admin`` for the super user)."""
        if principal == ADMIN_PRINCIPAL and self.admin_access is not None:
            return self.admin_access
        return self.secrets.kafka_access(self.bootstrap_servers, principal)

    @property
    def superuser(self) -> KafkaAccess:
        """The super user's access: provisioning, and tests that inspect or inject records."""
        return self.kafka_access(ADMIN_PRINCIPAL)

    def provision(self) -> None:
        """Principals, topics and ACLs for this system's topic prefix.

        From the services' declarations and the agencies onboarded with ``python -m infra.agencies``.
        """
        grants = declared_grants(self.topic_prefix, self.secrets.agencies())
        passwords = {p: self.secrets.kafka_password(p) for p in principals_of(grants)}
        apply_grants(
            self.kafka_access(ADMIN_PRINCIPAL),
            grants,
            passwords,
            partitions=int(os.environ.get("KAFKA_PARTITIONS", "6")),
            replication=self.replication,
        )

    def _provision_when_formed(self, attempts: int = 10) -> None:
        """Provision; on a cluster just started, again while its brokers are still joining.

        Every node answering is not yet a formed cluster: librdkafka sends the first requests
        through the bootstrap connections and fails them ("Broker handle destroyed") while the
        brokers register. Provisioning is idempotent, so it is simply done again.
        """
        for attempt in range(1, attempts + 1):
            try:
                self.provision()
                return
            except ProvisioningError as exc:
                if not isinstance(self.kafka, KafkaCluster) or attempt == attempts:
                    raise
                _say(f"Kafka: the cluster is still forming ({exc}); provisioning again")
                time.sleep(2)

    @property
    def replication(self) -> int:
        """Replicas per topic: 3 on a cluster this stack started, else ``KAFKA_REPLICATION_FACTOR`` (1)."""
        if isinstance(self.kafka, KafkaCluster):
            return 3
        return int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))

    def start(self, *, services: bool = True) -> None:
        """Start everything (or only Kafka and Postgres) and wait until each is ready."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.start_infrastructure()
        if services:
            for name in self.ports:
                self.start_service(name)
            for name in self.ports:
                self.wait_healthy(name)

    def start_infrastructure(self) -> None:
        """Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set) and Postgres (unless DATABASE_URL)."""
        existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if existing:
            # An existing cluster: the environment names a super user to provision with.
            try:
                self.admin_access = KafkaAccess.from_env(os.environ)
            except KafkaAccessError as exc:
                raise StackError(f"with KAFKA_BOOTSTRAP_SERVERS set, {exc} (a super user's)") from exc
            self.bootstrap_servers = existing
        else:
            _say("Kafka: preparing Apache Kafka jars (cached after the first run)")
            ensure_jars()
            self.kafka = (
                KafkaNode(
                    data_dir=self.run_dir / "kafka",
                    security=self.secrets.broker_security(),
                    port=self.kafka_port,
                    controller_port=self.controller_port,
                )
                if self.brokers == 1
                else KafkaCluster(
                    data_dir=self.run_dir / "kafka",
                    security=self.secrets.broker_security(),
                    size=self.brokers,
                )
            )
            if not self.kafka.is_running():
                self.kafka.start()
            self.kafka.wait_ready(timeout=90)
            self.bootstrap_servers = self.kafka.bootstrap_servers
        self._provision_when_formed()
        _say(f"Kafka: ready at {self.bootstrap_servers} (SASL/SCRAM, ACLs from the services' declarations)")
        self.database_url, self.postgres = database_url_or_embedded(self.run_dir / "postgres")
        _say("Postgres: ready" + (" (embedded pgserver)" if self.postgres else " (DATABASE_URL)"))
        self.start_mailbox()

    def start_mailbox(self) -> None:
        """The development SMTP server (unless SMTP_HOST names a real one): mail lands in mail_dir."""
        if os.environ.get("SMTP_HOST"):
            _say(f"Mail: SMTP server {os.environ['SMTP_HOST']} (SMTP_HOST)")
            return
        if self.mail_dir is None:
            self.mail_dir = self.run_dir / "mail"
        if self.mail_port == 0:
            self.mail_port = free_port()
        self.mailbox = MailboxProcess(
            directory=self.mail_dir, port=self.mail_port, log_path=self.run_dir / "logs" / "mailbox.log"
        )
        try:
            self.mailbox.start()
        except RuntimeError as exc:
            raise StackError(str(exc)) from exc
        _say(f"Mail: development mailbox on smtp://127.0.0.1:{self.mail_port}, messages in {self.mail_dir}")

    def env(self) -> dict[str, str]:
        """The environment every service process gets."""
        env = dict(os.environ)
        # A super user's credentials given to make run must not leak into the services.
        for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
            env.pop(name, None)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "KAFKA_REPLICATION_FACTOR": str(self.replication),
                "DATABASE_URL": self.database_url,
                "PYTHONUNBUFFERED": "1",
                **{f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()},
                # The notification service sends to our mailbox unless SMTP_HOST names a server.
                **({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.mail_port)} if self.mailbox else {}),
                **self.extra_env,
            }
        )
        return env

    def service_env(self, name: str) -> dict[str, str]:
        """Everything service ``name`` starts with: the stack's environment and its own identity.

        Each service authenticates to Kafka as itself (its own principal, its own ACLs) and
        checks HTTP callers' tokens against the local issuer's JWKS.
        """
        env = {**self.env(), **self.kafka_access(name).env(), **self.signing_env(), **self.issuer.env()}
        agency = service_agencies().get(name)
        if agency is not None:
            env["SIGNING_KEY_FILE"] = str(self.secrets.signing_key_path(agency))
        if name == services.notification.MANIFEST.name and "LETTER_SIGNING_DIR" not in env:
            env["LETTER_SIGNING_DIR"] = str(self.letter_signing_dir())
        return env

    def letter_signing_dir(self) -> Path:
        """The agencies' letter-signing keys and certificates: a test CA each, made at first start."""
        from infra.letter_ca import catalog_agencies  # here: it loads pyHanko, only notification's need

        return self.secrets.letter_signing_dir(catalog_agencies())

    def signed_headers(self, headers: Sequence[tuple[str, bytes]], value: bytes) -> list[tuple[str, bytes]]:
        """``headers`` signed with the key of the agency their ``ce_source`` names (tools and tests).

        What a producer of that agency would send; raises if the source names no agency.
        """
        source = dict(headers).get("ce_source", b"").decode()
        agency = agency_of(source)
        if agency is None:
            raise ValueError(f"ce_source {source!r} names no agency: nothing to sign with")
        return self.secrets.signing_key(agency).sign(headers, value)

    def settings_for(
        self, service: str, *, agency: str | None = None, database_url: str | None = None, **more: Any
    ) -> ServiceSettings:
        """Settings for a service run inside this process (integration tests) against this stack.

        It connects as the super user (a throwaway service has no principal of its own), verifies
        with the stack's key registry and, given ``agency``, signs with that agency's key.
        """
        return ServiceSettings(
            service=service,
            kafka=self.superuser,
            database_url=database_url or self.database_url,
            host="127.0.0.1",
            port=0,
            key_registry=(self.secrets.key_registry_path, *self.extra_key_registries),
            signing_key_file=self.secrets.signing_key_path(agency) if agency else None,
            **more,
        )

    def write_operator_env(self) -> Path:
        """The operator tools' settings (Kafka as ``operator``, the key registry) in a 0600 file."""
        settings = {**self.kafka_access(OPERATOR).env(), **self.signing_env()}
        if self.topic_prefix:
            settings["KAFKA_TOPIC_PREFIX"] = self.topic_prefix
        path = self.secrets.root / "operator.env"
        write_private(path, "".join(f"{name}={value}\n" for name, value in settings.items()))
        return path

    def signing_env(self) -> dict[str, str]:
        """Where every process of the system finds the public keys to verify records with."""
        paths = (self.secrets.key_registry_path, *self.extra_key_registries)
        return {"SIGNING_KEY_REGISTRY": os.pathsep.join(str(p) for p in paths)}

    def start_service(self, name: str, *, extra_env: dict[str, str] | None = None) -> ServiceProcess:
        """Start one service process (again, after a kill) with its log appended.

        ``extra_env`` adds to the stack's environment for this start only (e.g. a restarted
        service's virtual clock start).
        """
        log_dir = self.run_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        service = self.services.get(name) or ServiceProcess(
            name=name, port=self.ports[name], log_path=log_dir / f"{name}.log"
        )
        self._launch(service, name, extra_env or {})
        self.services[name] = service
        return service

    def start_instance(self, name: str, instance: int) -> ServiceProcess:
        """Start another instance of service ``name`` (``name#instance``, a free port, its own log).

        It joins the same consumer groups (Kafka shares the partitions between the instances),
        the same schema and the same outbox; ``wait_healthy`` and ``stop_service`` take the key.
        """
        key = f"{name}#{instance}"
        log_dir = self.run_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        service = self.services.get(key) or ServiceProcess(
            name=key, port=free_port(), log_path=log_dir / f"{name}-{instance}.log"
        )
        self._launch(service, name, {f"{name.upper()}_PORT": str(service.port)})
        self.services[key] = service
        return service

    def restart(self, key: str) -> ServiceProcess:
        """Start again the process ``key`` names: a service, or one of its instances (``name#n``)."""
        name, _, instance = key.partition("#")
        return self.start_instance(name, int(instance)) if instance else self.start_service(name)

    def running(self) -> dict[str, ServiceProcess]:
        """The service processes alive now, by key (``name`` or ``name#n``)."""
        return {
            key: s
            for key, s in list(self.services.items())
            if s.process is not None and s.process.poll() is None
        }

    def exited(self) -> list[str]:
        """The service processes (keys) that exited by themselves: a supervisor restarts them."""
        return [
            key
            for key, s in list(self.services.items())  # a copy: instances start from worker threads
            if s.process is not None and s.process.poll() is not None and not s.stopped
        ]

    def _launch(self, service: ServiceProcess, name: str, extra_env: dict[str, str]) -> None:
        """Run ``services.<name>`` for ``service``, its output appended to its log."""
        service.stopped = False
        with service.log_path.open("ab") as log:
            service.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=REPO,
                env={
                    **self.service_env(name),
                    **self._clock_env(),
                    **self.per_service_env.get(name, {}),
                    **extra_env,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop them in order
            )

    def _clock_env(self) -> dict[str, str]:
        """On a virtual clock, a (re)started service starts at the time its peers have reached."""
        if self.env().get("CLOCK") != "virtual":
            return {}
        moments = []
        for service in list(self.services.values()):
            if service.process is None or service.process.poll() is not None:
                continue
            try:
                with urllib.request.urlopen(f"{service.url}/clock", timeout=2) as response:
                    reading = json.load(response)
                if reading["clock"] == "virtual":  # a peer on the wall clock (per_service_env) is not time
                    moments.append(datetime.fromisoformat(reading["now"]))
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, ValueError):
                continue
        return {"VIRTUAL_CLOCK_START": max(moments).isoformat()} if moments else {}

    def wait_healthy(self, name: str, timeout: float = 90) -> None:
        """Wait until the service's /health says ready; fail with its log if it died."""
        service = self.services[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.process is not None and service.process.poll() is not None:
                raise StackError(f"{name} exited with {service.process.returncode}:\n{service.log_tail()}")
            try:
                with urllib.request.urlopen(f"{service.url}/health", timeout=2) as response:
                    if response.status == 200:
                        _say(f"{name}: ready at {service.url}")
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        raise StackError(f"{name} not ready after {timeout:.0f}s:\n{service.log_tail()}")

    def stop_service(self, name: str, *, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop one service: SIGTERM is graceful, SIGKILL simulates a crash."""
        service = self.services.get(name)
        if service is None or service.process is None:
            return
        service.stopped = True
        if service.process.poll() is not None:
            return
        service.process.send_signal(sig)
        try:
            service.process.wait(timeout)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(5)

    def stop(self) -> None:
        """Stop services, then the mailbox, Kafka and Postgres (only what this stack started)."""
        for name in reversed(list(self.services)):
            self.stop_service(name)
        if self.mailbox is not None:
            self.mailbox.stop()
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()


def _mail_summary(stack: Stack) -> str:
    if stack.mailbox is None:
        return f"sent to {os.environ.get('SMTP_HOST')} (SMTP_HOST)"
    return f"smtp://127.0.0.1:{stack.mail_port}, received messages in {stack.mail_dir}"


def _traces_to_console(port: int, token: str) -> dict[str, str]:
    """Without a collector of their own, services send their spans to the operator console."""
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return {}
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{token}",
    }


def _mint_command(run_dir: Path) -> str:
    """How to mint a token for this run, as a user types it from the repository."""
    python = Path(sys.executable)
    shown = python.relative_to(REPO) if python.is_relative_to(REPO) else python
    where = "" if run_dir.resolve() == (REPO / ".run").resolve() else f" --run-dir {run_dir}"
    return f"{shown} -m infra.tokens{where} mint"


def instances_from(value: str) -> int:
    """``SERVICE_INSTANCES``: processes per service, 1 to ``MAX_INSTANCES``."""
    if not value.isdigit() or not 1 <= int(value) <= MAX_INSTANCES:
        raise StackError(f"SERVICE_INSTANCES must be a whole number from 1 to {MAX_INSTANCES}, not {value!r}")
    return int(value)


def _instances_summary(stack: Stack, instances: int) -> str:
    """The extra instances' addresses, for the banner ("" with one instance per service)."""
    if instances == 1:
        return ""
    extra = ", ".join(f"{key} {s.url}" for key, s in stack.services.items() if s.extra)
    return (
        f"  Instances:   {instances} of every service, in the same consumer groups; the extra ones:\n"
        f"                 {extra}\n"
    )


def _say(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


def interrupt_on_signals() -> None:
    """Make Ctrl-C and SIGTERM interrupt the run (KeyboardInterrupt), so ``finally: stack.stop()`` runs.

    Also when the process was started with SIGINT ignored (``cmd &`` in a script, or ``nohup``):
    without this, a backgrounded long run could only be killed, leaving Kafka, Postgres and the
    services running.
    """

    def interrupt(*_: object) -> None:
        # As if Ctrl-C: inside asyncio.run its handler cancels the main task, so every
        # ``finally`` runs, instead of an exception raised in the middle of the event loop.
        signal.raise_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.stack run``: start everything and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m infra.stack", description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--run-dir", type=Path, default=REPO / ".run")
    args = parser.parse_args(argv)
    ports = {
        name: int(os.environ.get(f"{name.upper()}_PORT", port))
        for name, port in manifest.default_ports().items()
    }
    # One console token per run unless the operator chose one; printed below, never stored.
    token = os.environ.get("CONSOLE_TOKEN") or secrets.token_urlsafe(24)
    stack = Stack(
        run_dir=args.run_dir,
        ports=ports,
        mail_port=int(os.environ.get("SMTP_PORT", 8025)),
        # Officers decide the manual steps; with none at hand, the bot stands in (late at times).
        extra_env={
            "CONSOLE_TOKEN": token,
            "OFFICER_BOT": os.environ.get("OFFICER_BOT", "on"),
            **_traces_to_console(ports["console"], token),
        },
    )
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        instances = instances_from(os.environ.get("SERVICE_INSTANCES", "1"))
        stack.start()
        for n in range(2, instances + 1):
            for name in ports:
                stack.start_instance(name, n)
        for key in [k for k, s in stack.services.items() if s.extra]:
            stack.wait_healthy(key)
        intake = stack.services["intake"].url
        operator_env = stack.write_operator_env()
        mint = _mint_command(args.run_dir)
        print(
            f"\nThe system is running.\n"
            f"  Intake API:  {intake}  (OpenAPI: {intake}/docs, {intake}/openapi.json)\n"
            f"  Console:     {stack.services['console'].url}/login?token={token}\n"
            f"  Procedures:  curl {intake}/procedures\n"
            f"  Sign in:     a bearer token per role (JWT, 8 hours), e.g. for a desk officer:\n"
            f"                 TOKEN=$({mint} --role desk_officer --subject desk-1)\n"
            f'                 curl -H "Authorization: Bearer $TOKEN" {intake}/dossiers/<id>\n'
            f"               an agency officer: {mint} --role agency_officer --agency land_registry"
            f" --subject land-registry-1\n"
            f"                 then the queue: {stack.services['land_registry'].url}/officer\n"
            f"               an operator: the console link above, or {mint} --role operator\n"
            f"               (roles: citizen, desk_officer, agency_officer, payment_gateway, operator)\n"
            f"  Kafka:       {stack.bootstrap_servers} (SASL/SCRAM-SHA-512; credentials in"
            f" {stack.secrets.root}, mode 0600)\n"
            f"  Operator:    set -a; . {operator_env}; set +a   (then the record, replay and"
            f" dead-letter tools)\n"
            f"  Agencies:    python -m infra.agencies add <name>   (principal, ACLs, signing key)\n"
            f'  Notices:     curl -H "Authorization: Bearer $TOKEN"'
            f" '{stack.services['notification'].url}/notices?dossier_id=…'\n"
            f"  Mail:        {_mail_summary(stack)}\n"
            f"  Logs:        {args.run_dir / 'logs'}\n"
            f"{_instances_summary(stack, instances)}"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while not stopping:
            for key in stack.exited():
                _say(f"{key} exited; restarting")
                stack.restart(key)
            if stack.mailbox is not None and not stack.mailbox.is_alive():
                _say("mailbox exited; restarting")
                stack.start_mailbox()
            time.sleep(1)
    except StackError as exc:
        print(f"[stack] {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
