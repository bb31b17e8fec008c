"""Schema compatibility with the semantics of Confluent Schema Registry's JSON Schema checks.

The one question behind every mode is *can a reader validate what a writer wrote?*
``reader_accepts`` answers it for one reader schema and one writer schema; ``check`` asks it in the
directions a compatibility mode names (BACKWARD: the new schema reads old records; FORWARD: old
schemas read new records; FULL: both; ``_TRANSITIVE``: against every earlier version, not only the
latest).

The rules, and the names they report, are Confluent's (``io.confluent.kafka.schemaregistry.json.diff``):
a property a closed reader does not know breaks it (``PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL``), a
property an open writer may already have written with any value breaks a reader that now constrains it
(``OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``), and so on. Where Confluent compares schemas by
their shape and the shapes differ (``X | None`` losing its ``None``, a ``Literal`` widened to ``str``),
this module decides by what each schema accepts instead, and says which rule it applied; where it
cannot decide, it reports ``UNKNOWN_CHANGE`` rather than guess "compatible".

Paths follow the document, not the schema's plumbing: ``#/properties/parcel/properties/area_m2`` is
the same place whether ``parcel`` is inlined or behind a ``$ref``, and a keyword that changed is
appended (``.../maxLength``), as Confluent does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final, TypeAlias
from urllib.parse import unquote

__all__ = ["CompatibilityMode", "Incompatibility", "Schema", "check", "reader_accepts"]

Schema: TypeAlias = Mapping[str, Any] | bool
"""A JSON Schema document or subschema: an object, or ``true``/``false``."""


class CompatibilityMode(StrEnum):
    """Which readers must be able to read which writers' records (Confluent's level names)."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


@dataclass(frozen=True)
class Incompatibility:
    """One reason some reader cannot read some writer's records."""

    path: str
    """Where, as a JSON-pointer-like path through the document, e.g. ``#/properties/note``."""
    rule: str
    """Confluent-style name of the change, e.g. ``REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL``."""
    message: str
    """One sentence for a developer: what changed, and which readers it breaks."""
    against_version: int | None = None
    """1-based index of the earlier version this was found against (``check`` only)."""


def reader_accepts(reader: Schema, writer: Schema) -> list[Incompatibility]:
    """Why some record valid under ``writer`` would fail validation under ``reader`` (empty: none).

    Each schema's local ``$ref`` (``#/$defs/...``) is resolved against that schema's own root.
    """
    return _Checker(reader, writer, "the reader schema", "the writer schema").run()


def check(new: Schema, previous: Sequence[Schema], mode: CompatibilityMode) -> list[Incompatibility]:
    """Why ``new`` may not be registered after ``previous`` (ordered oldest to newest) under ``mode``.

    Non-transitive modes compare with the latest previous version only, transitive ones with all of
    them. Each finding carries ``against_version``, the 1-based index into ``previous``.
    """
    mode = CompatibilityMode(mode)
    if mode is CompatibilityMode.NONE or not previous:
        return []
    versions = list(enumerate(previous, start=1))
    if not mode.endswith("_TRANSITIVE"):
        versions = versions[-1:]
    backward = mode.startswith(("BACKWARD", "FULL"))
    forward = mode.startswith(("FORWARD", "FULL"))
    found: list[Incompatibility] = []
    for number, old in versions:
        label = f"version {number}"
        if backward:  # consumers upgraded first: the new schema reads what the old one wrote
            issues = _Checker(new, old, "the new schema", label).run()
            found += [replace(i, against_version=number) for i in issues]
        if forward:  # producers upgraded first: the old schema reads what the new one writes
            issues = _Checker(old, new, label, "the new schema").run()
            found += [replace(i, against_version=number) for i in issues]
    return found


# --- keywords -----------------------------------------------------------------------------------

_ANNOTATIONS: Final = frozenset(
    {
        "$schema", "$id", "$anchor", "$dynamicAnchor", "$vocabulary", "$comment", "$defs",
        "definitions", "title", "description", "default", "examples", "deprecated", "readOnly",
        "writeOnly", "contentEncoding", "contentMediaType", "contentSchema",
        # OpenAPI's hint for tagged unions (pydantic emits it): validation ignores it.
        "discriminator",
    }
)  # fmt: skip
"""Keywords that never make a document invalid, so they never break a reader."""

_STRUCTURAL: Final = frozenset({"type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"})
"""Keywords this module turns into alternatives before comparing constraints."""

_FAMILY: Final[dict[str, frozenset[str]]] = {
    "string": frozenset({"maxLength", "minLength", "pattern", "format"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}),
    "array": frozenset(
        {"items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems",
         "contains", "minContains", "maxContains", "unevaluatedItems"}
    ),
    "object": frozenset(
        {"properties", "required", "additionalProperties", "patternProperties", "minProperties",
         "maxProperties", "propertyNames", "dependentRequired", "dependentSchemas", "dependencies",
         "unevaluatedProperties"}
    ),
}  # fmt: skip
"""Keywords that only constrain values of one JSON type (and are ignored for the others)."""

_HANDLED: Final[dict[str, frozenset[str]]] = {
    "string": _FAMILY["string"],
    "number": _FAMILY["number"],
    "array": frozenset({"items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems"}),
    "object": frozenset(
        {
            "properties",
            "required",
            "additionalProperties",
            "patternProperties",
            "minProperties",
            "maxProperties",
        }
    ),
}
"""Of each family, the keywords compared by meaning; any other one must be unchanged."""

_KINDS: Final = ("null", "boolean", "number", "string", "array", "object")
"""One kind per JSON type, ``integer`` being a part of ``number``: together they accept anything."""

