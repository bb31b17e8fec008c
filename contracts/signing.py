"""Signed events: who published a record is proven by an Ed25519 signature, not by its headers.

Kafka's ACLs say who may write a topic; a signature says who wrote *this record*, and it stays
true when the record is copied: into a recording, a replay, a dead-letter topic and back. Every
producer signs what it publishes and every consumer verifies before it reads anything else.

What is signed (:func:`signing_input`): the CloudEvents attributes that carry meaning (``id``,
``type``, ``source``, ``subject``, ``time``, ``dataschema``) exactly as they travel in the
``ce_*`` headers, and the SHA-256 of the exact record value, as one JSON array. The trace headers
are not signed (each hop rewrites them). The signature and the key's id travel as two CloudEvents
extension headers, ``ce_signature`` (base64url, no padding) and ``ce_keyid``.

Public keys form a JSON Web Key Set (RFC 7517, ``"kty": "OKP", "crv": "Ed25519"``), each key
with two members of ours: ``agency``, the only agency the key may sign for (its events' source
must be ``/vn/gov/agencies/<agency>``), and ``status``: ``active`` (signs now), ``retired``
(rotated out; still verifies what it signed, so old recordings replay) or ``revoked``
(compromised; verifies nothing).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.agencies import source_uri

SIGNATURE_HEADER: Final = "ce_signature"
KEY_ID_HEADER: Final = "ce_keyid"
SIGNED_ATTRIBUTES: Final = ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "ce_dataschema")
SCHEME: Final = "vn-gov-dossier-event-signature/1"
"""First element of the signed array: a signature made for one purpose cannot be reused for another."""

KeyStatus = Literal["active", "retired", "revoked"]


class SignatureRefused(ValueError):
    """A record whose signature does not prove its source; ``reason`` is ``unsigned`` or ``bad-signature``."""

    def __init__(self, reason: Literal["unsigned", "bad-signature"], detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def signing_input(attributes: Mapping[str, str], value: bytes) -> bytes:
    """The bytes a signature covers: the meaningful attributes and the hash of the data."""
    signed = [
        SCHEME,
        *(attributes.get(name, "") for name in SIGNED_ATTRIBUTES),
        hashlib.sha256(value).hexdigest(),
    ]
    return json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key_id(agency: str, when: datetime | None = None) -> str:
    """A key id that says whose key it is and when it was made: ``<agency>-<yyyymmdd>-<random>``."""
    day = (when or datetime.now(UTC)).strftime("%Y%m%d")
    return f"{agency}-{day}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class PublicKey:
    """One entry of the key registry."""

    key_id: str
    agency: str
    key: Ed25519PublicKey
    status: KeyStatus = "active"
    created: str = ""

    def jwk(self) -> dict[str, str]:
        """The entry as a JSON Web Key with our two members."""
        raw = self.key.public_bytes_raw()
        entry = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64(raw),
            "kid": self.key_id,
            "use": "sig",
            "alg": "EdDSA",
        }
        return entry | {"agency": self.agency, "status": self.status, "created": self.created}

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        """Read one JSON Web Key; raise ValueError saying what is wrong."""
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError(f"key {jwk.get('kid')!r}: only Ed25519 (kty OKP, crv Ed25519) keys are used")
        status = jwk.get("status", "active")
        if status not in ("active", "retired", "revoked"):
            raise ValueError(f"key {jwk.get('kid')!r}: status {status!r} is not active, retired or revoked")
        return cls(
            key_id=str(jwk["kid"]),
            agency=str(jwk["agency"]),
            key=Ed25519PublicKey.from_public_bytes(_unb64(str(jwk["x"]))),
            status=status,
            created=str(jwk.get("created", "")),
        )


@dataclass(frozen=True)
class SigningKey:
    """An agency's private key; :meth:`sign` adds the signature headers to a record's headers."""

    key_id: str
    agency: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, agency: str, *, key_id: str | None = None) -> SigningKey:
        """A new random key for ``agency``."""
        return cls(key_id=key_id or new_key_id(agency), agency=agency, key=Ed25519PrivateKey.generate())

    @property
    def public(self) -> PublicKey:
        """The public half, as the registry lists it."""
        return PublicKey(
            self.key_id, self.agency, self.key.public_key(), created=datetime.now(UTC).date().isoformat()
        )

    def signature_headers(self, attributes: Mapping[str, str], value: bytes) -> dict[str, str]:
        """``ce_signature`` and ``ce_keyid`` for a record with these ``ce_*`` headers and value."""
        if attributes.get("ce_source") != source_uri(self.agency):
            raise ValueError(
                f"key {self.key_id} signs for {source_uri(self.agency)}, not {attributes.get('ce_source')}"
            )
        signature = self.key.sign(signing_input(attributes, value))
        return {SIGNATURE_HEADER: _b64(signature), KEY_ID_HEADER: self.key_id}

    def sign(self, headers: Sequence[tuple[str, bytes]], value: bytes) -> list[tuple[str, bytes]]:
        """The record headers with the signature headers added (replacing any there were)."""
        attributes = {name: raw.decode() for name, raw in headers}
        added = self.signature_headers(attributes, value)
        kept = [(name, raw) for name, raw in headers if name not in added]
        return kept + [(name, text.encode()) for name, text in added.items()]

    def private_jwk(self) -> dict[str, str]:
        """The key as a private JSON Web Key (keep it in a file only its service can read)."""
        raw = self.key.private_bytes_raw()
        return self.public.jwk() | {"d": _b64(raw)}

    @classmethod
    def from_private_jwk(cls, jwk: Mapping[str, Any]) -> SigningKey:
        """Read a private JSON Web Key written by :meth:`private_jwk`."""
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "d" not in jwk:
            raise ValueError("not a private Ed25519 JSON Web Key (kty OKP, crv Ed25519, with d)")
        return cls(
            key_id=str(jwk["kid"]),
            agency=str(jwk["agency"]),
            key=Ed25519PrivateKey.from_private_bytes(_unb64(str(jwk["d"]))),
        )

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read a key file; ValueError naming the file when it is not one."""
        try:
            return cls.from_private_jwk(json.loads(path.read_text(encoding="utf-8")))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc


class KeyRegistry:
    """The public keys, by key id, read from one or more JWKS files.

    An unknown key id makes the registry read its files again (at most once a second) before it
    refuses: a key added for a new agency, or by a rotation, is taken without a restart.
    """

    RELOAD_INTERVAL_SECONDS: Final = 1.0

    def __init__(self, paths: Iterable[Path] = (), *, keys: Iterable[PublicKey] = ()) -> None:
        self._paths = tuple(paths)
        self._extra = {k.key_id: k for k in keys}
        self._keys: dict[str, PublicKey] = {}
        self._loaded_at = float("-inf")
        self._stamp: tuple[tuple[str, float], ...] = ()
        self._lock = threading.Lock()
        self.reload(force=True)

    @property
    def paths(self) -> tuple[Path, ...]:
        """The JWKS files the registry reads."""
        return self._paths

    def reload(self, *, force: bool = False) -> None:
        """Read the files again if one changed (or ``force``)."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._loaded_at < self.RELOAD_INTERVAL_SECONDS:
                return
            self._loaded_at = now
            stamp = tuple((str(p), p.stat().st_mtime if p.exists() else -1.0) for p in self._paths)
            if not force and stamp == self._stamp:
                return
            keys = dict(self._extra)
            for path in self._paths:
                keys.update({k.key_id: k for k in read_jwks(path)})
            self._keys, self._stamp = keys, stamp

    def get(self, key_id: str) -> PublicKey | None:
        """The key with this id, reading the files again if it is not known yet."""
        key = self._keys.get(key_id)
        if key is None:
            self.reload()
            key = self._keys.get(key_id)
        return key

    def keys(self) -> list[PublicKey]:
        """Every key, sorted by id."""
        return sorted(self._keys.values(), key=lambda k: k.key_id)

    def verify(self, attributes: Mapping[str, str], value: bytes) -> PublicKey:
        """The key that signed a record with these headers and value; :class:`SignatureRefused` if none did.

        The key must exist, not be revoked, belong to the agency named by ``ce_source``, and the
        signature must cover exactly these attributes and these bytes.
        """
        signature, key_id = attributes.get(SIGNATURE_HEADER), attributes.get(KEY_ID_HEADER)
        if not signature and not key_id:
            raise SignatureRefused("unsigned", "no ce_signature/ce_keyid headers")
        if not signature or not key_id:
            raise SignatureRefused("bad-signature", "ce_signature and ce_keyid must come together")
        key = self.get(key_id)
        if key is None:
            raise SignatureRefused("bad-signature", f"unknown key {key_id!r}")
        if key.status == "revoked":
            raise SignatureRefused("bad-signature", f"key {key_id!r} is revoked")
        source = attributes.get("ce_source", "")
        if source != source_uri(key.agency):
            raise SignatureRefused(
                "bad-signature", f"key {key_id!r} belongs to {key.agency}, not to {source!r}"
            )
        try:
            key.key.verify(_unb64(signature), signing_input(attributes, value))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureRefused(
                "bad-signature", f"signature by {key_id!r} does not match the record"
            ) from exc
        return key


def read_jwks(path: Path) -> list[PublicKey]:
    """The keys of a JWKS file (``{"keys": [...]}``); an absent file has none."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise ValueError(f"{path} is not a JSON Web Key Set: {exc}") from exc
    try:
        return [PublicKey.from_jwk(entry) for entry in document["keys"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def jwks_document(keys: Iterable[PublicKey]) -> dict[str, list[dict[str, str]]]:
    """A JSON Web Key Set of ``keys``, sorted by key id."""
    return {"keys": [k.jwk() for k in sorted(keys, key=lambda k: k.key_id)]}


def with_status(key: PublicKey, status: KeyStatus) -> PublicKey:
    """The same key with another status (rotation retires, compromise revokes)."""
    return replace(key, status=status)


def registry_paths(text: str) -> tuple[Path, ...]:
    """``SIGNING_KEY_REGISTRY``: JWKS files separated by the OS path separator (``:``)."""
    return tuple(Path(part) for part in text.split(os.pathsep) if part)
