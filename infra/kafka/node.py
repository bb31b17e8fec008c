"""A single-node Apache Kafka (KRaft) broker for development and tests.

The release tarball cannot be downloaded here, so the broker's runtime jars come from
Maven Central (see ``pom.xml``) and are cached once per machine. ``KafkaNode`` then
writes a ``server.properties``, formats the storage and runs ``kafka.Kafka`` as a
detached JVM.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "ADMIN_PRINCIPAL",
    "KAFKA_VERSION",
    "BrokerSecurity",
    "KafkaNode",
    "KafkaRuntimeError",
    "cache_dir",
    "ensure_jars",
    "free_port",
    "libs_dir",
]

KAFKA_VERSION = "3.9.2"
"""Apache Kafka release run here; keep in step with ``kafka.version`` in pom.xml.

3.9.x because aiokafka 0.14 relies on protocol versions Kafka 4.0 removed (KIP-896).
"""

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "pom.xml"
_LOG4J = _HERE / "log4j.properties"
_MARKER = ".complete"
_TAIL_LINES = 40

# Kafka protocol constants for the readiness probe (ApiVersions, api key 18, version 0).
_API_VERSIONS = 18
_API_METADATA = 3
_CLIENT_ID = b"infra.kafka.probe"


ADMIN_PRINCIPAL = "admin"
"""The broker's super user: the broker itself between listeners, and provisioning (users, ACLs, topics)."""
SASL_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class BrokerSecurity:
    """The secrets a broker starts with: SASL/SCRAM for clients, the StandardAuthorizer for ACLs.

    Clients use SCRAM-SHA-512 on the only client listener; nobody gets in without a user, and no
    one may do anything an ACL does not allow (``allow.everyone.if.no.acl.found=false``). The
    controller listener uses SASL/PLAIN with a password of its own: SCRAM credentials live in the
    metadata log the controller serves, so they cannot guard the controller itself (KIP-900).
    """

    admin_password: str
    """SCRAM password of :data:`ADMIN_PRINCIPAL`, written into the storage at format time."""
    controller_password: str

    def properties(self) -> dict[str, str]:
        """The ``server.properties`` entries that turn authentication and authorization on."""
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        controller = f'username="controller" password="{self.controller_password}"'
        return {
            "listener.security.protocol.map": "BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "BROKER",
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
            "listener.name.broker.scram-sha-512.sasl.jaas.config": (
                f'{scram} required username="{ADMIN_PRINCIPAL}" password="{self.admin_password}";'
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain} required {controller} user_controller="{self.controller_password}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_PRINCIPAL};User:controller",
            "allow.everyone.if.no.acl.found": "false",
            # Topics are created by provisioning, with their ACLs; a typo must not create one.
            "auto.create.topics.enable": "false",
        }

    def format_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create the admin's SCRAM credentials (KIP-900)."""
        return ["--add-scram", f"{SASL_MECHANISM}=[name={ADMIN_PRINCIPAL},password={self.admin_password}]"]


class KafkaRuntimeError(RuntimeError):
    """Fetching the jars, or starting, probing or stopping the broker failed.

    The message carries the relevant tail of ``mvn`` output or of ``kafka.log`` so the
    caller can show it as is.
    """


