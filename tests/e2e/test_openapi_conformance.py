"""Every HTTP API answers as its OpenAPI document says: schemathesis with every check, for real.

For each service with an HTTP API, schemathesis loads the running service's ``/openapi.json``
and runs what ``schemathesis run --checks all`` runs (examples, coverage, fuzzing and stateful
phases; positive and negative data): no status the document does not list, no response off its
schema, no server error, and refusals where the data is invalid or the token is missing
(``ignored_auth``). Requests carry a token with every role, so the guarded operations are
reached past their role check; the console's with its ``CONSOLE_TOKEN``.

Bounded and repeatable: a fixed seed, deterministic generation and few examples per operation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from schemathesis import CheckContext, Response
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status
from schemathesis.engine import events as engine_events

from infra.stack import Stack
from services.runtime.access import Role

pytestmark = pytest.mark.real

SEED = 20260309
MAX_EXAMPLES = 12
"""Per operation and phase: enough to reach every status, few enough for ~1 minute in all."""


@schemathesis.check
def not_a_validation_error(
    ctx: CheckContext, response: Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A request generated as valid is never refused by request validation (422 with a list).

    Narrows ``positive_data_acceptance``'s 422 above to the service's own refusals: a list of
    validation errors for a schema-valid request means the document and the code disagree.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        detail = response.json().get("detail")
    except ValueError:
        return None
    if isinstance(detail, list):
        raise AssertionError(f"a request valid by the document failed validation: {detail}")
    return None


@dataclass
class Outcome:
    """What one service's run found."""

    cases: int
    failures: list[str]
    seconds: float


def conformance(url: str, token: str) -> Outcome:
    """Run every schemathesis check against the API at ``url`` with ``token``; list what failed."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": url,
            "headers": {"Authorization": f"Bearer {token}"},
            "workers": 1,
            "phases": {"examples": {}, "coverage": {}, "fuzzing": {}, "stateful": {}},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {
                "enabled": True,  # --checks all
                # A well-formed request may still be refused by the service: 422 with its reasons
                # (an unknown procedure, a missing document, the wrong amount). That the refusal
                # is the service's, not a validation the document does not tell, is checked by
                # not_a_validation_error. The rest is schemathesis' default.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
                },
            },
            "operations": [
                # An OTLP export is a protobuf message: no JSON Schema tells a valid one apart, so
                # generated "valid" bodies are refused (400) as they should be.
                {"include-path": "/v1/traces", "checks": {"positive_data_acceptance": {"enabled": False}}},
            ],
        }
    )
    loaded = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config, timeout=30)
    # PUT /clock moves the virtual clock of a service the whole test session shares: a generated
    # time in the future would make other tests' deadlines pass. Its statuses are checked by hand
    # in test_http_access.py.
    schema = loaded.exclude(method="PUT", path="/clock")

    started = time.monotonic()
    cases, found = 0, dict[str, str]()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, engine_events.ScenarioFinished):
            recorder = event.recorder
            cases += len(recorder.cases)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status != Status.FAILURE or check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    case = recorder.cases[case_id].value
                    # One line per kind of failure on an operation, with the first request that showed it.
                    kind = f"{case.method} {case.path} [{check.name}] {failure.title}"
                    found.setdefault(
                        kind, _example(failure.message, case, recorder.find_response(case_id=case_id))
                    )
        elif isinstance(event, engine_events.NonFatalError | engine_events.FatalError):
            found.setdefault(f"engine error {type(event).__name__}", repr(event))
    failures = [f"{kind}\n{example}" for kind, example in sorted(found.items())]
    return Outcome(cases=cases, failures=failures, seconds=time.monotonic() - started)


def _example(message: str, case: schemathesis.Case[Any], response: object) -> str:
    first = " ".join(line.strip() for line in message.strip().splitlines()[:2])
    request = f"{case.method} {case.formatted_path} query={case.query!r} headers={_shown(case.headers)}"
    answered = ""
    if response is not None:
        answered = f" → {response.status_code} {response.text[:200]!r}"  # type: ignore[attr-defined]
    return f"    {first}\n    e.g. {request} body={_body(case)}{answered}"


def _shown(headers: Mapping[str, Any] | None) -> str:
    shown = {k: ("<token>" if k.lower() == "authorization" else v) for k, v in dict(headers or {}).items()}
    return repr(shown)


def _body(case: schemathesis.Case[Any]) -> str:
    text = repr(case.body)
    return text if len(text) < 300 else text[:300] + "…"


@pytest.mark.parametrize("service", ["intake", "notification", "land_registry", "tax", "console"])
def test_the_api_answers_as_its_openapi_document_says(services: Stack, service: str) -> None:
    if service == "console":
        token = services.extra_env["CONSOLE_TOKEN"]
    else:
        token = services.token(*(role.value for role in Role), subject="schemathesis", agency="land_registry")
    outcome = conformance(services.services[service].url, token)
    print(f"{service}: {outcome.cases} cases in {outcome.seconds:.1f} s")
    assert outcome.cases > 0
    assert not outcome.failures, f"{len(outcome.failures)} failed checks on {service}:\n" + "\n".join(
        outcome.failures
    )
