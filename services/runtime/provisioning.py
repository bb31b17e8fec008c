"""The topics a service uses, checked (and created where its principal may) at start."""

from __future__ import annotations

import os
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from services.runtime.kafka_access import KafkaAccess


async def ensure_topics(
    access: KafkaAccess,
    names: Sequence[str],
    *,
    partitions: int | None = None,
    client_id: str = "topic-setup",
) -> None:
    """Create the topics among ``names`` that are missing (idempotent).

    Partitions and replication from ``KAFKA_PARTITIONS`` (6) and ``KAFKA_REPLICATION_FACTOR`` (1)
    unless ``partitions`` is given. Provisioning creates every declared topic with the admin
    principal; a service's own principal may not create topics, so for a service this only
    confirms that its topics are there, and says which are not.
    """
    partitions = partitions or int(os.environ.get("KAFKA_PARTITIONS", "6"))
    replication = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    admin = AIOKafkaAdminClient(**access.client_kwargs(), client_id=client_id)
    await admin.start()
    try:
        # A principal sees only the topics it may describe: missing may also mean "not yours".
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in missing]
        )
        # Another service may create one between our list and create: "already exists" is fine.
        refused = {
            topic: for_code(code).__name__
            for topic, code, *_ in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        }
        if refused:
            raise TopicsNotProvisioned(
                f"{access.principal} may not use or create {', '.join(sorted(refused))}"
                f" ({', '.join(sorted(set(refused.values())))}): topics and their ACLs are provisioned"
                " from the services' declarations (`python -m infra.kafka.acls apply`; make run does it)"
            )
    finally:
        await admin.close()


class TopicsNotProvisioned(RuntimeError):
    """A service's topics are missing or not granted to its principal."""
