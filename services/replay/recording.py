r"""The recording file format: Kafka records of one system, portable and readable with ``zcat | jq``.

A recording is a gzip-compressed `JSON Lines <https://jsonlines.org>`_ file, UTF-8, one JSON
object per line, ``\n`` line ends; the suggested extension is ``.jsonl.gz``::

    zcat run.jsonl.gz | head -1 | jq .                          # the header
    zcat run.jsonl.gz | tail -n +2 | jq -c '[.topic, .offset]'  # the records

**Line 1, the header**::

    {"format": "dossier-recording", "version": 1, "recorded_at": "2026-03-09T01:00:00Z",
     "source": "127.0.0.1:9092", "topics": ["handoffs.tax", "intake.events"],
     "records": 42, "note": ""}

``format``
    Always ``"dossier-recording"``; anything else is not a recording.
``version``
    ``1``. A reader refuses versions it does not know rather than guess.
``recorded_at``
    When the recording was made, ISO-8601 in UTC (``Z``).
``source``
    Free text saying where the records came from, e.g. the bootstrap servers or ``"generator"``.
``topics``
    The logical topic names recorded (a topic may have no record in the file).
``records``
    How many record lines follow, or ``null`` when the writer did not know; when it is a
    number, a reader checks it at the end of the file, which catches a truncated file.
``note``
    Free text, may be empty or absent.

**Every other line, one Kafka record**::

    {"topic": "intake.events", "partition": 0, "offset": 17, "timestamp": 1773018000000,
     "key": "HS-1", "headers": [["ce_type", "dossier.received.v1"], ["sig", null, "3q2+7w=="]],
     "value": "{\"dossier_id\": \"HS-1\"}"}

``topic``
    The logical topic name: the name on the broker with the source system's
    ``KAFKA_TOPIC_PREFIX`` removed, so the records can go to a system with another prefix.
``partition``, ``offset``
    Where the record was in the source system (integers, 0 or more).
``timestamp``
    The Kafka record timestamp, integer milliseconds since the Unix epoch.
``key``, ``value``
    The bytes as a JSON string when they are valid UTF-8 (the usual case: ids and JSON), or
    ``null`` when the record had none. Bytes that are not valid UTF-8 are written instead as
    ``"key_b64"`` / ``"value_b64"`` (standard base64, with padding) and ``key`` / ``value`` is
    then absent. A line has exactly one of ``key`` and ``key_b64``, and one of ``value`` and
    ``value_b64``.
``headers``
    The record headers in their order (names may repeat), each ``[name, value]`` with the
    value's UTF-8 text, or ``[name, null, value_base64]`` when the value is not valid UTF-8.

Decoding a text field with UTF-8 and a ``*_b64`` field with base64 gives back exactly the bytes
that were recorded. Records appear in the order the writer gave them (the record command sorts
them by timestamp, topic, partition, offset). Empty lines are ignored. The gzip stream has no
file name and a zero modification time, so identical content always gives identical bytes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import json
import os
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from contracts.agencies import agency_of
from contracts.signing import SigningKey

FORMAT: Final = "dossier-recording"
"""The header's ``format`` value."""

VERSION: Final = 1
"""The format version this module writes and reads."""

SUFFIX: Final = ".jsonl.gz"
"""The suggested file name extension."""


class RecordingError(ValueError):
    """A file that is not a readable recording; the message names the file and line."""


