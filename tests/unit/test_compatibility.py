"""Schema compatibility with Confluent's JSON Schema semantics, on pydantic-made and hand-written schemas."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from contracts.compatibility import CompatibilityMode, Incompatibility, check, reader_accepts
from contracts.events import EVENT_TYPES

BACKWARD = CompatibilityMode.BACKWARD
FORWARD = CompatibilityMode.FORWARD
FULL = CompatibilityMode.FULL

CLOSED = ConfigDict(extra="forbid")
OPEN = ConfigDict(extra="allow")


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def found(issues: list[Incompatibility]) -> list[tuple[str, str]]:
    return [(i.rule, i.path) for i in issues]


def evolve(old: type[BaseModel], new: type[BaseModel], mode: CompatibilityMode) -> list[tuple[str, str]]:
    """What registering ``new`` after ``old`` under ``mode`` reports."""
    return found(check(schema(new), [schema(old)], mode))


# --- v1/v2 pairs as pydantic models ---------------------------------------------------------------


class ClosedV1(BaseModel):
    model_config = CLOSED
    dossier_id: str


class ClosedOptionalAdded(BaseModel):
    model_config = CLOSED
    dossier_id: str
    note: str | None = None


class ClosedRequiredAdded(BaseModel):
    model_config = CLOSED
    dossier_id: str
    fee_vnd: int


class OpenV1(BaseModel):
    model_config = OPEN
    dossier_id: str


class OpenOptionalAdded(BaseModel):
    model_config = OPEN
    dossier_id: str
    note: str | None = None


class OpenRequiredAdded(BaseModel):
    model_config = OPEN
    dossier_id: str
    fee_vnd: int


class AmountInt(BaseModel):
    model_config = CLOSED
    amount: int


class AmountStr(BaseModel):
    model_config = CLOSED
    amount: str


class AmountFloat(BaseModel):
    model_config = CLOSED
    amount: float


class LevelTwo(BaseModel):
    model_config = CLOSED
    level: Literal["city", "ward"]


class LevelThree(BaseModel):
    model_config = CLOSED
    level: Literal["city", "ward", "province"]


class LevelCity(BaseModel):
    model_config = CLOSED
    level: Literal["city"]


class LevelWard(BaseModel):
    model_config = CLOSED
    level: Literal["ward"]


class LevelAnyString(BaseModel):
    model_config = CLOSED
    level: str


class NoteStr(BaseModel):
    model_config = CLOSED
    note: str


class NoteNullable(BaseModel):
    model_config = CLOSED
    note: str | None


class ParcelV1(BaseModel):
    model_config = CLOSED
    area_m2: float


class ParcelV2(BaseModel):
    model_config = CLOSED
    area_m2: int


class ParcelV3(BaseModel):
    model_config = CLOSED
    area_m2: float
    lot: str


class TransferV1(BaseModel):
    model_config = CLOSED
    parcel: ParcelV1


class TransferV2(BaseModel):
    model_config = CLOSED
    parcel: ParcelV2


class TransferV3(BaseModel):
    model_config = CLOSED
    parcel: ParcelV3


OPTIONAL = "#/properties/note"
REQUIRED = "#/properties/fee_vnd"


@pytest.mark.parametrize(
    ("old", "new", "mode", "expected"),
    [
        # An optional field added to a closed schema: old records simply lack it...
        (ClosedV1, ClosedOptionalAdded, BACKWARD, []),
        # ...but old closed readers refuse new records that carry it.
        (ClosedV1, ClosedOptionalAdded, FORWARD, [("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", OPTIONAL)]),
        # An open v1 may already have written `note` with any value, so constraining it breaks new readers...
        (OpenV1, OpenOptionalAdded, BACKWARD, [("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", OPTIONAL)]),
        # ...while open old readers take the new property as one more unknown one.
        (OpenV1, OpenOptionalAdded, FORWARD, []),
    ],
    ids=["closed-backward", "closed-forward", "open-backward", "open-forward"],
)
def test_optional_field_added(
    old: type[BaseModel], new: type[BaseModel], mode: CompatibilityMode, expected: list[tuple[str, str]]
) -> None:
    assert evolve(old, new, mode) == expected


@pytest.mark.parametrize(
    ("old", "new", "mode", "expected"),
    [
        (
            ClosedV1,
            ClosedRequiredAdded,
            BACKWARD,
            [("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", REQUIRED)],
        ),
        (ClosedV1, ClosedRequiredAdded, FORWARD, [("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", REQUIRED)]),
        (OpenV1, OpenRequiredAdded, BACKWARD, [("REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", REQUIRED)]),
        (OpenV1, OpenRequiredAdded, FORWARD, []),
    ],
    ids=["closed-backward", "closed-forward", "open-backward", "open-forward"],
)
def test_required_field_added(
    old: type[BaseModel], new: type[BaseModel], mode: CompatibilityMode, expected: list[tuple[str, str]]
) -> None:
    assert evolve(old, new, mode) == expected


@pytest.mark.parametrize(
    ("old", "new", "mode", "expected"),
    [
        # A closed new reader refuses old records that still carry the field.
        (ClosedRequiredAdded, ClosedV1, BACKWARD, [("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", REQUIRED)]),
        # Old readers require it, and the closed new writer never writes it.
        (
            ClosedRequiredAdded,
            ClosedV1,
            FORWARD,
            [("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", REQUIRED)],
        ),
        # Old readers that had it optional do not miss it.
        (ClosedOptionalAdded, ClosedV1, FORWARD, []),
        # An open new reader accepts the removed field as an unknown one.
        (OpenRequiredAdded, OpenV1, BACKWARD, []),
        (OpenRequiredAdded, OpenV1, FORWARD, [("REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", REQUIRED)]),
    ],
    ids=["closed-backward", "closed-forward", "closed-optional-forward", "open-backward", "open-forward"],
)
def test_field_removed(
    old: type[BaseModel], new: type[BaseModel], mode: CompatibilityMode, expected: list[tuple[str, str]]
) -> None:
    assert evolve(old, new, mode) == expected


AMOUNT = "#/properties/amount"
LEVEL = "#/properties/level"


@pytest.mark.parametrize(
    ("old", "new", "mode", "expected"),
    [
        (AmountInt, AmountStr, BACKWARD, [("TYPE_CHANGED", AMOUNT)]),
        (AmountInt, AmountStr, FORWARD, [("TYPE_CHANGED", AMOUNT)]),
        # int -> float: a float reader reads every int...
        (AmountInt, AmountFloat, BACKWARD, []),
        # ...but an int reader cannot read 2.5.
        (AmountInt, AmountFloat, FORWARD, [("TYPE_NARROWED", AMOUNT)]),
        (AmountFloat, AmountInt, BACKWARD, [("TYPE_NARROWED", AMOUNT)]),
    ],
    ids=["int-to-str-backward", "int-to-str-forward", "widen-backward", "widen-forward", "narrow-backward"],
)
def test_type_changes(
    old: type[BaseModel], new: type[BaseModel], mode: CompatibilityMode, expected: list[tuple[str, str]]
) -> None:
    assert evolve(old, new, mode) == expected


@pytest.mark.parametrize(
    ("old", "new", "mode", "expected"),
    [
        (LevelTwo, LevelThree, BACKWARD, []),
        (LevelTwo, LevelThree, FORWARD, [("ENUM_ARRAY_NARROWED", LEVEL + "/enum")]),
        (LevelThree, LevelTwo, BACKWARD, [("ENUM_ARRAY_NARROWED", LEVEL + "/enum")]),
        (LevelThree, LevelTwo, FORWARD, []),
        # Literal["city"] is a const: changing it leaves the old and new values disjoint.
        (LevelCity, LevelWard, BACKWARD, [("ENUM_ARRAY_CHANGED", LEVEL + "/const")]),
        (LevelCity, LevelWard, FORWARD, [("ENUM_ARRAY_CHANGED", LEVEL + "/const")]),
        # A Literal widened to str: every old value is a string; old readers reject new strings.
        (LevelTwo, LevelAnyString, BACKWARD, []),
        (LevelTwo, LevelAnyString, FORWARD, [("ENUM_ARRAY_NARROWED", LEVEL + "/enum")]),
    ],
    ids=[
        "widened-backward",
        "widened-forward",
        "narrowed-backward",
        "narrowed-forward",
        "const-backward",
        "const-forward",
        "to-str-backward",
        "to-str-forward",
    ],
)
def test_enum_changes(
    old: type[BaseModel], new: type[BaseModel], mode: CompatibilityMode, expected: list[tuple[str, str]]
) -> None:
    assert evolve(old, new, mode) == expected


@pytest.mark.parametrize(
    ("old", "new", "mode", "expected"),
    [
        (NoteStr, NoteNullable, BACKWARD, []),
        (NoteStr, NoteNullable, FORWARD, [("SUM_TYPE_NARROWED", OPTIONAL)]),
        (NoteNullable, NoteStr, BACKWARD, [("SUM_TYPE_NARROWED", OPTIONAL)]),
        (NoteNullable, NoteStr, FORWARD, []),
    ],
    ids=["added-backward", "added-forward", "removed-backward", "removed-forward"],
)
def test_nullable(
    old: type[BaseModel], new: type[BaseModel], mode: CompatibilityMode, expected: list[tuple[str, str]]
) -> None:
    assert evolve(old, new, mode) == expected


def test_nested_model_change_is_found_through_ref_at_the_document_path() -> None:
    assert "$ref" in schema(TransferV2)["properties"]["parcel"]  # the change really sits behind a $ref
    area = "#/properties/parcel/properties/area_m2"
    assert evolve(TransferV1, TransferV2, BACKWARD) == [("TYPE_NARROWED", area)]
    assert evolve(TransferV1, TransferV2, FORWARD) == []
    lot = "#/properties/parcel/properties/lot"
    assert evolve(TransferV1, TransferV3, BACKWARD) == [
        ("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", lot)
    ]


def test_full_checks_both_directions_and_says_which_readers_break() -> None:
    issues = check(schema(AmountStr), [schema(AmountInt)], FULL)
    assert found(issues) == [("TYPE_CHANGED", AMOUNT), ("TYPE_CHANGED", AMOUNT)]
    backward, forward = issues
    assert "readers using the new schema" in backward.message
    assert "written with version 1" in backward.message
    assert "readers using version 1" in forward.message
    assert "written with the new schema" in forward.message
    assert evolve(LevelTwo, LevelThree, FULL) == [("ENUM_ARRAY_NARROWED", LEVEL + "/enum")]


def test_none_accepts_anything() -> None:
    assert evolve(AmountInt, AmountStr, BACKWARD)  # a breaking change...
    assert check(schema(AmountStr), [schema(AmountInt)], CompatibilityMode.NONE) == []  # ...NONE lets through


def test_nothing_to_compare_with_is_compatible() -> None:
    assert check(schema(AmountStr), [], CompatibilityMode.FULL_TRANSITIVE) == []


# --- transitive and non-transitive ----------------------------------------------------------------


def _channel(required: list[str], **channel: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {"dossier_id": {"type": "string"}, "channel": {"type": "string", **channel}},
        "required": required,
    }


# v2 makes `channel` required with a default: Confluent counts that compatible (readers fill it in).
# v3 drops the default: fine against v2 (it was required there already) but not against v1.
CHAIN_V1 = _channel(["dossier_id"])
CHAIN_V2 = _channel(["dossier_id", "channel"], default="desk")
CHAIN_V3 = _channel(["dossier_id", "channel"])


def test_each_step_of_the_chain_is_backward_compatible_with_the_one_before() -> None:
    assert check(CHAIN_V2, [CHAIN_V1], BACKWARD) == []
    assert check(CHAIN_V3, [CHAIN_V1, CHAIN_V2], BACKWARD) == []  # compares with v2 only


def test_transitive_compares_with_every_earlier_version() -> None:
    issues = check(CHAIN_V3, [CHAIN_V1, CHAIN_V2], CompatibilityMode.BACKWARD_TRANSITIVE)
    assert [(i.rule, i.path, i.against_version) for i in issues] == [
        ("REQUIRED_ATTRIBUTE_ADDED", "#/required/channel", 1)
    ]


def test_against_version_is_the_index_of_the_version_compared() -> None:
    issues = check(schema(LevelTwo), [schema(LevelThree), schema(LevelTwo), schema(LevelThree)], BACKWARD)
    assert [i.against_version for i in issues] == [3]
    assert all(i.against_version is None for i in reader_accepts(schema(LevelTwo), schema(LevelThree)))


# --- hand-written schemas -------------------------------------------------------------------------

STRING: dict[str, Any] = {"type": "string"}


@pytest.mark.parametrize(
    ("reader", "writer", "expected"),
    [
        # strings
        (
            {"type": "string", "maxLength": 10},
            {"type": "string", "maxLength": 20},
            [("MAX_LENGTH_DECREASED", "#/maxLength")],
        ),
        ({"type": "string", "maxLength": 20}, {"type": "string", "maxLength": 10}, []),
        ({"type": "string", "maxLength": 10}, STRING, [("MAX_LENGTH_ADDED", "#/maxLength")]),
        (
            {"type": "string", "minLength": 2},
            {"type": "string", "minLength": 1},
            [("MIN_LENGTH_INCREASED", "#/minLength")],
        ),
        ({"type": "string", "pattern": "^[0-9]+$"}, STRING, [("PATTERN_ADDED", "#/pattern")]),
        (
            {"type": "string", "pattern": "^[0-9]+$"},
            {"type": "string", "pattern": "^[0-9]{9}$"},
            [("PATTERN_CHANGED", "#/pattern")],
        ),
        (STRING, {"type": "string", "pattern": "^[0-9]+$"}, []),
        ({"type": "string", "format": "date-time"}, STRING, [("FORMAT_ADDED", "#/format")]),
        (
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
            [("FORMAT_CHANGED", "#/format")],
        ),
        # an enum is checked value by value against the reader's constraints
        ({"type": "string", "maxLength": 4}, {"type": "string", "enum": ["city", "ward"]}, []),
        (
            {"type": "string", "maxLength": 4},
            {"type": "string", "enum": ["city", "province"]},
            [("ENUM_ARRAY_NARROWED", "#")],
        ),
        ({"type": "integer"}, {"enum": [1, 2.0]}, []),
        ({"type": "boolean"}, {"enum": [True]}, []),
        ({"type": "integer"}, {"enum": [True]}, [("TYPE_CHANGED", "#")]),
        # numbers
        (
            {"type": "integer", "minimum": 1},
            {"type": "integer", "minimum": 0},
            [("MINIMUM_INCREASED", "#/minimum")],
        ),
        ({"type": "number", "maximum": 100}, {"type": "number"}, [("MAXIMUM_ADDED", "#/maximum")]),
        ({"type": "number", "maximum": 100}, {"type": "number", "exclusiveMaximum": 100}, []),
        (
            {"type": "number", "exclusiveMinimum": 1},
            {"type": "number", "minimum": 1},
            [("EXCLUSIVE_MINIMUM_INCREASED", "#/exclusiveMinimum")],
        ),
        # over the integers, > 0 and >= 1 are the same bound
        ({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 1}, []),
        (
            {"type": "number", "multipleOf": 10},
            {"type": "number", "multipleOf": 5},
            [("MULTIPLE_OF_EXPANDED", "#/multipleOf")],
        ),
        ({"type": "number", "multipleOf": 5}, {"type": "number", "multipleOf": 10}, []),
        ({"type": "number", "multipleOf": 0.01}, {"type": "number", "multipleOf": 0.1}, []),
        ({"type": "integer", "multipleOf": 2}, {"type": "integer"}, [("MULTIPLE_OF_ADDED", "#/multipleOf")]),
        ({"type": "integer"}, {"type": "number", "multipleOf": 1}, []),
        # arrays
        (
            {"type": "array", "items": {"type": "integer"}},
            {"type": "array", "items": STRING},
            [("TYPE_CHANGED", "#/items")],
        ),
        ({"type": "array", "items": {"type": "number"}}, {"type": "array", "items": {"type": "integer"}}, []),
        (
            {"type": "array", "minItems": 2},
            {"type": "array", "minItems": 1},
            [("MIN_ITEMS_INCREASED", "#/minItems")],
        ),
        (
            {"type": "array", "maxItems": 2},
            {"type": "array", "maxItems": 3},
            [("MAX_ITEMS_DECREASED", "#/maxItems")],
        ),
        (
            {"type": "array", "uniqueItems": True},
            {"type": "array"},
            [("UNIQUE_ITEMS_ADDED", "#/uniqueItems")],
        ),
        (
            {"type": "array", "items": {"type": ["integer", "string"]}},
            {"type": "array", "prefixItems": [{"type": "integer"}, STRING], "minItems": 2, "maxItems": 2},
            [],
        ),
        (
            {"type": "array", "items": {"type": "integer"}},
            {"type": "array", "prefixItems": [{"type": "integer"}, STRING], "minItems": 2, "maxItems": 2},
            [("ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "#/items/1")],
        ),
        # unions: every writer branch must be accepted by some reader branch
        (
            {"anyOf": [STRING, {"type": "integer"}, {"type": "null"}]},
            {"anyOf": [{"type": "integer"}, STRING]},
            [],
        ),
        (
            {"anyOf": [{"type": "integer"}]},
            {"anyOf": [{"type": "integer"}, STRING]},
            [("SUM_TYPE_NARROWED", "#")],
        ),
        ({"oneOf": [STRING, {"type": "null"}]}, {"type": ["string", "null"]}, []),
        ({"type": "number"}, {"anyOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]}, []),
        ({"type": "string"}, {"allOf": [{"type": "string"}, {"maxLength": 3}]}, []),
        # readers that accept anything, writers that write nothing or anything
        ({}, {"type": "object", "properties": {"x": {"type": "integer"}}}, []),
        (True, {"anyOf": [STRING, {"type": "null"}]}, []),
        ({"title": "only annotations", "description": "still accepts anything"}, {"type": "integer"}, []),
        (STRING, False, []),
        (STRING, {}, [("TYPE_NARROWED", "#")]),
        (False, STRING, [("TYPE_CHANGED", "#")]),
    ],
)
def test_reader_accepts(reader: Any, writer: Any, expected: list[tuple[str, str]]) -> None:
    assert found(reader_accepts(reader, writer)) == expected


def _object(properties: dict[str, Any], required: list[str], additional: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if additional is not None:
        out["additionalProperties"] = additional
    return out


X = "#/properties/x"


@pytest.mark.parametrize(
    ("reader", "writer", "expected"),
    [
        # optional -> required on a property both declare
        (
            _object({"x": STRING}, ["x"]),
            _object({"x": STRING}, []),
            [("REQUIRED_ATTRIBUTE_ADDED", "#/required/x")],
        ),
        (_object({"x": STRING}, []), _object({"x": STRING}, ["x"]), []),
        # Confluent: a required property with a default is filled in by the reader
        (_object({"x": {**STRING, "default": "a"}}, ["x"]), _object({"x": STRING}, []), []),
        (_object({"x": {**STRING, "default": "a"}}, ["x"], False), _object({}, [], False), []),
        # open -> closed, and constraining what an open writer left free
        (
            _object({}, [], False),
            _object({}, []),
            [("ADDITIONAL_PROPERTIES_REMOVED", "#/additionalProperties")],
        ),
        (
            _object({}, [], STRING),
            _object({}, [], True),
            [("ADDITIONAL_PROPERTIES_NARROWED", "#/additionalProperties")],
        ),
        (_object({}, [], {"type": "number"}), _object({}, [], {"type": "integer"}), []),
        (
            _object({}, [], {"type": "integer"}),
            _object({}, [], {"type": "number"}),
            [("TYPE_NARROWED", "#/additionalProperties")],
        ),
        (_object({}, [], True), _object({}, [], False), []),
        # partially open content models (additionalProperties is a schema)
        (_object({"x": {"type": "number"}}, []), _object({}, [], {"type": "integer"}), []),
        (
            _object({"x": STRING}, []),
            _object({}, [], {"type": "integer"}),
            [("PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", X)],
        ),
        (_object({}, [], STRING), _object({"x": STRING}, [], False), []),
        (
            _object({}, [], {"type": "integer"}),
            _object({"x": STRING}, [], False),
            [("PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", X)],
        ),
        # a property the writer declares `false` is never written
        (_object({}, [], False), _object({"x": False}, [], False), []),
        # an open writer may hold anything under a name a reader now declares, even as {}:
        # only its absence matters then
        (_object({"x": {}}, []), _object({}, []), []),
        (_object({"x": {}}, ["x"]), _object({}, []), [("REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", X)]),
        (_object({}, [], False), _object({}, [], False), []),
        ({"type": "object", "maxProperties": 2}, _object({"a": STRING, "b": STRING}, [], False), []),
        (
            {"type": "object", "maxProperties": 1},
            _object({"a": STRING, "b": STRING}, [], False),
            [("MAX_PROPERTIES_ADDED", "#/maxProperties")],
        ),
        ({"type": "object", "minProperties": 1}, _object({"a": STRING}, ["a"]), []),
    ],
)
def test_reader_accepts_objects(reader: Any, writer: Any, expected: list[tuple[str, str]]) -> None:
    assert found(reader_accepts(reader, writer)) == expected


def _tree(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "$defs": {
            "Node": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "value": value,
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["value"],
            }
        },
        "$ref": "#/$defs/Node",
    }


def test_recursive_schemas_terminate_and_still_compare() -> None:
    assert reader_accepts(_tree({"type": "integer"}), _tree({"type": "integer"})) == []
    assert found(reader_accepts(_tree({"type": "integer"}), _tree({"type": "number"}))) == [
        ("TYPE_NARROWED", "#/properties/value")
    ]


@pytest.mark.parametrize(
    ("reader", "writer", "path"),
    [
        ({"type": "string", "not": {"const": "x"}}, STRING, "#/not"),
        ({"$ref": "https://example.com/other.json"}, STRING, "#"),
        ({"$ref": "#/$defs/Missing"}, STRING, "#"),
        (STRING, {"$ref": "other.json#/$defs/Thing"}, "#"),
        ({"type": "object", "propertyNames": {"maxLength": 3}}, {"type": "object"}, "#/propertyNames"),
        ({"type": "string", "pattern": "["}, {"type": "string", "enum": ["a"]}, "#"),
    ],
    ids=["not", "external-ref", "dangling-ref", "writer-external-ref", "propertyNames", "bad-regex"],
)
def test_what_cannot_be_decided_is_reported_not_assumed(reader: Any, writer: Any, path: str) -> None:
    assert found(reader_accepts(reader, writer)) == [("UNKNOWN_CHANGE", path)]


def test_unknown_keywords_unchanged_are_fine() -> None:
    same = {"type": "string", "not": {"const": "x"}}
    assert reader_accepts(same, dict(same)) == []


def test_message_says_what_changed_and_which_readers_break() -> None:
    (issue,) = check(schema(ClosedRequiredAdded), [schema(ClosedV1)], BACKWARD)
    assert "'fee_vnd'" in issue.message
    assert "readers using the new schema" in issue.message
    assert "records written with version 1" in issue.message
    assert issue.message.endswith(".")
    assert issue.message.count(".") == 1


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_schema_is_fully_compatible_with_itself(event_type: str) -> None:
    event_schema = EVENT_TYPES[event_type].model_json_schema()
    assert check(event_schema, [event_schema], CompatibilityMode.FULL_TRANSITIVE) == []
