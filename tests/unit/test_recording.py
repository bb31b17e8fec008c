"""The recording file format: exact round trip of bytes, deterministic output, clear errors."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from services.replay.recording import (
    RecordedRecord,
    RecordingError,
    RecordingHeader,
    read_header,
    read_records,
    write_recording,
)

NOT_UTF8 = b"\xff\xfe\x00\x80 binary \xc3"
HEADER = RecordingHeader(
    recorded_at=datetime(2026, 3, 9, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=7))),
    source="127.0.0.1:9092",
    topics=("handoffs.tax", "intake.events"),
    records=4,
    note="Hồ sơ mẫu",
)
RECORDS = (
    RecordedRecord(
        topic="intake.events",
        partition=0,
        offset=0,
        timestamp_ms=1773018000000,
        key=b"HS-1",
        headers=(("ce_type", b"dossier.received.v1"), ("content-type", b"application/json")),
        value='{"full_name": "Nguyễn Văn An", "note": "line\\nbreak"}'.encode(),
    ),
    RecordedRecord(
        topic="handoffs.tax",
        partition=3,
        offset=41,
        timestamp_ms=1773018000001,
        key=NOT_UTF8,
        headers=(("sig", NOT_UTF8), ("sig", b""), ("text", "đ".encode())),
        value=NOT_UTF8,
    ),
    RecordedRecord(
        topic="intake.events",
        partition=1,
        offset=7,
        timestamp_ms=0,
        key=None,
        headers=(),
        value=None,
    ),
    RecordedRecord(
        topic="intake.events",
        partition=1,
        offset=8,
        timestamp_ms=1773018000002,
        key=b"",
        headers=(("bom", b"\xef\xbb\xbfx"), ("nul", b"\x00")),
        value=b"\xef\xbb\xbf{}\x00",  # valid UTF-8 that a lax decoder would alter
    ),
)


def lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def write_lines(path: Path, objects: list[Any]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for obj in objects:
            f.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")


def test_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    assert write_recording(path, HEADER, RECORDS) == 4
    assert tuple(read_records(path)) == RECORDS
    header = read_header(path)
    assert header == RecordingHeader(
        recorded_at=datetime(2026, 3, 9, 1, 0, 0, 123456, tzinfo=UTC),
        source="127.0.0.1:9092",
        topics=("handoffs.tax", "intake.events"),
        records=4,
        note="Hồ sơ mẫu",
    )
    assert header.recorded_at.utcoffset() == timedelta(0)


def test_file_is_the_documented_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, HEADER, RECORDS)
    header, text, binary, empty, _ = lines(path)
    assert header == {
        "format": "dossier-recording",
        "version": 1,
        "recorded_at": "2026-03-09T01:00:00.123456Z",
        "source": "127.0.0.1:9092",
        "topics": ["handoffs.tax", "intake.events"],
        "records": 4,
        "note": "Hồ sơ mẫu",
    }
    assert text == {
        "topic": "intake.events",
        "partition": 0,
        "offset": 0,
        "timestamp": 1773018000000,
        "key": "HS-1",
        "headers": [["ce_type", "dossier.received.v1"], ["content-type", "application/json"]],
        "value": '{"full_name": "Nguyễn Văn An", "note": "line\\nbreak"}',
    }
    assert binary == {
        "topic": "handoffs.tax",
        "partition": 3,
        "offset": 41,
        "timestamp": 1773018000001,
        "key_b64": "//4AgCBiaW5hcnkgww==",
        "headers": [["sig", None, "//4AgCBiaW5hcnkgww=="], ["sig", ""], ["text", "đ"]],
        "value_b64": "//4AgCBiaW5hcnkgww==",
    }
    assert empty == {
        "topic": "intake.events",
        "partition": 1,
        "offset": 7,
        "timestamp": 0,
        "key": None,
        "headers": [],
        "value": None,
    }
    raw = gzip.decompress(path.read_bytes())
    assert "Nguyễn".encode() in raw, "text stays readable in zcat, not \\u-escaped"


def test_header_helper_decodes_the_last_value() -> None:
    assert RECORDS[0].header("ce_type") == "dossier.received.v1"
    assert RECORDS[1].header("sig") == ""
    assert RECORDS[1].header("text") == "đ"
    assert RECORDS[0].header("missing") is None
    assert RECORDS[0].time == datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


def test_identical_content_gives_identical_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "sub" / "b.jsonl.gz"
    second.parent.mkdir()
    write_recording(first, HEADER, RECORDS)
    write_recording(second, HEADER, iter(RECORDS))
    assert first.read_bytes() == second.read_bytes()
    write_recording(first, HEADER, RECORDS)  # rewriting in place changes nothing either
    assert first.read_bytes() == second.read_bytes()


def test_records_stream_in_given_order_and_unknown_count(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    reordered = (RECORDS[2], RECORDS[0], RECORDS[3], RECORDS[1])
    header = RecordingHeader(recorded_at=HEADER.recorded_at, source="generator", topics=(), records=None)
    assert write_recording(path, header, (r for r in reordered)) == 4
    assert read_header(path).records is None
    assert read_header(path).note == ""
    stream = read_records(path)
    assert next(stream) == RECORDS[2]
    assert list(stream) == list(reordered[1:])


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, HEADER, RECORDS)
    before = path.read_bytes()

    def broken() -> Any:
        yield RECORDS[0]
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        write_recording(path, HEADER, broken())
    with pytest.raises(RecordingError, match="header says 4 records, 1 were given"):
        write_recording(path, HEADER, RECORDS[:1])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl.gz"]


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text('{"format": "dossier-recording", "version": 1}\n')
    with pytest.raises(RecordingError, match=r"plain\.jsonl: not a gzip file"):
        read_header(path)
    with pytest.raises(RecordingError, match="not a gzip file"):
        list(read_records(path))


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, HEADER, RECORDS)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(RecordingError, match="truncated"):
        list(read_records(path))


def test_missing_records_are_noticed(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, HEADER, RECORDS)
    write_lines(path, lines(path)[:-1])
    with pytest.raises(RecordingError, match="header says 4 records but the file has 3"):
        list(read_records(path))


def test_wrong_format_and_version(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, HEADER, RECORDS)
    header, *rest = lines(path)
    write_lines(path, [{**header, "version": 2}, *rest])
    with pytest.raises(RecordingError, match=r"run\.jsonl\.gz:1: recording format version 2 is not"):
        read_header(path)
    write_lines(path, [{**header, "format": "something-else"}, *rest])
    with pytest.raises(RecordingError, match=r":1: not a dossier recording"):
        list(read_records(path))
    write_lines(path, [])
    with pytest.raises(RecordingError, match="empty file"):
        read_header(path)


def test_bad_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, HEADER, RECORDS)
    header, first, *rest = lines(path)
    write_lines(path, [header, first, "", '{"topic": "intake.events", "partition": 0,', *rest])
    records = read_records(path)
    assert next(records) == RECORDS[0]  # records before the bad line are still read
    with pytest.raises(RecordingError, match=r"run\.jsonl\.gz:4: not valid JSON"):
        next(records)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offset": "7"}, r":2: 'offset' must be an integer"),
        ({"partition": True}, r":2: 'partition' must be an integer"),
        ({"key_b64": "SFMtMQ=="}, r":2: both 'key' and 'key_b64'"),
        ({"value_b64": "not base64!"}, r":2: both 'value' and 'value_b64'"),
        ({"headers": [["ce_type"]]}, r":2: header \['ce_type'\] is neither"),
        ({"headers": [["x", None, "%%%"]]}, r":2: header 'x' is not valid base64"),
        ({"value": "\ud800"}, r":2: 'value' holds a lone surrogate"),
    ],
)
def test_bad_record_fields(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, HEADER, RECORDS)
    header, first, *rest = lines(path)
    write_lines(path, [header, {**first, **change}, *rest])
    with pytest.raises(RecordingError, match=message):
        list(read_records(path))


def test_missing_key_field(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, HEADER, RECORDS)
    header, first, *rest = lines(path)
    del first["key"]
    write_lines(path, [header, first, *rest])
    with pytest.raises(RecordingError, match=r":2: missing 'key' \(or 'key_b64'\)"):
        list(read_records(path))
