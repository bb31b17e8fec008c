"""Regenerate the golden streams: ``.venv/bin/python -m tests.golden.make_golden [NAME ...]``.

Starts its own Kafka and Postgres (in a temporary directory under /tmp), then for each scenario
a fresh system with every service on virtual time from ``tests.systems.START`` (Monday
2026-03-09 08:00, Vietnam time). The scenario runs one dossier with a fixed id; the system is
let settle (``GET /backlog`` all zero) before every clock move, so each event happens at the
virtual time the scenario says and the stream comes out the same on every run (event ids and
the header's ``recorded_at`` aside). The system's topics are then recorded to
``tests/golden/<name>.jsonl.gz``.

Regenerating is for a new or changed scenario. A contract change that breaks the replay of an
old stream is a finding about the change, not a reason to regenerate (see README.md here).

Records are signed by the keys of the system that recorded them; the public halves of those keys
are added to ``tests/golden/keys.jwks.json``, which the test systems trust beside their own, so
the streams verify in any later replay. ``--sign-unsigned`` signs, once, the records of streams
recorded before events were signed (keys made for it and then thrown away; only their public
halves are kept), the way an agency would sign its records of the time before signatures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.agencies import ONE_STOP, source_uri
from contracts.envelope import CloudEvent
from contracts.events import Applicant, DossierReceivedV1
from contracts.signing import SIGNATURE_HEADER, PublicKey, SigningKey, jwks_document, read_jwks
from infra.fresh import prefix_of
from infra.kafka import free_port
from infra.stack import Stack
from services.replay.record import record
from services.replay.recording import read_header, read_records, signed_as_published, write_recording
from tests.dossier_samples import (
    LAND_DOCUMENTS,
    applicant,
    certified_copy,
    land_transfer,
    pay,
    signed_in,
    wait_for_status,
)
from tests.systems import START, fresh_system, set_time, settled

GOLDEN = Path(__file__).resolve().parent
T0 = datetime.fromisoformat(START)
EVERY_SERVICE = ("intake", "land_registry", "tax", "notification", "console")
TOPICS = (
    topics.INTAKE_EVENTS,
    topics.handoffs("land_registry"),
    topics.handoffs("tax"),
    topics.agency_events("land_registry"),
    topics.agency_events("tax"),
)
"""What the services publish and consume; dead-letter topics are left out (replay ignores them)."""

LAND_ID = "HS-GOLDEN-LAND-1"
LATE_ID = "HS-GOLDEN-LATE-1"
SUPPLEMENT_ID = "HS-GOLDEN-SUPPLEMENT-1"
COPY_ID = "HS-GOLDEN-COPY-1"
V1_ID = "HS-GOLDEN-V1-1"


@dataclass(frozen=True)
class Scenario:
    """One golden stream: what happens on the origin system, and the note in the file's header."""

    name: str
    note: str
    run: Callable[[Stack], Awaitable[None]]


# --- helpers ---------------------------------------------------------------------------------


def intake_client(system: Stack) -> httpx.AsyncClient:
    return signed_in(system, "intake")


async def file_dossier(intake: httpx.AsyncClient, dossier_id: str, body: dict[str, Any]) -> None:
    response = await intake.post("/dossiers", json={**body, "dossier_id": dossier_id})
    assert response.status_code == 201, response.text


async def post_ok(intake: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None) -> None:
    response = await intake.post(path, json=body)
    assert response.status_code == 200, f"POST {path}: {response.status_code} {response.text}"


# --- the scenarios ---------------------------------------------------------------------------


async def land_transfer_scenario(origin: Stack) -> None:
    """Filed Monday 08:00, tax notice at once, paid at 10:00, returned at 10:00."""
    async with intake_client(origin) as intake:
        await file_dossier(intake, LAND_ID, land_transfer(9101))
        await wait_for_status(intake, LAND_ID, "awaiting_payment")
        await settled(origin)
        await set_time(origin, T0 + timedelta(hours=2))
        await settled(origin)
        assert (await pay(intake, LAND_ID)).status_code == 200
        await wait_for_status(intake, LAND_ID, "returned")
    await settled(origin)


