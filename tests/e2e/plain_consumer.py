"""An outside agency's consumer: only aiokafka, jsonschema and the committed JSON Schemas.

Usage: python plain_consumer.py BOOTSTRAP SCHEMAS_DIR DOSSIER_ID TOPIC [TOPIC ...]
with the principal's SCRAM credentials in KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD.
Reads every record of one dossier from the topics, validates each CloudEvent (binary mode)
against the latest committed schema of its ce_type, and prints one JSON line per event.
Deliberately imports nothing from this project.
"""

import asyncio
import json
import os
import sys
from pathlib import Path

import jsonschema
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


def latest_schema(schemas: Path, event_type: str) -> dict[str, object]:
    revisions = sorted((schemas / event_type).glob("*.json"), key=lambda p: int(p.stem))
    schema: dict[str, object] = json.loads(revisions[-1].read_text(encoding="utf-8"))
    return schema


def access(bootstrap: str) -> dict[str, str]:
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": os.environ["KAFKA_SASL_USERNAME"],
        "sasl_plain_password": os.environ["KAFKA_SASL_PASSWORD"],
    }


async def main(bootstrap: str, schemas: Path, dossier_id: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(**access(bootstrap))
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(**access(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for record in batch:
                    if record.key != dossier_id.encode():
                        continue
                    headers = {name: value.decode() for name, value in record.headers}
                    assert headers["ce_specversion"] == "1.0"
                    assert headers["content-type"] == "application/json"
                    assert headers["ce_subject"] == dossier_id
                    data = json.loads(record.value)
                    jsonschema.validate(data, latest_schema(schemas, headers["ce_type"]))
                    print(
                        json.dumps(
                            {
                                "topic": record.topic,
                                "type": headers["ce_type"],
                                "source": headers["ce_source"],
                            }
                        )
                    )
    finally:
        await consumer.stop()
    own = sorted(m for m in sys.modules if m.split(".")[0] in {"contracts", "services", "infra"})
    assert not own, f"project code was imported: {own}"


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4:]))