_EMPTY: Final[Mapping[str, Any]] = {}

_MAX_DEPTH: Final = 100


class _Undecidable(Exception):
    """A schema this module cannot reason about (an external ``$ref``, a malformed keyword...)."""


@dataclass(frozen=True)
class _Alt:
    """One alternative of a schema's union, restricted to one JSON type (or to none, or a conjunction).

    ``kind`` is a JSON type name, ``"any"`` (no assertion at all) or ``"conj"`` (``parts`` must all
    hold: ``allOf``, or a combinator with assertions beside it). ``enum`` lists the only values
    allowed, when the schema lists them.
    """

    kind: str
    schema: Mapping[str, Any]
    enum: tuple[Any, ...] | None = None
    parts: tuple[Schema, ...] = field(default=())


# --- the checker --------------------------------------------------------------------------------


class _Checker:
    """Compares one writer schema with one reader schema, each resolving ``$ref`` in its own root."""

    def __init__(self, reader: Schema, writer: Schema, reader_name: str, writer_name: str) -> None:
        self._r_root = reader
        self._w_root = writer
        self._r_name = reader_name
        self._w_name = writer_name
        self._r_cap = _cap(reader_name)  # the same names, opening a sentence
        self._w_cap = _cap(writer_name)
        # Pairs under comparison. Meeting one again means a recursive schema came back to where it
        # started; assuming it compatible there is sound (nothing on the way found otherwise) and is
        # what stops the recursion, as Confluent's Context.enterSchema does.
        self._active: set[tuple[int, str, int]] = set()
        self._depth = 0

    def run(self) -> list[Incompatibility]:
        """All incompatibilities, first found first, each (path, rule) once."""
        seen: set[tuple[str, str]] = set()
        out: list[Incompatibility] = []
        for issue in self._check(self._w_root, self._r_root, "#"):
            if (issue.path, issue.rule) not in seen:
                seen.add((issue.path, issue.rule))
                out.append(issue)
        return out

    # -- messages --

    def _issue(self, path: str, rule: str, detail: str) -> Incompatibility:
        """A finding whose message ends by naming the readers it breaks."""
        return Incompatibility(
            path=path,
            rule=rule,
            message=f"{detail}, so readers using {self._r_name} can reject records written with "
            f"{self._w_name}.",
        )

    def _unknown(self, path: str, why: str) -> Incompatibility:
        return self._issue(path, "UNKNOWN_CHANGE", f"{why}; this checker cannot prove the change safe")

    # -- resolution --

    def _resolve(self, schema: Schema, root: Schema) -> Schema:
        """``schema`` with a ``$ref`` that has only annotations beside it replaced by its target."""
        for _ in range(64):
            if not isinstance(schema, Mapping) or "$ref" not in schema:
                return schema
            if any(k not in _ANNOTATIONS for k in schema if k != "$ref"):
                return schema  # assertions beside $ref: both apply, _alternatives makes a conjunction
            schema = _pointer(root, schema["$ref"])
        raise _Undecidable("a $ref chain that does not end")

    def _is_any(self, schema: Schema) -> bool:
        """Whether a resolved schema accepts every JSON value."""
        if isinstance(schema, bool):
            return schema
        return all(k in _ANNOTATIONS for k in schema)

    def _alternatives(self, schema: Schema, root: Schema) -> list[_Alt]:
        """``schema`` as a union of alternatives, each of one JSON type (empty: accepts nothing)."""
        s = self._resolve(schema, root)
        if s is True:
            return [_Alt("any", _EMPTY)]
        if s is False:
            return []
        if not isinstance(s, Mapping):
            raise _Undecidable(f"{type(s).__name__} where a schema was expected")
        if "$ref" in s:
            rest = {k: v for k, v in s.items() if k != "$ref"}
            return [_Alt("conj", s, parts=({"$ref": s["$ref"]}, rest))]
        if "allOf" in s:
            members = _schemas(s["allOf"], "allOf")
            rest = {k: v for k, v in s.items() if k != "allOf"}
            parts = tuple(members) + ((rest,) if _asserts(rest) else ())
            if len(parts) == 1:
                return self._alternatives(parts[0], root)
            return [_Alt("conj", s, parts=parts)]
        combinators = [k for k in ("anyOf", "oneOf") if k in s]
        if combinators:
            rest = {k: v for k, v in s.items() if k not in combinators}
            if len(combinators) == 1 and not _asserts(rest):
                # oneOf is read as anyOf, as Confluent does: what a writer's oneOf allows is a subset
                # of its anyOf, and a reader's oneOf branches are taken to be disjoint.
                out: list[_Alt] = []
                for branch in _schemas(s[combinators[0]], combinators[0]):
                    out += self._alternatives(branch, root)
                return out
            parts = tuple({k: s[k]} for k in combinators) + ((rest,) if _asserts(rest) else ())
            return [_Alt("conj", s, parts=parts)]
        values = _allowed_values(s)
        if "type" in s:
            declared = s["type"] if isinstance(s["type"], list) else [s["type"]]
            if not all(isinstance(t, str) for t in declared):
                raise _Undecidable("a malformed type keyword")
            kinds: list[str] = list(dict.fromkeys(declared))
        elif values is not None:
            kinds = list(dict.fromkeys(_kind_of(v) for v in values))
        elif _asserts(s):
            kinds = list(_KINDS)  # keywords without a type constrain their own type, allow the rest
        else:
            return [_Alt("any", _EMPTY)]
        alts: list[_Alt] = []
        for kind in kinds:
            if values is None:
                alts.append(_Alt(kind, s))
            elif fitting := tuple(v for v in values if _fits(v, kind)):
                alts.append(_Alt(kind, s, fitting))
        return alts

    # -- comparison --

    def _check(self, writer: Schema, reader: Schema, path: str) -> list[Incompatibility]:
        """Why some value ``writer`` allows at ``path`` would be rejected by ``reader``."""
        try:
            w_alts = self._alternatives(writer, self._w_root)
        except _Undecidable as e:
            return [self._unknown(path, f"{self._w_cap} has {e} at {path}")]
        union = len(w_alts) > 1
        issues: list[Incompatibility] = []
        for alt in w_alts:
            issues += self._accepted(alt, reader, path, union)
        return issues

    def _accepted(self, wa: _Alt, reader: Schema, path: str, union: bool) -> list[Incompatibility]:
        """Why some value of the writer's alternative ``wa`` would be rejected by ``reader``."""
        try:
            r = self._resolve(reader, self._r_root)
            if self._is_any(r):
                return []
            key = (id(wa.schema), wa.kind, id(r))
            if key in self._active:
                return []
            if self._depth >= _MAX_DEPTH:  # a safety net: recursion is meant to end at the pair above
                raise _Undecidable("nesting deeper than this checker follows")
            self._active.add(key)
            self._depth += 1
            try:
                return self._against(wa, self._alternatives(r, self._r_root), r, path, union)
            finally:
                self._active.discard(key)
                self._depth -= 1
        except _Undecidable as e:
            # Raised by either side's schema, anywhere below this alternative.
            return [self._unknown(path, f"The schemas at {path} involve {e}")]

    def _against(
        self, wa: _Alt, r_alts: list[_Alt], reader: Schema, path: str, union: bool
    ) -> list[Incompatibility]:
        """Why some value of ``wa`` would be rejected by every one of the reader's alternatives."""
        if wa.kind == "conj":
            # A writer's allOf writes values that satisfy every part, so one part the reader accepts
            # is enough (Confluent's PRODUCT_TYPE_NARROWED); otherwise report the closest part.
            closest: list[Incompatibility] | None = None
            for part in wa.parts:
                issues = self._check(part, reader, path)
                if not issues:
                    return []
                if closest is None or len(issues) < len(closest):
                    closest = issues
            return closest or []
        if any(ra.kind == "any" for ra in r_alts):
            return []
        if wa.kind == "any":
            kinds = {ra.kind for ra in r_alts}
            if set(_KINDS) <= kinds:  # the reader lists every type: compare them one by one
                return [i for k in _KINDS for i in self._against(_Alt(k, _EMPTY), r_alts, reader, path, True)]
            return [
                self._issue(
                    path,
                    "TYPE_NARROWED",
                    f"{self._w_cap} allows any value at {path} but {self._r_name} accepts only "
                    f"{_kinds_text(r_alts)}",
                )
            ]
        results: list[list[Incompatibility]] = []
        for ra in r_alts:
            if ra.kind == "conj":
                issues = [i for part in ra.parts for i in self._accepted(wa, part, path, union)]
            elif _comparable(wa.kind, ra.kind):
                issues = self._typed(wa, ra, path)
            else:
                continue
            if not issues:
                return []
            results.append(issues)
        if results:
            # Several reader branches of the writer's type and none accepts it: the closest one's
            # reasons are the ones a developer can act on.
            return min(results, key=len)
        if union:
            return [
                self._issue(
                    path,
                    "SUM_TYPE_NARROWED",
                    f"{self._w_cap} allows {_a(wa.kind)} at {path} as one of its alternatives but "
                    f"{self._r_name} accepts only {_kinds_text(r_alts)} there",
                )
            ]
        return [
            self._issue(
                path,
                "TYPE_CHANGED",
                f"The type at {path} changed: {self._w_name} writes {_a(wa.kind)} but {self._r_name} "
                f"accepts only {_kinds_text(r_alts)}",
            )
        ]

    def _typed(self, wa: _Alt, ra: _Alt, path: str) -> list[Incompatibility]:
        """Why some value of ``wa`` would fail the reader alternative ``ra`` of a comparable type."""
        kind = "number" if ra.kind == "integer" else ra.kind
        issues: list[Incompatibility] = []
        if wa.enum is not None:
            # The writer can only write these values: trying each one on the reader is exact.
            issues += self._enum_values(wa, ra, path)
        elif ra.enum is not None:
            every: dict[str, list[Any]] = {"null": [None], "boolean": [True, False]}
            if wa.kind not in every or not _canon_set(every[wa.kind]) <= _canon_set(ra.enum):
                issues.append(
                    self._issue(
                        path + "/enum",
                        "ENUM_ARRAY_NARROWED",
                        f"{self._w_cap} allows any {wa.kind} at {path} but {self._r_name} accepts only "
                        f"{_values_text(ra.enum)}",
                    )
                )
        elif kind == "number":
            issues += self._numbers(wa, ra, path)
        elif kind == "string":
            issues += self._strings(wa.schema, ra.schema, path)
        elif kind == "array":
            issues += self._arrays(wa.schema, ra.schema, path)
        elif kind == "object":
            issues += self._objects(wa.schema, ra.schema, path)
        elif kind not in ("null", "boolean"):
            return [self._unknown(path, f"{self._r_cap} names the unknown type {ra.kind!r} at {path}")]
        return issues + self._unhandled_keywords(wa.schema, ra.schema, kind, path)

    def _unhandled_keywords(
        self, w: Mapping[str, Any], r: Mapping[str, Any], kind: str, path: str
    ) -> list[Incompatibility]:
        """Keywords not compared by meaning: a reader may keep them only exactly as the writer had them.

        The writer's own extra keywords never matter: they only narrow what it writes.
        """
        foreign = frozenset().union(*(kws for fam, kws in _FAMILY.items() if fam != kind))
        known = _ANNOTATIONS | _STRUCTURAL | foreign | _HANDLED.get(kind, frozenset())
        return [
            self._unknown(
                path + "/" + _escape(k),
                f"{self._r_cap} has keyword {k!r} at {path} that {self._w_name} lacks or differs on",
            )
            for k in r
            if k not in known and (k not in w or w[k] != r[k])
        ]

    # -- enum and const --

    def _enum_values(self, wa: _Alt, ra: _Alt, path: str) -> list[Incompatibility]:
        assert wa.enum is not None
        if ra.enum is not None:
            r_set = _canon_set(ra.enum)
            w_set = _canon_set(wa.enum)
            missing = [v for v in wa.enum if _canon(v) not in r_set]
            if missing:
                rule = "ENUM_ARRAY_NARROWED" if r_set < w_set else "ENUM_ARRAY_CHANGED"
                return [
                    self._issue(
                        path + ("/const" if "const" in ra.schema and "enum" not in ra.schema else "/enum"),
                        rule,
                        f"{self._w_cap} may write {_values_text(missing)} at {path} but {self._r_name} "
                        f"accepts only {_values_text(ra.enum)}",
                    )
                ]
        issues: list[Incompatibility] = []
        for value in wa.enum:
            try:
                why = _value_rejected(value, ra)
            except _Undecidable as e:
                issues.append(self._unknown(path, f"{self._w_cap} may write {value!r} at {path}, and {e}"))
                continue
            if why:
                issues.append(
                    self._issue(
                        path,
                        "ENUM_ARRAY_NARROWED",
                        f"{self._w_cap} may write {value!r} at {path} but {self._r_name} rejects it ({why})",
                    )
                )
        return issues

    # -- numbers --

    def _numbers(self, wa: _Alt, ra: _Alt, path: str) -> list[Incompatibility]:
        w, r = wa.schema, ra.schema
        integers = wa.kind == "integer"
        issues: list[Incompatibility] = []
        w_step = _number(w, "multipleOf")
        if ra.kind == "integer" and not integers and not (w_step is not None and w_step.denominator == 1):
            issues.append(
                self._issue(
                    path,
                    "TYPE_NARROWED",
                    f"{self._w_cap} allows any number at {path} but {self._r_name} accepts only integers",
                )
            )
        for side in ("minimum", "maximum"):
            wb = _bound(w, side, integers)
            rb = _bound(r, side, integers)
            if rb is None:
                continue
            lower = side == "minimum"
            if wb is not None:
                tighter = (rb.value > wb.value) if lower else (rb.value < wb.value)
                if not (tighter or (rb.value == wb.value and rb.exclusive and not wb.exclusive)):
                    continue
            change = "ADDED" if wb is None else ("INCREASED" if lower else "DECREASED")
            was = "no bound" if wb is None else f"{wb.keyword} {_num_text(wb.value)}"
            issues.append(
                self._issue(
                    f"{path}/{rb.keyword}",
                    f"{_RULE_STEM[rb.keyword]}_{change}",
                    f"{self._r_cap} requires {rb.keyword} {_num_text(rb.value)} at {path} where "
                    f"{self._w_name} has {was}",
                )
            )
        r_step = _number(r, "multipleOf")
        if r_step is not None:
            w_grain = w_step if w_step is not None else (Fraction(1) if integers else None)
            if w_grain is None or (w_grain / r_step).denominator != 1:
                if w_step is None:
                    rule = "MULTIPLE_OF_ADDED"
                elif (r_step / w_step).denominator == 1:
                    rule = "MULTIPLE_OF_EXPANDED"
                else:
                    rule = "MULTIPLE_OF_CHANGED"
                issues.append(
                    self._issue(
                        path + "/multipleOf",
                        rule,
                        f"{self._r_cap} requires multiples of {_num_text(r_step)} at {path} where "
                        f"{self._w_name} allows "
                        + ("any number" if w_grain is None else f"multiples of {_num_text(w_grain)}"),
                    )
                )
        return issues

    # -- strings --

    def _strings(self, w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[Incompatibility]:
        issues: list[Incompatibility] = []
        r_max, w_max = _count(r, "maxLength"), _count(w, "maxLength")
        if r_max is not None and (w_max is None or r_max < w_max):
            issues.append(
                self._issue(
                    path + "/maxLength",
                    "MAX_LENGTH_ADDED" if w_max is None else "MAX_LENGTH_DECREASED",
                    f"{self._r_cap} caps strings at {path} to {r_max} characters where {self._w_name} allows "
                    + ("any length" if w_max is None else f"{w_max}"),
                )
            )
        r_min, w_min = _count(r, "minLength") or 0, _count(w, "minLength") or 0
        if r_min > w_min:
            issues.append(
                self._issue(
                    path + "/minLength",
                    "MIN_LENGTH_ADDED" if "minLength" not in w else "MIN_LENGTH_INCREASED",
                    f"{self._r_cap} requires strings at {path} of at least {r_min} characters where "
                    f"{self._w_name} allows {w_min}",
                )
            )
        if "pattern" in r and r.get("pattern") != w.get("pattern"):
            # Whether one regular expression's language contains another's is not decided here:
            # any change to the reader's pattern is taken as breaking, as Confluent does.
            issues.append(
                self._issue(
                    path + "/pattern",
                    "PATTERN_ADDED" if "pattern" not in w else "PATTERN_CHANGED",
                    f"{self._r_cap} requires strings at {path} to match {r['pattern']!r} where "
                    f"{self._w_name} "
                    + ("has no pattern" if "pattern" not in w else f"requires {w['pattern']!r}"),
                )
            )
        if "format" in r and r.get("format") != w.get("format"):
            # Confluent ignores format; validators that assert it (date-time...) would reject, so a
            # reader's new or different format is reported.
            issues.append(
                self._issue(
                    path + "/format",
                    "FORMAT_ADDED" if "format" not in w else "FORMAT_CHANGED",
                    f"{self._r_cap} requires format {r['format']!r} at {path} where {self._w_name} "
                    + ("has no format" if "format" not in w else f"has {w['format']!r}"),
                )
            )
        return issues

    # -- arrays --

    def _arrays(self, w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[Incompatibility]:
        issues: list[Incompatibility] = []
        w_prefix, w_rest = _array_layout(w)
        r_prefix, r_rest = _array_layout(r)
        w_max = _count(w, "maxItems")
        limit = w_max if w_max is not None else math.inf
        tuples = bool(w_prefix or r_prefix)
        positions = max(len(w_prefix), len(r_prefix))
        for i in range(positions):
            if i >= limit:
                break  # the writer never writes an item at this position
            at = f"{path}/items/{i}"
            if i < len(w_prefix) and i < len(r_prefix):
                issues += self._check(w_prefix[i], r_prefix[i], at)
            elif i < len(w_prefix):  # the reader has no schema of its own for this position
                issues += self._region(
                    w_prefix[i], r_rest, at, "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    partial="ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                )  # fmt: skip
            else:  # the reader has a schema for a position the writer only covers with its rest
                issues += self._region(
                    w_rest, r_prefix[i], at, "TYPE_CHANGED", "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
                    partial="ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                )  # fmt: skip
        if limit > positions:
            if tuples:
                issues += self._region(
                    w_rest, r_rest, path + "/items", "ADDITIONAL_ITEMS_REMOVED", "ADDITIONAL_ITEMS_NARROWED"
                )
            else:
                issues += self._check(w_rest, r_rest, path + "/items")
        r_min, w_min = _count(r, "minItems") or 0, _count(w, "minItems") or 0
        if r_min > w_min:
            issues.append(
                self._issue(
                    path + "/minItems",
                    "MIN_ITEMS_ADDED" if "minItems" not in w else "MIN_ITEMS_INCREASED",
                    f"{self._r_cap} requires at least {r_min} items at {path} where {self._w_name} "
                    f"allows {w_min}",
                )
            )
        r_max = _count(r, "maxItems")
        if r_max is not None and (w_max is None or r_max < w_max):
            issues.append(
                self._issue(
                    path + "/maxItems",
                    "MAX_ITEMS_ADDED" if w_max is None else "MAX_ITEMS_DECREASED",
                    f"{self._r_cap} allows at most {r_max} items at {path} where {self._w_name} allows "
                    + ("any number" if w_max is None else f"{w_max}"),
                )
            )
        if r.get("uniqueItems") is True and w.get("uniqueItems") is not True and limit > 1:
            issues.append(
                self._issue(
                    path + "/uniqueItems",
                    "UNIQUE_ITEMS_ADDED",
                    f"{self._r_cap} requires the items at {path} to be unique where {self._w_name} "
                    "allows repeats",
                )
            )
        return issues

    def _region(
        self,
        writer: Schema,
        reader: Schema,
        path: str,
        closed_rule: str,
        open_rule: str,
        *,
        partial: str | None = None,
    ) -> list[Incompatibility]:
        """Compare a schema that covers "everything else" on one side with a schema on the other.

        ``closed_rule`` names a reader of ``false`` (it accepts nothing there), ``open_rule`` a writer
        of ``true`` (it may have written anything there), ``partial`` a comparison of two schemas
        that fails (defaults to ``open_rule`` when the reader's side is its "everything else").
        """
        try:
            w = self._resolve(writer, self._w_root)
            r = self._resolve(reader, self._r_root)
        except _Undecidable as e:
            return [self._unknown(path, f"there is {e} at {path}")]
        if w is False or self._is_any(r):
            return []
        if r is False:
            return [
                self._issue(
                    path,
                    closed_rule,
                    f"{self._w_cap} may write a value at {path} but {self._r_name} allows none there",
                )
            ]
        if self._is_any(w):
            return [
                self._issue(
                    path,
                    open_rule,
                    f"{self._w_cap} may write any value at {path} but {self._r_name} constrains it",
                )
            ]
        found = self._check(writer, reader, path)
        if found and partial is not None:
            return [
                self._issue(
                    path,
                    partial,
                    f"{self._w_cap} may write values at {path} that {self._r_name} does not accept "
                    f"({found[0].rule} at {found[0].path})",
                )
            ]
        return found

    # -- objects --

    def _objects(self, w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[Incompatibility]:
        issues: list[Incompatibility] = []
        w_props, r_props = _properties(w), _properties(r)
        w_req, r_req = _required(w), _required(r)
        w_pats, r_pats = _patterns(w), _patterns(r)
        names = list(dict.fromkeys([*w_props, *w_req, *r_props, *r_req]))
        for name in names:
            at = f"{path}/properties/{_escape(name)}"
            w_s, w_src = (w_props[name], "declared") if name in w_props else _fallback(w, w_pats, name)
            r_s, r_src = (r_props[name], "declared") if name in r_props else _fallback(r, r_pats, name)
            try:
                w_res = self._resolve(w_s, self._w_root)
                r_res = self._resolve(r_s, self._r_root)
            except _Undecidable as e:
                issues.append(self._unknown(at, f"there is {e} at {at}"))
                continue
            writer_open = w_src != "declared" and self._is_any(w_res)
            writer_closed = w_src != "declared" and w_res is False
            # Presence: a reader that requires the property needs every record to carry it.
            if name in r_req and name not in w_req:
                issues += self._required_added(
                    name, r_s, self._is_any(r_res), path, at, w_src, writer_open, writer_closed
                )
            # Value: whatever the writer may put under the name must be acceptable to the reader.
            if w_res is False:
                continue  # the writer never writes it (closed, or declared `false`)
            if w_src == "declared" and r_src != "declared":
                issues += self._property_removed(name, w_s, r_s, r_res, at)
            elif w_src != "declared" and r_src == "declared":
                if writer_open:
                    if not self._is_any(r_res) and name not in r_req:
                        issues.append(
                            self._issue(
                                at,
                                "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                                f"{self._r_cap} constrains property '{name}', which {self._w_name} does not "
                                f"define but, being open, may already carry with any value",
                            )
                        )
                else:
                    found = self._check(w_s, r_s, at)
                    if found:
                        issues.append(
                            self._issue(
                                at,
                                "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                                f"{self._r_cap} defines property '{name}' in a way the schema {self._w_name} "
                                f"applies to undeclared properties does not satisfy ({found[0].rule})",
                            )
                        )
            else:
                issues += self._check(w_s, r_s, at)
            for pattern, r_pat in r_pats.items():
                # A reader's patternProperties also constrain properties it declares.
                if r_pat is not r_s and w_pats.get(pattern) != r_pat and _search(pattern, name):
                    issues += self._check(w_s, r_pat, at)
        issues += self._other_properties(w, r, w_pats, r_pats, path)
        issues += self._property_counts(w, r, w_props, w_req, w_pats, path)
        return issues

    def _required_added(
        self,
        name: str,
        r_schema: Schema,
        reader_any: bool,
        path: str,
        at: str,
        w_src: str,
        writer_open: bool,
        writer_closed: bool,
    ) -> list[Incompatibility]:
        """A property the reader requires but the writer may leave out."""
        # Confluent counts a required property with a default as compatible (a reader fills it
        # in), except where an open writer may have written it with any value.
        has_default = isinstance(r_schema, Mapping) and "default" in r_schema
        if w_src == "declared":
            if has_default:
                return []
            return [
                self._issue(
                    f"{path}/required/{_escape(name)}",
                    "REQUIRED_ATTRIBUTE_ADDED",
                    f"Property '{name}' is optional in {self._w_name} but required by {self._r_name}",
                )
            ]
        if writer_open:
            if has_default and reader_any:
                return []  # filled in when absent, and any value the writer had is fine
            rule = (
                "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL"
                if has_default
                else "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
            )
            return [
                self._issue(
                    at,
                    rule,
                    f"{self._r_cap} requires property '{name}', which {self._w_name} does not define "
                    "but, being open, may have written with any value or left out",
                )
            ]
        if has_default:
            return []
        where = "closed" if writer_closed else "only partially open"
        return [
            self._issue(
                at,
                "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
                f"{self._r_cap} requires property '{name}', which {self._w_name} ({where}) does not define "
                f"and its records therefore lack",
            )
        ]

    def _property_removed(
        self, name: str, w_schema: Schema, r_schema: Schema, r_res: Schema, at: str
    ) -> list[Incompatibility]:
        """A property the writer defines and the reader does not."""
        if self._is_any(r_res):
            return []  # PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL: compatible
        if r_res is False:
            return [
                self._issue(
                    at,
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    f"{self._w_cap} defines property '{name}' but {self._r_name}, being closed, does not",
                )
            ]
        found = self._check(w_schema, r_schema, at)
        if not found:
            return []
        return [
            self._issue(
                at,
                "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                f"{self._w_cap} defines property '{name}' which {self._r_name} does not, and the schema it "
                f"applies to undeclared properties does not accept its values ({found[0].rule})",
            )
        ]

    def _other_properties(
        self,
        w: Mapping[str, Any],
        r: Mapping[str, Any],
        w_pats: Mapping[str, Schema],
        r_pats: Mapping[str, Schema],
        path: str,
    ) -> list[Incompatibility]:
        """Properties neither side declares: patternProperties and additionalProperties."""
        issues: list[Incompatibility] = []
        w_add = w.get("additionalProperties", True)
        r_add = r.get("additionalProperties", True)
        try:
            writer_only_declared = self._resolve(w_add, self._w_root) is False and not w_pats
        except _Undecidable as e:
            return [self._unknown(path + "/additionalProperties", f"there is {e} at {path}")]
        for pattern, r_pat in r_pats.items():
            at = f"{path}/patternProperties/{_escape(pattern)}"
            if pattern in w_pats:
                issues += self._check(w_pats[pattern], r_pat, at)
            elif not writer_only_declared:
                issues.append(
                    self._unknown(at, f"{self._r_cap} adds patternProperties {pattern!r} at {path}")
                )
        for pattern, w_pat in w_pats.items():
            if pattern in r_pats:
                continue
            at = f"{path}/patternProperties/{_escape(pattern)}"
            if r_pats:
                issues.append(
                    self._unknown(
                        at, f"{self._w_cap} has patternProperties {pattern!r} that {self._r_name} lacks"
                    )
                )
            else:
                issues += self._region(
                    w_pat, r_add, at, "ADDITIONAL_PROPERTIES_REMOVED", "ADDITIONAL_PROPERTIES_NARROWED"
                )
        issues += self._region(
            w_add,
            r_add,
            path + "/additionalProperties",
            "ADDITIONAL_PROPERTIES_REMOVED",
            "ADDITIONAL_PROPERTIES_NARROWED",
        )
        return issues

    def _property_counts(
        self,
        w: Mapping[str, Any],
        r: Mapping[str, Any],
        w_props: Mapping[str, Schema],
        w_req: Sequence[str],
        w_pats: Mapping[str, Schema],
        path: str,
    ) -> list[Incompatibility]:
        issues: list[Incompatibility] = []
        w_min = max(_count(w, "minProperties") or 0, len(set(w_req)))
        r_min = _count(r, "minProperties") or 0
        if r_min > w_min:
            issues.append(
                self._issue(
                    path + "/minProperties",
                    "MIN_PROPERTIES_ADDED" if "minProperties" not in w else "MIN_PROPERTIES_INCREASED",
                    f"{self._r_cap} requires at least {r_min} properties at {path} where "
                    f"{self._w_name} may write {w_min}",
                )
            )
        w_max_kw = _count(w, "maxProperties")
        closed = w.get("additionalProperties", True) is False and not w_pats
        w_max = min(x for x in (w_max_kw, len(w_props) if closed else None, math.inf) if x is not None)
        r_max = _count(r, "maxProperties")
        if r_max is not None and r_max < w_max:
            issues.append(
                self._issue(
                    path + "/maxProperties",
                    "MAX_PROPERTIES_ADDED" if w_max_kw is None else "MAX_PROPERTIES_DECREASED",
                    f"{self._r_cap} allows at most {r_max} properties at {path} where "
                    f"{self._w_name} may write more",
                )
            )
        return issues


# --- helpers ------------------------------------------------------------------------------------

_RULE_STEM: Final = {
    "minimum": "MINIMUM",
    "exclusiveMinimum": "EXCLUSIVE_MINIMUM",
    "maximum": "MAXIMUM",
    "exclusiveMaximum": "EXCLUSIVE_MAXIMUM",
}


@dataclass(frozen=True)
class _Bound:
    """The tightest lower or upper bound a schema puts on numbers."""

    value: Fraction
    exclusive: bool
    keyword: str


def _pointer(root: Schema, ref: Any) -> Schema:
    """The subschema a local ``$ref`` (``#``, ``#/$defs/Name``...) points at in ``root``."""
    if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
        raise _Undecidable(f"a $ref this checker cannot resolve ({ref!r})")
    node: Any = root
    for raw in ref[2:].split("/") if ref != "#" else []:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _Undecidable(f"a $ref to nothing ({ref!r})")
    if not isinstance(node, (Mapping, bool)):
        raise _Undecidable(f"a $ref to a non-schema ({ref!r})")
    return node


def _asserts(schema: Mapping[str, Any]) -> bool:
    """Whether a schema object has any keyword that can reject a value."""
    return any(k not in _ANNOTATIONS for k in schema)


def _schemas(value: Any, keyword: str) -> list[Schema]:
    if not isinstance(value, list) or not all(isinstance(s, (Mapping, bool)) for s in value):
        raise _Undecidable(f"a malformed {keyword}")
    return value


def _allowed_values(s: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The values ``enum`` and ``const`` together allow, or None when they allow any."""
    values: tuple[Any, ...] | None = None
    if "enum" in s:
        if not isinstance(s["enum"], list):
            raise _Undecidable("a malformed enum")
        values = tuple(s["enum"])
    if "const" in s:
        const = s["const"]
        values = (const,) if values is None or _canon(const) in _canon_set(values) else ()
    return values


def _kind_of(value: Any) -> str:
    """The JSON type of a Python value as json.loads makes it (``integer`` for 2 and 2.0)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    raise _Undecidable(f"an enum value that is not JSON ({value!r})")


def _fits(value: Any, kind: str) -> bool:
    found = _kind_of(value)
    return found == kind or (kind == "number" and found == "integer")


def _comparable(w_kind: str, r_kind: str) -> bool:
    """Whether values of the writer's type could pass the reader's (integer and number overlap)."""
    return w_kind == r_kind or {w_kind, r_kind} == {"integer", "number"}


def _canon(value: Any) -> Any:
    """A hashable form under which JSON-equal values are equal (1 == 1.0, but True != 1)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return ("number", Fraction(value) if isinstance(value, int) else Fraction(str(value)))
    if isinstance(value, list):
        return ("array", tuple(_canon(v) for v in value))
    if isinstance(value, Mapping):
        return ("object", tuple(sorted((str(k), _canon(v)) for k, v in value.items())))
    raise _Undecidable(f"an enum value that is not JSON ({value!r})")


def _canon_set(values: Iterable[Any]) -> set[Any]:
    return {_canon(v) for v in values}


def _value_rejected(value: Any, ra: _Alt) -> str | None:
    """Why the reader alternative ``ra`` rejects ``value`` (None: it accepts it)."""
    if not _fits(value, ra.kind):
        return f"it expects {_a(ra.kind)}"
    if ra.enum is not None and _canon(value) not in _canon_set(ra.enum):
        return f"it allows only {_values_text(ra.enum)}"
    s = ra.schema
    kind = "number" if ra.kind == "integer" else ra.kind
    unhandled = [k for k in s if k in _FAMILY.get(kind, ()) and k not in _HANDLED.get(kind, ())]
    if unhandled or (kind in ("array", "object") and any(k in _FAMILY[kind] for k in s)):
        raise _Undecidable(
            f"the reader's {', '.join(unhandled) or kind + ' keywords'} cannot be checked here"
        )
    if kind == "string":
        if (n := _count(s, "maxLength")) is not None and len(value) > n:
            return f"maxLength {n}"
        if (n := _count(s, "minLength")) is not None and len(value) < n:
            return f"minLength {n}"
        if "pattern" in s and not _search(s["pattern"], value):
            return f"pattern {s['pattern']!r}"
        if "format" in s:
            raise _Undecidable(f"format {s['format']!r} is not checked on values")
    if kind == "number":
        x = Fraction(value) if isinstance(value, int) else Fraction(str(value))
        for side in ("minimum", "maximum"):
            b = _bound(s, side, integers=False)
            if b is None:
                continue
            below = x < b.value or (x == b.value and b.exclusive)
            above = x > b.value or (x == b.value and b.exclusive)
            if (side == "minimum" and below) or (side == "maximum" and above):
                return f"{b.keyword} {_num_text(b.value)}"
        step = _number(s, "multipleOf")
        if step is not None and (x / step).denominator != 1:
            return f"multipleOf {_num_text(step)}"
    return None


def _number(s: Mapping[str, Any], keyword: str) -> Fraction | None:
    if keyword not in s:
        return None
    x = s[keyword]
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise _Undecidable(f"a malformed {keyword}")
    value = Fraction(x) if isinstance(x, int) else Fraction(str(x))
    if keyword == "multipleOf" and value <= 0:
        raise _Undecidable("a malformed multipleOf")
    return value


def _count(s: Mapping[str, Any], keyword: str) -> int | None:
    if keyword not in s:
        return None
    x = s[keyword]
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise _Undecidable(f"a malformed {keyword}")
    return x


def _bound(s: Mapping[str, Any], side: str, integers: bool) -> _Bound | None:
    """The tightest ``side`` (``minimum``/``maximum``) bound, as an inclusive one for integers."""
    exclusive_kw = "exclusiveMinimum" if side == "minimum" else "exclusiveMaximum"
    found: list[_Bound] = []
    plain = _number(s, side) if side in s else None
    flag = s.get(exclusive_kw)
    if isinstance(flag, bool):  # draft 4: exclusiveMinimum is a flag on minimum
        if plain is not None:
            found.append(_Bound(plain, flag, exclusive_kw if flag else side))
    else:
        if plain is not None:
            found.append(_Bound(plain, False, side))
        if (limit := _number(s, exclusive_kw)) is not None:
            found.append(_Bound(limit, True, exclusive_kw))
    if integers:  # over the integers, > 2.5 is >= 3: compare like with like
        found = [_integral(b, side) for b in found]
    if not found:
        return None
    if side == "minimum":
        return max(found, key=lambda b: (b.value, b.exclusive))
    return min(found, key=lambda b: (b.value, not b.exclusive))


def _integral(b: _Bound, side: str) -> _Bound:
    if side == "minimum":
        value = math.floor(b.value) + 1 if b.exclusive else math.ceil(b.value)
    else:
        value = math.ceil(b.value) - 1 if b.exclusive else math.floor(b.value)
    return _Bound(Fraction(value), False, b.keyword)


def _array_layout(s: Mapping[str, Any]) -> tuple[list[Schema], Schema]:
    """Positional item schemas and the schema of the items after them (2020-12 or draft 7 style)."""
    if "prefixItems" in s:
        return _schemas(s["prefixItems"], "prefixItems"), _schema(s.get("items", True), "items")
    if isinstance(s.get("items"), list):
        return _schemas(s["items"], "items"), _schema(s.get("additionalItems", True), "additionalItems")
    return [], _schema(s.get("items", True), "items")


def _schema(value: Any, keyword: str) -> Schema:
    if not isinstance(value, (Mapping, bool)):
        raise _Undecidable(f"a malformed {keyword}")
    return value


def _properties(s: Mapping[str, Any]) -> Mapping[str, Schema]:
    props = s.get("properties", {})
    if not isinstance(props, Mapping) or not all(isinstance(v, (Mapping, bool)) for v in props.values()):
        raise _Undecidable("malformed properties")
    return props


def _required(s: Mapping[str, Any]) -> list[str]:
    req = s.get("required", [])
    if not isinstance(req, list) or not all(isinstance(n, str) for n in req):
        raise _Undecidable("a malformed required")
    return req


def _patterns(s: Mapping[str, Any]) -> Mapping[str, Schema]:
    pats = s.get("patternProperties", {})
    if not isinstance(pats, Mapping) or not all(isinstance(v, (Mapping, bool)) for v in pats.values()):
        raise _Undecidable("malformed patternProperties")
    return pats


def _fallback(s: Mapping[str, Any], patterns: Mapping[str, Schema], name: str) -> tuple[Schema, str]:
    """The schema an object applies to a property it does not declare, and where it comes from."""
    for pattern, schema in patterns.items():
        if _search(pattern, name):
            return schema, "pattern"
    return _schema(s.get("additionalProperties", True), "additionalProperties"), "additional"


def _search(pattern: Any, text: str) -> bool:
    # Python's re stands in for ECMA-262 regular expressions; they agree on the common subset.
    try:
        return re.search(pattern, text) is not None
    except (re.error, TypeError) as e:
        raise _Undecidable(f"a pattern Python cannot read ({pattern!r})") from e


def _escape(name: str) -> str:
    """A JSON-pointer segment (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _a(kind: str) -> str:
    """A readable name for a value of one JSON type."""
    return {
        "null": "null",
        "boolean": "a boolean",
        "integer": "an integer",
        "number": "a number",
        "string": "a string",
        "array": "an array",
        "object": "an object",
        "any": "any value",
    }.get(kind, f"a {kind}")


def _kinds_text(alts: Sequence[_Alt]) -> str:
    kinds = list(dict.fromkeys(_a(a.kind) if a.kind != "conj" else "a combination" for a in alts))
    if not kinds:
        return "nothing"
    return kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]


def _values_text(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values) if values else "no value"


def _num_text(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else str(float(x))
