"""A KRaft cluster of combined broker+controller nodes on 127.0.0.1 (fault tests, ``KAFKA_BROKERS=3``).

Each node is a :class:`~infra.kafka.node.KafkaNode` in its own directory with its own two ports;
all are voters of one controller quorum and share one cluster id. Topics get three replicas and
a write needs two in sync (``min.insync.replicas=2``, producers with ``acks=all``), so any one
node may die without losing an acknowledged record or stopping the system.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from infra.kafka.node import BrokerSecurity, KafkaNode, free_port, random_cluster_id

REPLICATED = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    # A dead node is noticed in seconds, not the default 9 s (the fault tests measure recovery).
    "broker.session.timeout.ms": "4000",
    "broker.heartbeat.interval.ms": "1000",
}
"""Broker settings of a three-node cluster (they replace the single node's factors of 1)."""


class KafkaCluster:
    """``size`` KRaft nodes (3 by default) forming one cluster; started and stopped together."""

    def __init__(
        self,
        *,
        data_dir: Path,
        security: BrokerSecurity,
        size: int = 3,
        heap: str = "384m",
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        """Describe the cluster: free ports and the quorum are chosen now, nothing is started."""
        if size < 3:
            raise ValueError("a replicated cluster needs at least 3 nodes (min.insync.replicas=2)")
        ports = [(free_port(), free_port()) for _ in range(size)]
        voters = ",".join(f"{i}@127.0.0.1:{controller}" for i, (_, controller) in enumerate(ports, 1))
        cluster_id = random_cluster_id()
        self.nodes = [
            KafkaNode(
                data_dir=Path(data_dir) / f"node-{i}",
                security=security,
                port=port,
                controller_port=controller,
                heap=heap,
                cluster_id=cluster_id,
                overrides={
                    "node.id": str(i),
                    "controller.quorum.voters": voters,
                    **REPLICATED,
                    **(overrides or {}),
                },
            )
            for i, (port, controller) in enumerate(ports, 1)
        ]

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma-separated."""
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        """The node with Kafka's ``node.id`` ``node_id`` (1-based)."""
        return self.nodes[node_id - 1]

    def is_running(self) -> bool:
        """True when every node runs."""
        return all(node.is_running() for node in self.nodes)

    def start(self) -> None:
        """Start every node that is not running (they elect a controller among themselves)."""
        for node in self.nodes:
            if not node.is_running():
                node.start()

    def wait_ready(self, timeout: float = 90) -> None:
        """Block until every node answers (a node answers once the quorum has a leader)."""
        for node in self.nodes:
            node.wait_ready(timeout=timeout)

    def stop(self, timeout: float = 30) -> None:
        """Stop every node (controlled shutdown, SIGKILL after ``timeout``)."""
        for node in reversed(self.nodes):
            node.stop(timeout=timeout)

    def log_tail(self, lines: int = 20) -> str:
        """The end of every node's log, each under its node id."""
        return "\n".join(f"--- node {i} ---\n{n.log_tail(lines)}" for i, n in enumerate(self.nodes, 1))