@dataclass(frozen=True)
class RecordedRecord:
    """One Kafka record as recorded; ``topic`` is the logical name (no prefix)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    """The Kafka record timestamp, milliseconds since the Unix epoch."""
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: bytes | None

    def header(self, name: str) -> str | None:
        """The value of header ``name`` as text (the last one if repeated), None if absent.

        Bytes that are not UTF-8 come out as U+FFFD; ``headers`` has the exact bytes.
        """
        for header_name, raw in reversed(self.headers):
            if header_name == name:
                return raw.decode(errors="replace")
        return None

    @property
    def time(self) -> datetime:
        """``timestamp_ms`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def signed_by(self, key: SigningKey) -> RecordedRecord:
        """The record with ``key``'s signature headers, as that agency's producer would send it."""
        return dataclasses.replace(self, headers=tuple(key.sign(self.headers, self.value or b"")))


def signed_as_published(
    records: Iterable[RecordedRecord], key_of: Callable[[str], SigningKey]
) -> list[RecordedRecord]:
    """Generated records signed by the agency each names as its source (``key_of(agency)``).

    A generated stream has no signatures; consumers refuse unsigned records, so before a replay
    the generator's records are signed with the keys the replayed system trusts.
    """
    signed = []
    for record in records:
        agency = agency_of(record.header("ce_source") or "")
        signed.append(record.signed_by(key_of(agency)) if agency else record)
    return signed


@dataclass(frozen=True)
class RecordingHeader:
    """The first line of a recording: what it holds and where it came from."""

    recorded_at: datetime
    source: str
    topics: tuple[str, ...]
    records: int | None
    """How many records follow, None when unknown."""
    note: str = ""


def write_recording(path: Path, header: RecordingHeader, records: Iterable[RecordedRecord]) -> int:
    """Write ``header`` and ``records`` (in that order) to ``path``; return how many records.

    The file appears complete or not at all: it is written next to ``path`` under a temporary
    name and renamed over ``path`` at the end. Raises :class:`RecordingError` if
    ``header.records`` is a number and not the number of ``records``.
    """
    if header.recorded_at.tzinfo is None:
        raise RecordingError(f"{path}: recorded_at must be timezone-aware, got {header.recorded_at}")
    # A hidden name in the same directory: os.replace is atomic only within one file system.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    count = 0
    try:
        # open(), unlike mkstemp, creates the file with the user's umask, as the final file should be.
        with temporary.open("xb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as out:
                out.write(_line(_header_object(header)))
                for record in records:
                    out.write(_line(_record_object(record)))
                    count += 1
            raw.flush()
            os.fsync(raw.fileno())
        if header.records is not None and count != header.records:
            raise RecordingError(f"{path}: the header says {header.records} records, {count} were given")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return count


def read_header(path: Path) -> RecordingHeader:
    """The header of the recording at ``path``; :class:`RecordingError` if it is not one."""
    with gzip.open(path, "rb") as stream:
        for number, line in _lines(path, stream):
            return _parse_header(path, number, line)
    raise RecordingError(f"{path}: empty file, a recording starts with a header line")


def read_records(path: Path) -> Iterator[RecordedRecord]:
    """The records of the recording at ``path`` in file order, read as they are consumed.

    Raises :class:`RecordingError` (naming the line) at the first line that is not a record,
    and at the end if the header's record count does not match.
    """
    with gzip.open(path, "rb") as stream:
        header: RecordingHeader | None = None
        count = 0
        for number, line in _lines(path, stream):
            if header is None:
                header = _parse_header(path, number, line)
                continue
            yield _parse_record(path, number, line)
            count += 1
        if header is None:
            raise RecordingError(f"{path}: empty file, a recording starts with a header line")
        if header.records is not None and count != header.records:
            raise RecordingError(
                f"{path}: the header says {header.records} records but the file has {count}"
                " (truncated or edited?)"
            )


# Writing


def _line(obj: dict[str, Any]) -> bytes:
    # ensure_ascii=False keeps Vietnamese text readable in `zcat | jq`; json escapes newlines.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _header_object(header: RecordingHeader) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "recorded_at": header.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "source": header.source,
        "topics": list(header.topics),
        "records": header.records,
        "note": header.note,
    }


def _text(data: bytes) -> str | None:
    """``data`` as text if it is valid UTF-8 (strict, so encoding the text gives ``data`` back)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _bytes_field(obj: dict[str, Any], name: str, data: bytes | None) -> None:
    text = None if data is None else _text(data)
    if data is not None and text is None:
        obj[f"{name}_b64"] = _b64(data)
    else:
        obj[name] = text


def _record_object(record: RecordedRecord) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
    }
    _bytes_field(obj, "key", record.key)
    headers: list[list[str | None]] = []
    for name, raw in record.headers:
        text = _text(raw)
        headers.append([name, text] if text is not None else [name, None, _b64(raw)])
    obj["headers"] = headers
    _bytes_field(obj, "value", record.value)
    return obj


# Reading


def _lines(path: Path, stream: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's non-empty lines as JSON objects, with 1-based line numbers."""
    number = 0
    try:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise RecordingError(f"{path}:{number}: not UTF-8 text ({exc})") from exc
            except json.JSONDecodeError as exc:
                raise RecordingError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise RecordingError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj
    except gzip.BadGzipFile as exc:
        raise RecordingError(f"{path}: not a gzip file, so not a recording ({exc})") from exc
    except EOFError as exc:
        raise RecordingError(f"{path}: the file ends after line {number}, cut short (truncated)") from exc
    except zlib.error as exc:
        raise RecordingError(f"{path}: corrupt gzip data after line {number} ({exc})") from exc


def _parse_header(path: Path, number: int, obj: dict[str, Any]) -> RecordingHeader:
    where = f"{path}:{number}"
    if obj.get("format") != FORMAT:
        raise RecordingError(f"{where}: not a dossier recording (header format is {obj.get('format')!r})")
    version = obj.get("version")
    if version != VERSION or isinstance(version, bool):
        raise RecordingError(
            f"{where}: recording format version {version!r} is not supported (this reader reads {VERSION})"
        )
    recorded_text = _field(where, obj, "recorded_at", str)
    try:
        recorded_at = datetime.fromisoformat(recorded_text)
    except ValueError as exc:
        raise RecordingError(f"{where}: recorded_at {recorded_text!r} is not an ISO-8601 time") from exc
    if recorded_at.tzinfo is None:
        raise RecordingError(f"{where}: recorded_at {recorded_text!r} has no time zone")
    topics = _field(where, obj, "topics", list)
    if not all(isinstance(t, str) for t in topics):
        raise RecordingError(f"{where}: topics must be a list of strings")
    records = obj.get("records")
    if records is not None and (not isinstance(records, int) or isinstance(records, bool) or records < 0):
        raise RecordingError(f"{where}: records must be a count or null, got {records!r}")
    note = obj.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise RecordingError(f"{where}: note must be text, got {note!r}")
    return RecordingHeader(
        recorded_at=recorded_at.astimezone(UTC),
        source=_field(where, obj, "source", str),
        topics=tuple(topics),
        records=records,
        note=note,
    )


def _parse_record(path: Path, number: int, obj: dict[str, Any]) -> RecordedRecord:
    where = f"{path}:{number}"
    if "format" in obj:
        raise RecordingError(f"{where}: a second header; recordings cannot be concatenated")
    partition = _field(where, obj, "partition", int)
    offset = _field(where, obj, "offset", int)
    if partition < 0 or offset < 0:
        raise RecordingError(f"{where}: partition and offset must not be negative")
    headers: list[tuple[str, bytes]] = []
    for entry in _field(where, obj, "headers", list):
        match entry:
            case [str(name), str(text)]:
                headers.append((name, _encode(where, f"header {name!r}", text)))
            case [str(name), None, str(encoded)]:
                headers.append((name, _unb64(where, f"header {name!r}", encoded)))
            case _:
                raise RecordingError(
                    f"{where}: header {entry!r} is neither [name, text] nor [name, null, base64]"
                )
    return RecordedRecord(
        topic=_field(where, obj, "topic", str),
        partition=partition,
        offset=offset,
        timestamp_ms=_field(where, obj, "timestamp", int),
        key=_bytes_of(where, obj, "key"),
        headers=tuple(headers),
        value=_bytes_of(where, obj, "value"),
    )


_T = TypeVar("_T")


def _field(where: str, obj: dict[str, Any], name: str, kind: type[_T]) -> _T:
    value = obj.get(name)
    # bool is an int to Python, never to this format.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RecordingError(f"{where}: {name!r} must be {_KIND_NAMES[kind]}, got {value!r}")
    return value


_KIND_NAMES: Final[dict[type, str]] = {str: "a string", int: "an integer", list: "a list"}


def _bytes_of(where: str, obj: dict[str, Any], name: str) -> bytes | None:
    encoded_name = f"{name}_b64"
    if name in obj and encoded_name in obj:
        raise RecordingError(f"{where}: both {name!r} and {encoded_name!r}; a record has one of them")
    if encoded_name in obj:
        encoded = obj[encoded_name]
        if not isinstance(encoded, str):
            raise RecordingError(f"{where}: {encoded_name!r} must be a base64 string, got {encoded!r}")
        return _unb64(where, encoded_name, encoded)
    if name not in obj:
        raise RecordingError(f"{where}: missing {name!r} (or {encoded_name!r})")
    text = obj[name]
    if text is None:
        return None
    if not isinstance(text, str):
        raise RecordingError(f"{where}: {name!r} must be a string or null, got {text!r}")
    return _encode(where, repr(name), text)


def _encode(where: str, what: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Only a hand-written "\ud800"-style escape gets here; the writer never makes one.
        raise RecordingError(f"{where}: {what} holds a lone surrogate, which is not UTF-8") from exc


def _unb64(where: str, what: str, encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RecordingError(f"{where}: {what} is not valid base64 ({exc})") from exc
