"""An outside agency's consumer: only aiokafka, jsonschema, cryptography and what is published.

Usage: python plain_consumer.py BOOTSTRAP SCHEMAS_DIR DOSSIER_ID TOPIC [TOPIC ...]
with the principal's SCRAM credentials in KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD and the
key registry (a JWKS) in SIGNING_KEY_REGISTRY. Reads every record of one dossier from the topics,
verifies its signature as contracts/signing.py describes it (the signed array, Ed25519, the key
bound to the source's agency), validates each CloudEvent (binary mode) against the latest
committed schema of its ce_type, and prints one JSON line per event.
Deliberately imports nothing from this project.
"""

import asyncio
import base64
import hashlib
import json
import os
import sys
from pathlib import Path

import jsonschema
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNED = ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "ce_dataschema")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def keys() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path in os.environ["SIGNING_KEY_REGISTRY"].split(os.pathsep):
        if Path(path).exists():
            found |= {k["kid"]: k for k in json.loads(Path(path).read_text(encoding="utf-8"))["keys"]}
    return found


def verify(headers: dict[str, str], value: bytes, registry: dict[str, dict[str, str]]) -> str:
    """The key id that signed the record; raises if none of the published keys did."""
    jwk = registry[headers["ce_keyid"]]
    assert jwk["status"] != "revoked"
    assert headers["ce_source"] == "/vn/gov/agencies/" + jwk["agency"], "the key is not the source's"
    signed = ["vn-gov-dossier-event-signature/1", *(headers.get(n, "") for n in SIGNED)]
    message = json.dumps(
        [*signed, hashlib.sha256(value).hexdigest()], ensure_ascii=False, separators=(",", ":")
    )
    Ed25519PublicKey.from_public_bytes(unb64(jwk["x"])).verify(
        unb64(headers["ce_signature"]), message.encode()
    )
    return jwk["kid"]


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
    registry = keys()
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
                    verified_by = verify(headers, record.value, registry)
                    data = json.loads(record.value)
                    jsonschema.validate(data, latest_schema(schemas, headers["ce_type"]))
                    print(
                        json.dumps(
                            {
                                "topic": record.topic,
                                "type": headers["ce_type"],
                                "source": headers["ce_source"],
                                "verified_by": verified_by,
                            }
                        )
                    )
    finally:
        await consumer.stop()
    own = sorted(m for m in sys.modules if m.split(".")[0] in {"contracts", "services", "infra"})
    assert not own, f"project code was imported: {own}"


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4:]))
