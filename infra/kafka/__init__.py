"""Local Apache Kafka for dev and tests: Maven Central jars, one KRaft node."""

from infra.kafka.node import (
    KAFKA_VERSION,
    KafkaNode,
    KafkaRuntimeError,
    cache_dir,
    ensure_jars,
    free_port,
    libs_dir,
)

__all__ = [
    "KAFKA_VERSION",
    "KafkaNode",
    "KafkaRuntimeError",
    "cache_dir",
    "ensure_jars",
    "free_port",
    "libs_dir",
]
