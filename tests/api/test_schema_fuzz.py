"""schemathesis fuzzes every operation of the published OpenAPI schema, with valid and invalid
inputs, as an admin: no 5xx response and no stack trace in any response."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.api.conftest import Env

_LABELS = [
    "GET /healthz",
    "GET /readyz",
    "POST /v1/search",
    "POST /v1/ask",
    "GET /v1/documents",
    "POST /v1/documents",
    "GET /v1/documents/{document_id}",
    "DELETE /v1/documents/{document_id}",
    "GET /v1/documents/{document_id}/versions/{version_id}/pages/{page}",
    "GET /v1/documents/{document_id}/versions/{version_id}/tables",
    "GET /v1/documents/{document_id}/versions/{version_id}/tables/{index}",
    "GET /v1/jobs/{job_id}",
    "GET /v1/audit",
    "GET /v1/models",
    "POST /v1/chat/completions",
    "POST /v1/keys",
    "GET /v1/keys",
    "DELETE /v1/keys/{key_id}",
]


@pytest.fixture(scope="module")
def schema(env: Env) -> Iterator[schemathesis.BaseSchema]:
    yield schemathesis.openapi.from_url(f"{env.url}/openapi.json")


def test_the_schema_lists_every_operation(schema: schemathesis.BaseSchema) -> None:
    missing = [label for label in _LABELS if schema.find_operation_by_label(label) is None]
    assert not missing


_NO_INPUT = {"GET /healthz", "GET /readyz", "GET /v1/models", "GET /v1/keys"}  # nothing to make invalid
_CASES = [
    (label, mode) for mode in GenerationMode for label in _LABELS if mode.value == "positive" or label not in _NO_INPUT
]


@pytest.mark.parametrize(("label", "mode"), _CASES, ids=[f"{label}-{mode.value}" for label, mode in _CASES])
def test_no_server_errors(schema: schemathesis.BaseSchema, env: Env, label: str, mode: GenerationMode) -> None:
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    token = env.token(["admins", "public"], sub="fuzzer")
    failures: list[str] = []

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        r = case.call(base_url=env.url, headers={"Authorization": f"Bearer {token}"})
        if r.status_code >= 500 or "Traceback" in r.text:
            failures.append(f"{case.method} {case.formatted_path} -> {r.status_code}: {r.text[:300]}")

    run()
    assert not failures, failures[:3]
