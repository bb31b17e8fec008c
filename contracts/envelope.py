"""CloudEvents 1.0 on Kafka, binary content mode.

The event's attributes travel as ``ce_*`` record headers and its data as plain JSON in the
record value with ``content-type: application/json``. Binary mode (not structured mode) is on
purpose: FastStream leaves an ``application/cloudevents+json`` value undecoded, and a plain
JSON value lets any consumer validate the data against the committed JSON Schema as it is.
The record key is the dossier id, so every event of a dossier lands on one partition, in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from pydantic import ValidationError

from contracts.events import EVENT_TYPES, DossierEvent

SPEC_VERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/json"
MAX_EVENT_BYTES: Final = 256 * 1024
"""Larger records are refused: no legitimate event comes close, a huge one is an attack or a bug."""

TRACE_HEADERS: Final = ("traceparent", "tracestate", "baggage")
"""W3C trace-context headers that travel with an event from hop to hop."""

Headers = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """A record that is not a valid event of ours; ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def dataschema_for(event_type: str) -> str:
    """The ``dataschema`` URI of a type; the schema file is ``contracts/schemas/<type>.json``."""
    return f"urn:vn-gov:dossier-schema:{event_type}"


@dataclass(frozen=True)
class CloudEvent:
    """One event with its CloudEvents attributes; ``subject`` is the dossier id."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: DossierEvent
    extra_headers: dict[str, str] = field(default_factory=dict)
    """Other headers that travel with the event, e.g. W3C ``traceparent``."""

    @classmethod
    def wrap(
        cls,
        data: DossierEvent,
        *,
        source: str,
        time: datetime,
        event_id: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> CloudEvent:
        """Envelope ``data`` as published by ``source`` at ``time``."""
        return cls(
            id=event_id or str(uuid.uuid4()),
            type=data.TYPE,
            source=source,
            subject=data.dossier_id,
            time=time.astimezone(UTC),
            data=data,
            extra_headers=dict(extra_headers or {}),
        )

    @property
    def key(self) -> bytes:
        """The record key: the dossier id, so one dossier's events stay in order."""
        return self.subject.encode()

    def value(self) -> bytes:
        """The record value: the event data as JSON."""
        return self.data.model_dump_json().encode()

    def headers(self) -> Headers:
        """The record headers: CloudEvents attributes plus any extra headers."""
        attributes = {
            "ce_specversion": SPEC_VERSION,
            "ce_id": self.id,
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_subject": self.subject,
            "ce_time": self.time.isoformat().replace("+00:00", "Z"),
            "ce_dataschema": dataschema_for(self.type),
            "content-type": CONTENT_TYPE,
            **self.extra_headers,
        }
        return [(name, text.encode()) for name, text in attributes.items()]

    @classmethod
    def from_record(
        cls, *, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]
    ) -> CloudEvent:
        """Parse a Kafka record; raise :class:`EnvelopeError` saying exactly what is wrong."""
        if value is None:
            raise EnvelopeError("empty", "the record has no value")
        if len(value) > MAX_EVENT_BYTES:
            raise EnvelopeError("oversized", f"{len(value)} bytes, limit {MAX_EVENT_BYTES}")
        try:
            attrs = {name: raw.decode() for name, raw in headers}
        except UnicodeDecodeError as exc:
            raise EnvelopeError("bad-headers", f"a header is not UTF-8: {exc}") from exc
        missing = [
            name
            for name in ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time")
            if not attrs.get(name)
        ]
        if missing:
            raise EnvelopeError("not-a-cloudevent", f"missing headers {', '.join(missing)}")
        if attrs["ce_specversion"] != SPEC_VERSION:
            raise EnvelopeError(
                "wrong-specversion", f"ce_specversion {attrs['ce_specversion']!r}, expected 1.0"
            )
        model = EVENT_TYPES.get(attrs["ce_type"])
        if model is None:
            family = attrs["ce_type"].rsplit(".v", 1)[0]
            known = sorted(t for t in EVENT_TYPES if t.rsplit(".v", 1)[0] == family)
            if known:
                raise EnvelopeError(
                    "unknown-version",
                    f"{attrs['ce_type']!r} is not a known version; readable: {', '.join(known)}",
                )
            raise EnvelopeError("unknown-type", f"no contract for type {attrs['ce_type']!r}")
        try:
            data = model.model_validate_json(value)
        except ValidationError as exc:
            raise EnvelopeError("schema-invalid", _summarise(exc)) from exc
        if data.dossier_id != attrs["ce_subject"] or (key is not None and key.decode() != data.dossier_id):
            raise EnvelopeError("subject-mismatch", "ce_subject, record key and dossier_id must be the same")
        try:
            time = datetime.fromisoformat(attrs["ce_time"])
        except ValueError as exc:
            raise EnvelopeError("bad-time", f"ce_time {attrs['ce_time']!r}") from exc
        extra: dict[str, str] = {name: attrs[name] for name in TRACE_HEADERS if name in attrs}
        return cls(
            id=attrs["ce_id"],
            type=attrs["ce_type"],
            source=attrs["ce_source"],
            subject=attrs["ce_subject"],
            time=time,
            data=data,
            extra_headers=extra,
        )


def _summarise(exc: ValidationError) -> str:
    """The first few validation errors as one readable line."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
