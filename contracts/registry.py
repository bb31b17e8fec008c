"""The schema registry kept in the repository: ``contracts/schemas/<type>/<revision>.json``.

Every event version (a CloudEvents type such as ``vn.gov.dossier.received.v2``) and every step
result version (``vn.gov.result.appraisal.v1``, see :mod:`contracts.results`) has its JSON
Schema committed, revision by revision. Within a version, revisions must stay compatible in
the version's declared mode (BACKWARD_TRANSITIVE by default, as a schema registry would
enforce); a breaking change is a new version (``.v3``) with an upcaster, never a revision.

``python -m contracts.registry check`` fails (exit 1, with the reasons) when a model drifted
from its committed schema, when committed revisions break their mode, when a model is not
registered or when a committed schema has lost its model. ``register`` records the current
models as new revisions, refusing incompatible ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.compatibility import check
from contracts.envelope import dataschema_for
from contracts.events import EVENT_TYPES, DossierEvent
from contracts.results import RESULT_TYPES, StepResult

SCHEMAS_DIR = Path(__file__).parent / "schemas"

Registered = type[DossierEvent] | type[StepResult]
"""What the registry holds a schema for: an event version or a step result version."""

REGISTERED: dict[str, Registered] = {**EVENT_TYPES, **RESULT_TYPES}
"""Every registered contract by name; results and events share the folder and the rules."""


def name_of(model: Registered) -> str:
    """The registry name: the CloudEvents type of an event, the ``NAME`` of a step result."""
    return model.NAME if issubclass(model, StepResult) else model.TYPE


def schema_of(model: Registered) -> dict[str, Any]:
    """The JSON Schema a reader validates the event's data (or the step result) against."""
    schema = model.model_json_schema(mode="validation")
    if issubclass(model, StepResult):
        # Results travel inside a StepCompleted, not as events: no CloudEvents type to name.
        head = {"$id": f"urn:vn-gov:result-schema:{model.NAME}", "x-step-result": model.NAME}
    else:
        head = {"$id": dataschema_for(model.TYPE), "x-cloudevents-type": model.TYPE}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **head, **schema}


def dumps(schema: dict[str, Any]) -> str:
    """The committed text of a schema: stable key order, so diffs show real changes only."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Problem:
    """One reason the registry check fails, readable on its own."""

    event_type: str
    message: str

    def __str__(self) -> str:
        return f"{self.event_type}: {self.message}"


def revisions(schemas_dir: Path, event_type: str) -> list[dict[str, Any]]:
    """Committed revisions of a type, oldest first."""
    folder = schemas_dir / event_type
    files = sorted(folder.glob("*.json"), key=lambda p: int(p.stem)) if folder.is_dir() else []
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]


def _differences(old: Any, new: Any, path: str = "#") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            where = f"{path}/{key}"
            if key not in old:
                out.append(f"{where} added")
            elif key not in new:
                out.append(f"{where} removed")
            else:
                out += _differences(old[key], new[key], where)
        return out
    return [] if old == new else [f"{path} changed from {json.dumps(old)[:60]} to {json.dumps(new)[:60]}"]


def check_registry(schemas_dir: Path = SCHEMAS_DIR) -> list[Problem]:
    """Everything wrong between the models and the committed schemas (empty when all is well)."""
    problems: list[Problem] = []
    for event_type, model in sorted(REGISTERED.items()):
        committed = revisions(schemas_dir, event_type)
        if not committed:
            problems.append(Problem(event_type, "not registered; run `make contracts-register`"))
            continue
        mode = model.COMPATIBILITY
        for index in range(1, len(committed)):
            for issue in check(committed[index], committed[:index], mode):
                problems.append(
                    Problem(
                        event_type,
                        f"committed revision {index + 1} breaks {mode} against revision"
                        f" {issue.against_version}: {issue.message} ({issue.rule} at {issue.path})",
                    )
                )
        generated = schema_of(model)
        if generated != committed[-1]:
            changes = _differences(committed[-1], generated)
            shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
            problems.append(
                Problem(
                    event_type,
                    f"the model drifted from committed revision {len(committed)} ({shown}); run"
                    " `make contracts-register` to record it if compatible, or add a new version",
                )
            )
    if schemas_dir.is_dir():
        for folder in sorted(p for p in schemas_dir.iterdir() if p.is_dir()):
            if folder.name not in REGISTERED:
                problems.append(
                    Problem(
                        folder.name,
                        "committed schema without a model: a published version must stay readable"
                        " (keep its class and upcaster)",
                    )
                )
    return problems


def register(schemas_dir: Path = SCHEMAS_DIR) -> tuple[list[str], list[Problem]]:
    """Write a new revision for every model that changed compatibly; refuse the others."""
    written: list[str] = []
    refused: list[Problem] = []
    for event_type, model in sorted(REGISTERED.items()):
        committed = revisions(schemas_dir, event_type)
        generated = schema_of(model)
        if committed and generated == committed[-1]:
            continue
        issues = check(generated, committed, model.COMPATIBILITY) if committed else []
        if issues:
            refused += [
                Problem(
                    event_type,
                    f"breaks {model.COMPATIBILITY} against revision {i.against_version}: {i.message}"
                    f" ({i.rule} at {i.path}); make it a new version with an upcaster instead",
                )
                for i in issues
            ]
            continue
        path = schemas_dir / event_type / f"{len(committed) + 1}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(generated), encoding="utf-8")
        written.append(str(path))
    return written, refused


def main(argv: list[str] | None = None) -> int:
    """The CLI: ``check`` or ``register``."""
    parser = argparse.ArgumentParser(prog="python -m contracts.registry", description=__doc__)
    parser.add_argument("command", choices=["check", "register"])
    parser.add_argument("--schemas", type=Path, default=SCHEMAS_DIR, help="registry folder")
    args = parser.parse_args(argv)
    if args.command == "register":
        written, refused = register(args.schemas)
        for path in written:
            print(f"registered {path}")
        for problem in refused:
            print(f"REFUSED {problem}", file=sys.stderr)
        return 1 if refused else 0
    problems = check_registry(args.schemas)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        print(f"\ncontracts check failed: {len(problems)} problem(s) in {args.schemas}", file=sys.stderr)
        return 1
    print(
        f"contracts check passed: {len(EVENT_TYPES)} event versions and {len(RESULT_TYPES)} step result"
        f" versions match {args.schemas}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
