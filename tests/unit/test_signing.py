"""Signatures over the meaningful attributes and the exact data; keys bound to one agency."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.agencies import source_uri
from contracts.envelope import CloudEvent
from contracts.events import StepCompleted
from contracts.signing import (
    KEY_ID_HEADER,
    SIGNED_ATTRIBUTES,
    KeyRegistry,
    SignatureRefused,
    SigningKey,
    jwks_document,
)
from infra.trust import TrustStore

WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


def answer(agency: str = "tax") -> CloudEvent:
    data = StepCompleted(
        dossier_id="HS-SIGN-1",
        step_index=2,
        agency=agency,
        action="assess",
        outcome="done",
        received_at=WHEN,
        completed_at=WHEN,
    )
    return CloudEvent.wrap(data, source=source_uri(agency), time=WHEN)


def attributes(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: raw.decode() for name, raw in headers}


def test_a_signed_record_verifies_and_names_its_key() -> None:
    key = SigningKey.generate("tax")
    registry = KeyRegistry(keys=[key.public])
    event = answer()
    signed = attributes(key.sign(event.headers(), event.value()))
    assert registry.verify(signed, event.value()).key_id == key.key_id == signed[KEY_ID_HEADER]


@pytest.mark.parametrize("attribute", SIGNED_ATTRIBUTES)
def test_changing_any_signed_attribute_breaks_the_signature(attribute: str) -> None:
    key = SigningKey.generate("tax")
    registry = KeyRegistry(keys=[key.public])
    event = answer()
    signed = attributes(key.sign(event.headers(), event.value()))
    signed[attribute] = signed[attribute] + "x"
    with pytest.raises(SignatureRefused) as refused:
        registry.verify(signed, event.value())
    assert refused.value.reason == "bad-signature"


def test_changing_one_byte_of_the_data_breaks_the_signature() -> None:
    key = SigningKey.generate("tax")
    event = answer()
    signed = attributes(key.sign(event.headers(), event.value()))
    with pytest.raises(SignatureRefused, match="does not match"):
        KeyRegistry(keys=[key.public]).verify(signed, event.value().replace(b"done", b"dune"))


def test_unsigned_and_unknown_keys_are_refused_with_their_reason() -> None:
    key = SigningKey.generate("tax")
    event = answer()
    with pytest.raises(SignatureRefused) as refused:
        KeyRegistry(keys=[key.public]).verify(attributes(event.headers()), event.value())
    assert refused.value.reason == "unsigned"
    signed = attributes(key.sign(event.headers(), event.value()))
    with pytest.raises(SignatureRefused, match="unknown key"):
        KeyRegistry().verify(signed, event.value())
    del signed[KEY_ID_HEADER]
    with pytest.raises(SignatureRefused, match="together"):
        KeyRegistry(keys=[key.public]).verify(signed, event.value())


def test_a_key_signs_only_for_its_own_agency() -> None:
    tax = SigningKey.generate("tax")
    with pytest.raises(ValueError, match="signs for"):
        tax.sign(answer("land_registry").headers(), answer("land_registry").value())


def test_a_retired_key_still_verifies_a_revoked_one_does_not(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust")
    first = store.signing_key("tax")
    event = answer()
    old_record = attributes(first.sign(event.headers(), event.value()))
    store.rotate("tax")
    second = store.signing_key("tax")
    assert second.key_id != first.key_id
    registry = KeyRegistry([store.key_registry_path])
    assert registry.verify(old_record, event.value()).status == "retired"
    store.revoke(first.key_id)
    registry.reload(force=True)
    with pytest.raises(SignatureRefused, match="revoked"):
        registry.verify(old_record, event.value())


def test_a_key_added_to_the_file_is_found_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    registry = KeyRegistry([path])
    key = SigningKey.generate("tax")
    event = answer()
    signed = attributes(key.sign(event.headers(), event.value()))
    path.write_text(json.dumps(jwks_document([key.public])))
    os.utime(path, (1, 1))  # a changed stamp, whatever the file system's resolution
    registry._loaded_at = float("-inf")  # as if the reload interval had passed
    assert registry.verify(signed, event.value()).agency == "tax"


def test_private_keys_are_kept_0600_and_the_registry_holds_no_private_part(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust")
    path = store.signing_key_path("land_registry")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    published = json.loads(store.key_registry_path.read_text())
    assert [set(k) & {"d"} for k in published["keys"]] == [set()]
    assert SigningKey.load(path).public.jwk()["x"] == published["keys"][0]["x"]
