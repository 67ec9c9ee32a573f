"""Property-based fuzzing of the gateway from its own OpenAPI schema (schemathesis), against the real stack:
no answer is a 5xx, and every 4xx comes in the documented error shape.

Schemathesis' pytest plugin (`from_fixture`) does not run under pytest 9, so the test drives its Hypothesis
strategies directly: valid requests (positive) and requests that break the schema (negative), for every operation.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_5xx_and_errors_in_one_shape(gateway_schema: Any, mode: GenerationMode) -> None:
    seen: dict[str, set[int]] = {}

    @given(case=gateway_schema.as_strategy(generation_mode=mode))
    @settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Case) -> None:
        response = case.call(timeout=30)
        seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
        where = f"{case.method} {case.formatted_path} {case.body!r:.200} -> {response.status_code}"
        assert response.status_code < 500, f"{where}: {response.text[:300]}"
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body.get("detail"), str) and isinstance(body.get("code"), str), f"{where}: {body}"
            assert "Traceback" not in response.text, where

    check()
    # the fuzzer reached every route of the API, not just one
    assert {"POST /movies/recommendations/", "GET /movies/search", "GET /movies/{film_id}"} <= set(seen), seen
