"""Command line: ``python -m infra.kafka {fetch,start,stop,status}``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from infra.kafka.node import KAFKA_VERSION, KafkaNode, KafkaRuntimeError, ensure_jars

# LSB init-script convention for `status`: 3 means "program is not running".
_EXIT_NOT_RUNNING = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m infra.kafka",
        description=f"Run a local single-node Apache Kafka {KAFKA_VERSION} (KRaft).",
    )
    p.add_argument(
        "command",
        choices=["fetch", "start", "stop", "status"],
        help="fetch: download the jars; start: start and wait until ready; "
        "stop: stop the broker of --data-dir; status: exit 0 if it runs, else 3",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".run/kafka"),
        help="config, data, kafka.log and kafka.pid (default: .run/kafka)",
    )
    p.add_argument(
        "--trust-dir",
        type=Path,
        default=Path(".run/trust"),
        help="the deployment's secrets: admin and controller passwords (default: .run/trust)",
    )
    p.add_argument("--port", type=int, default=9092, help="client port (default 9092)")
    p.add_argument(
        "--controller-port",
        type=int,
        default=9093,
        help="KRaft controller port (default 9093)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60,
        help="seconds to wait for readiness (default 60)",
    )
    return p


def _running_port(node: KafkaNode) -> int | None:
    # A running broker keeps the port it was started with, whatever --port says now.
    try:
        for line in node.config_path.read_text().splitlines():
            if line.startswith("advertised.listeners="):
                return int(line.rsplit(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def _start(node: KafkaNode, timeout: float) -> int:
    if node.is_running():
        # Idempotent for scripts: a broker already up for this data dir is success,
        # provided it answers.
        node.port = _running_port(node) or node.port
        node.wait_ready(timeout=timeout)
        print(f"already running (pid {node.pid()})", file=sys.stderr)
        print(node.bootstrap_servers)
        return 0
    t0 = time.monotonic()
    node.start()
    try:
        node.wait_ready(timeout=timeout)
    except KafkaRuntimeError:
        node.stop(timeout=10)  # do not leave a half-started JVM behind
        raise
    print(
        f"Kafka {KAFKA_VERSION} ready in {time.monotonic() - t0:.1f} s "
        f"(pid {node.pid()}, log {node.log_path})",
        file=sys.stderr,
    )
    # stdout gets only the address: `BOOTSTRAP=$(python -m infra.kafka start)` works.
    print(node.bootstrap_servers)
    return 0


def _stop(node: KafkaNode) -> int:
    if not node.is_running():
        print(f"not running ({node.data_dir})", file=sys.stderr)
        return 0
    node.stop()
    print(f"stopped ({node.data_dir})", file=sys.stderr)
    return 0


def _status(node: KafkaNode) -> int:
    if node.is_running():
        print(f"running (pid {node.pid()}): {node.data_dir}")
        return 0
    print(f"not running: {node.data_dir}")
    return _EXIT_NOT_RUNNING


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the process exit code (1 on failure, with a message)."""
    args = _parser().parse_args(argv)
    # Imported here: the trust store imports the runtime, which `fetch` on a bare machine does not need.
    from infra.trust import TrustStore

    node = KafkaNode(
        data_dir=args.data_dir,
        security=TrustStore(args.trust_dir).broker_security(),
        port=args.port,
        controller_port=args.controller_port,
    )
    try:
        if args.command == "fetch":
            print(ensure_jars())
            return 0
        if args.command == "start":
            return _start(node, args.timeout)
        if args.command == "stop":
            return _stop(node)
        return _status(node)
    except KafkaRuntimeError as exc:
        print(f"infra.kafka {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