async def late_apology_scenario(origin: Stack) -> None:
    """The tax office is down from Monday 08:00 to Wednesday 09:00: its step overruns."""
    origin.stop_service("tax")
    async with intake_client(origin) as intake:
        await file_dossier(intake, LATE_ID, land_transfer(9102))
        await settled(origin)  # tax is down: only the running services
        await set_time(origin, T0 + timedelta(days=2, hours=1))  # Wednesday 09:00
        await settled(origin)  # tax is down: only the running services
        origin.start_service("tax")
        origin.wait_healthy("tax")
        await wait_for_status(intake, LATE_ID, "awaiting_payment")
        await settled(origin)
        await set_time(origin, T0 + timedelta(days=2, hours=2))  # Wednesday 10:00
        await settled(origin)
        assert (await pay(intake, LATE_ID)).status_code == 200
        await wait_for_status(intake, LATE_ID, "returned")
    await settled(origin)


async def supplement_pause_scenario(origin: Stack) -> None:
    """The desk asks for a supplement while the dossier waits at tax; it comes a day later."""
    origin.stop_service("tax")
    async with intake_client(origin) as intake:
        await file_dossier(intake, SUPPLEMENT_ID, land_transfer(9103))
        await settled(origin)  # tax is down: only the running services
        await post_ok(
            intake,
            f"/dossiers/{SUPPLEMENT_ID}/supplement-requests",
            {"missing_documents": ["Bản vẽ sơ đồ thửa đất"], "reason": "thiếu bản vẽ sơ đồ thửa đất"},
        )
        await settled(origin)  # tax is down: only the running services
        await set_time(origin, T0 + timedelta(days=1))  # Tuesday 08:00
        await settled(origin)  # tax is down: only the running services
        origin.start_service("tax")
        origin.wait_healthy("tax")
        # Tax answers the withdrawn handoff first (the desk ignores that answer), then the new one.
        await settled(origin)
        await post_ok(intake, f"/dossiers/{SUPPLEMENT_ID}/supplements", {"documents": ["LAND_CERTIFICATE"]})
        await wait_for_status(intake, SUPPLEMENT_ID, "awaiting_payment")
        await settled(origin)
        await set_time(origin, T0 + timedelta(days=1, hours=1))  # Tuesday 09:00
        await settled(origin)
        assert (await pay(intake, SUPPLEMENT_ID)).status_code == 200
        await wait_for_status(intake, SUPPLEMENT_ID, "returned")
    await settled(origin)


def v1_receipt() -> CloudEvent:
    """A receipt as the desk wrote it before dossier.received.v2 (document codes, one fee total)."""
    return CloudEvent.wrap(
        DossierReceivedV1(
            dossier_id=V1_ID,
            procedure_code="LAND-TRANSFER",
            procedure_name="Đăng ký biến động quyền sử dụng đất do chuyển nhượng",
            level="city",
            applicant=Applicant.model_validate(applicant(9105)),
            documents=list(LAND_DOCUMENTS),
            received_at=T0,
            appointment_at=T0 + timedelta(days=10),  # 8 working days: Thursday 2026-03-19 08:00
            statutory_limit_days=Decimal(8),
            fees_vnd=500_000,
            return_place="Bộ phận Một cửa, UBND thành phố Tân An",
        ),
        source=source_uri(ONE_STOP),
        time=T0,
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "golden:mixed_versions:" + V1_ID)),
    )