def cache_dir() -> Path:
    """Return the cache root: ``$DOSSIER_CACHE_DIR`` or ``~/.cache/dossier-routing``."""
    env = os.environ.get("DOSSIER_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dossier-routing"


def libs_dir() -> Path:
    """Return where the Kafka jars live once :func:`ensure_jars` has run."""
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _pom_digest() -> str:
    # The marker records which pom the jars came from: adding a dependency refetches.
    return hashlib.sha256(_POM.read_bytes()).hexdigest()


def ensure_jars() -> Path:
    """Download Kafka's runtime jars with Maven once; return the directory holding them.

    Skipped when a marker, written only after ``mvn`` succeeded, matches the current
    pom; so an interrupted download is redone from scratch. Raises
    :class:`KafkaRuntimeError` with the tail of Maven's output when ``mvn`` is missing
    or fails.
    """
    libs = libs_dir()
    root = libs.parent
    marker = root / _MARKER
    digest = _pom_digest()
    if marker.is_file() and marker.read_text().strip() == digest:
        return libs

    root.mkdir(parents=True, exist_ok=True)
    # Parallel test workers may all get here on a fresh machine: one downloads, the
    # others wait and then see the marker.
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == digest:
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaRuntimeError("Maven ('mvn') is not on PATH; it is needed once to fetch Kafka's jars")
        print(
            f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central (first run only)…",
            file=sys.stderr,
            flush=True,
        )
        marker.unlink(missing_ok=True)
        # Start clean: leftovers of an interrupted run or of an older pom would end up
        # on the classpath next to the right jars.
        shutil.rmtree(libs, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(_POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
        ]
        try:
            result = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
        except OSError as exc:
            raise KafkaRuntimeError(f"could not run {mvn}: {exc}") from exc
        if result.returncode != 0:
            raise KafkaRuntimeError(
                f"mvn exited with {result.returncode} while fetching Kafka "
                f"{KAFKA_VERSION} jars:\n{_tail(result.stdout)}"
            )
        if not any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise KafkaRuntimeError(
                f"mvn succeeded but {libs} has no kafka_2.13-{KAFKA_VERSION}.jar:\n" + _tail(result.stdout)
            )
        marker.write_text(digest + "\n")
    return libs


_HANDED_OUT: set[int] = set()
"""Ports free_port already returned: a stack picks all its ports before it binds any, so the
kernel may offer the same free port twice (a mailbox once answered a service's /clock)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now and not handed out before (racy)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # The JVM binds with SO_REUSEADDR, so connections of a killed broker still in
        # TIME_WAIT do not block it; without the flag this check would refuse a restart.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def random_cluster_id() -> str:
    """A new cluster id in Kafka's Uuid text form."""
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding.
    # Uuid.randomUuid rejects ids starting with '-' (a CLI would read an option).
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):
            return cid


def _api_versions_ok(port: int, timeout: float) -> bool:
    """Return whether the broker on ``port`` answers ApiVersions v0 without error.

    A TCP connect alone is not enough: an accepting port does not prove the broker
    serves requests. In KRaft mode the broker answers clients only once it has caught
    up with the metadata log and been unfenced. ApiVersions is the first request every
    client sends, so a good answer means clients can proceed.
    """
    correlation_id = 1
    # Request header v1: api_key, api_version, correlation_id, client_id (int16
    # length + bytes); ApiVersions v0 has an empty body.
    body = struct.pack(">hhih", _API_VERSIONS, 0, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv_exact(s, 4))[0]
            resp = _recv_exact(s, size)
    except (OSError, ConnectionError):
        return False
    # Response v0: correlation_id, error_code, [api_key, min_version, max_version].
    if len(resp) < 10:
        return False
    got_cid, error_code, count = struct.unpack_from(">ihi", resp, 0)
    if got_cid != correlation_id or error_code != 0:
        return False
    keys = {struct.unpack_from(">h", resp, 10 + 6 * i)[0] for i in range(count)}
    return _API_METADATA in keys


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Exists but belongs to someone else: not ours, but alive.
        return True
    # A zombie still answers kill(0); it is dead for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


class KafkaNode:
    """One combined broker+controller KRaft node on 127.0.0.1, data in ``data_dir``.

    Security is not optional: clients authenticate with SASL/SCRAM and ACLs decide what each
    may do (see :class:`BrokerSecurity`).

    The JVM runs detached (own session), so it outlives the Python process that
    started it; ``data_dir/kafka.pid`` lets a later process (e.g.
    ``python -m infra.kafka stop``) find it.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        security: BrokerSecurity,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
        overrides: Mapping[str, str] | None = None,
        cluster_id: str | None = None,
    ) -> None:
        """Describe a node; nothing touches the disk or the network until :meth:`start`.

        ``overrides`` are extra or replacing ``server.properties`` entries, e.g.
        ``{"broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "1000"}`` to cut the ~10 s a restart takes
        after the broker was killed (see :meth:`start`). ``cluster_id``: the id the storage is
        formatted with, shared by the nodes of a cluster (:class:`KafkaCluster`); random if None.
        """
        self.data_dir = Path(data_dir).resolve()
        self.security = security
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.overrides: dict[str, str] = dict(overrides or {})
        self.cluster_id = cluster_id
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """Return the client bootstrap address, ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        """Return the path of the generated ``server.properties``."""
        return self.data_dir / "server.properties"

    @property
    def log_path(self) -> Path:
        """Return the file receiving the broker's stdout and stderr."""
        return self.data_dir / "kafka.log"

    @property
    def pid_path(self) -> Path:
        """Return the file holding the broker JVM's pid while it runs."""
        return self.data_dir / "kafka.pid"

    @property
    def log_dirs(self) -> Path:
        """Return Kafka's ``log.dirs`` (the partition data and ``meta.properties``)."""
        return self.data_dir / "data"

    def pid(self) -> int | None:
        """Return the pid recorded in the pid file, or ``None`` if there is none."""
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        """Return whether the broker JVM of this data dir is alive (maybe not ready)."""
        if self._proc is not None:
            return self._proc.poll() is None
        pid = self.pid()
        if pid is None or not _pid_alive(pid):
            return False
        # Guard against pid reuse after a reboot or crash: it must be our broker.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc: trust kill(0)
        return b"kafka.Kafka" in cmdline and str(self.config_path).encode() in cmdline

    def start(self) -> None:
        """Write the config, format storage on first use, and launch the broker JVM.

        Returns as soon as the JVM is launched; call :meth:`wait_ready` before use.
        Ready takes ~2-3 s; after an unclean stop (SIGKILL, crash) ~12 s, because the
        restarted controller keeps the dead broker's session and refuses the new
        registration until ``broker.session.timeout.ms`` (9 s) passes (KAFKA-19130).
        Raises :class:`KafkaRuntimeError` if this node already runs, a port is taken,
        or ``java`` or the storage format fails.
        """
        if self.is_running():
            raise KafkaRuntimeError(f"Kafka already running for {self.data_dir} (pid {self.pid()})")
        # Fail here rather than let wait_ready talk to whatever else owns the port.
        for p in (self.port, self.controller_port):
            if _port_in_use(p):
                raise KafkaRuntimeError(f"port {p} on 127.0.0.1 is already in use")
        java = shutil.which("java")
        if java is None:
            raise KafkaRuntimeError("'java' is not on PATH; Kafka needs a Java 17 runtime")
        libs = ensure_jars()

        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The file holds the controller's and the admin's passwords: readable by us alone.
        self.config_path.touch(mode=0o600)
        self.config_path.chmod(0o600)
        self.config_path.write_text(self._server_properties())
        if not (self.log_dirs / "meta.properties").exists():
            self._format(java, libs)
        self._check_formatted_for_these_credentials()

        cmd = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            # The JVM flags kafka-run-class.sh uses by default.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration={_LOG4J.as_uri()}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.config_path),
        ]
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n=== infra.kafka start {stamp} ===\n".encode())
            log.flush()
            # Own session: Ctrl-C in the launching terminal must not kill the broker,
            # and the broker must outlive `python -m infra.kafka start`.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._proc.pid}\n")

    def _server_properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"BROKER://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"BROKER://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            **self.security.properties(),
            "log.dirs": str(self.log_dirs),
            "num.partitions": "6",
            # One broker: a factor above 1 makes the internal topics uncreatable.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "min.insync.replicas": "1",
            # Tests start consumers right away; the default 3 s delay only adds latency.
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(self.overrides)
        header = "# Generated by infra.kafka.node on every start; edits are overwritten.\n"
        return header + "".join(f"{k}={v}\n" for k, v in props.items())

    def _format(self, java: str, libs: Path) -> None:
        cmd = [
            java,
            "-Xmx256m",
            f"-Dlog4j.configuration={_LOG4J.as_uri()}",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id or random_cluster_id(),
            "-c",
            str(self.config_path),
            *self.security.format_arguments(),
        ]
        result = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KafkaRuntimeError(
                f"formatting Kafka storage in {self.log_dirs} failed "
                f"(exit {result.returncode}):\n{_tail(result.stdout)}"
            )
        self._credentials_marker.write_text(self._admin_fingerprint() + "\n")

    @property
    def _credentials_marker(self) -> Path:
        return self.data_dir / "admin-credentials.sha256"

    def _admin_fingerprint(self) -> str:
        return hashlib.sha256(self.security.admin_password.encode()).hexdigest()

    def _check_formatted_for_these_credentials(self) -> None:
        """Refuse storage formatted without security, or for another admin password.

        The admin's SCRAM credentials are written into the storage once, at format time; a broker
        on older storage would start and then refuse every client, which is a worse way to learn it.
        """
        try:
            recorded = self._credentials_marker.read_text().strip()
        except FileNotFoundError:
            recorded = ""
        if recorded != self._admin_fingerprint():
            why = "without SASL/SCRAM" if not recorded else "for other credentials"
            raise KafkaRuntimeError(
                f"the Kafka storage in {self.log_dirs} was formatted {why}; remove {self.data_dir}"
                " (`make clean` for make run's .run/) so it is formatted again with the current ones"
            )

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """Return the last ``lines`` lines of ``kafka.log`` (empty if there is none)."""
        try:
            with self.log_path.open("rb") as f:
                return _tail(_read_end(f).decode("utf-8", "replace"), lines)
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the broker answers Kafka's ApiVersions request.

        Raises :class:`KafkaRuntimeError` with the tail of ``kafka.log`` if the JVM
        exits first or ``timeout`` seconds pass.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise KafkaRuntimeError(
                    f"Kafka exited during startup; last lines of {self.log_path}:\n" + self.log_tail()
                )
            if _api_versions_ok(self.port, timeout=1.0):
                return
            if time.monotonic() >= deadline:
                raise KafkaRuntimeError(
                    f"Kafka not ready on {self.bootstrap_servers} after {timeout:g} s; "
                    f"last lines of {self.log_path}:\n" + self.log_tail()
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker: SIGTERM (controlled shutdown), SIGKILL after ``timeout`` s.

        A no-op if it is not running. Removes the pid file.
        """
        pid = self._proc.pid if self._proc is not None else self.pid()
        if pid is not None and self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            self._wait_exit(timeout)
        self.kill()  # what the controlled shutdown left running, and the pid file

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would (no controlled shutdown); wait until it is gone."""
        pid = self._proc.pid if self._proc is not None else self.pid()
        if pid is not None and self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not self._wait_exit(10):
                raise KafkaRuntimeError(f"Kafka (pid {pid}) survived SIGKILL")
        self.pid_path.unlink(missing_ok=True)
        self._proc = None

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


def _read_end(f: IO[bytes], max_bytes: int = 64 * 1024) -> bytes:
    # kafka.log grows across restarts; read only its end.
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - max_bytes))
    return f.read()