async def mixed_versions_scenario(origin: Stack) -> None:
    """A v1 receipt (published by hand) at 08:00, a certified copy filed (v2) at 09:00."""
    old = v1_receipt()
    producer = AIOKafkaProducer(**origin.superuser.client_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(
            prefix_of(origin) + topics.INTAKE_EVENTS,
            key=old.key,
            value=old.value(),
            headers=origin.signed_headers(old.headers(), old.value()),
        )
    finally:
        await producer.stop()
    await settled(origin)
    await set_time(origin, T0 + timedelta(hours=1))
    await settled(origin)
    async with intake_client(origin) as intake:
        await file_dossier(intake, COPY_ID, certified_copy(9104, pages=4))
        await wait_for_status(intake, COPY_ID, "returned")
    await settled(origin)


SCENARIOS = (
    Scenario(
        "land_transfer",
        f"golden: a normal land transfer ({LAND_ID}) filed Mon 2026-03-09 08:00, paid at 10:00",
        land_transfer_scenario,
    ),
    Scenario(
        "late_apology",
        f"golden: a land transfer ({LATE_ID}) filed Mon 2026-03-09 08:00 with the tax office down"
        " until Wed 09:00 (overdue, apology, escalation), paid Wed 10:00",
        late_apology_scenario,
    ),
    Scenario(
        "supplement_pause",
        f"golden: a land transfer ({SUPPLEMENT_ID}) filed Mon 2026-03-09 08:00 while the tax office"
        " is down; the desk requests a supplement at once, it comes Tue 08:00, paid Tue 09:00",
        supplement_pause_scenario,
    ),
    Scenario(
        "mixed_versions",
        f"golden: intake.events with a dossier.received.v1 ({V1_ID}, by hand, Mon 08:00) and a v2"
        f" certified copy ({COPY_ID}, Mon 09:00); replay into notification and console only",
        mixed_versions_scenario,
    ),
)


KEYS = GOLDEN / "keys.jwks.json"
"""The public keys that signed the golden streams (their private halves are gone)."""


def trust_signers(keys: Iterable[PublicKey], registry: Path = KEYS) -> None:
    """Add ``keys`` to the golden streams' key registry (kept sorted, nothing removed)."""
    known = {k.key_id: k for k in read_jwks(registry)}
    known.update({k.key_id: k for k in keys})
    registry.write_text(json.dumps(jwks_document(known.values()), indent=2) + "\n", encoding="utf-8")


def sign_unsigned(path: Path, registry: Path = KEYS) -> int:
    """Sign the records of ``path`` that carry no signature, each by its source agency; how many.

    One new key per agency, used for this file only; the public halves go to ``registry``.
    """
    keys: dict[str, SigningKey] = {}

    def key_of(agency: str) -> SigningKey:
        return keys.setdefault(
            agency, SigningKey.generate(agency, key_id=f"golden-{agency}-{uuid.uuid4().hex[:6]}")
        )

    header = read_header(path)
    records = list(read_records(path))
    unsigned = [r for r in records if r.header(SIGNATURE_HEADER) is None]
    signed = {id(r): s for r, s in zip(unsigned, signed_as_published(unsigned, key_of), strict=True)}
    write_recording(path, header, [signed.get(id(r), r) for r in records])
    trust_signers(k.public for k in keys.values())
    return len(unsigned)


async def make(stack: Stack, scenario: Scenario, out: Path) -> int:
    """Run ``scenario`` on a fresh system and record its topics to ``out``; how many records."""
    async with fresh_system(stack, EVERY_SERVICE) as origin:
        await scenario.run(origin)
        trust_signers(k for k in origin.secrets.registry() if k.status == "active")
        return await record(
            origin.superuser,
            out,
            topics=TOPICS,
            prefix=prefix_of(origin),
            progress=False,
            note=scenario.note,
        )


async def make_all(stack: Stack, chosen: list[Scenario], directory: Path) -> None:
    for scenario in chosen:
        out = directory / f"{scenario.name}.jsonl.gz"
        count = await make(stack, scenario, out)
        print(f"wrote {out}: {count} records ({scenario.note})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.golden.make_golden",
        description="Record the golden streams (starts its own Kafka and Postgres).",
    )
    names = [s.name for s in SCENARIOS]
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of {', '.join(names)} (default: all)")
    parser.add_argument("--out", type=Path, default=GOLDEN, help="where to write (default: %(default)s)")
    parser.add_argument(
        "--sign-unsigned",
        action="store_true",
        help="sign, in place, the unsigned records of the chosen streams (no Kafka needed)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"no scenario {', '.join(unknown)}; the scenarios are {', '.join(names)}")
    chosen = [s for s in SCENARIOS if not args.names or s.name in args.names]
    if not args.out.is_dir():
        parser.error(f"{args.out} is not a directory")
    if args.sign_unsigned:
        for scenario in chosen:
            path = args.out / f"{scenario.name}.jsonl.gz"
            print(f"{path}: signed {sign_unsigned(path)} records", flush=True)
        return 0
    # A short path under /tmp: Postgres' Unix socket lives in the data dir (108-byte limit).
    run_dir = Path(tempfile.mkdtemp(prefix="golden-", dir="/tmp"))
    stack = Stack(run_dir=run_dir, kafka_port=free_port(), controller_port=free_port(), ports={})
    try:
        stack.start_infrastructure()
        asyncio.run(make_all(stack, chosen, args.out))
    finally:
        stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
