"""Fixtures of the pipelines' tests that run Spark."""

from __future__ import annotations

import pytest

from pipelines.spark import JAVA_MISSING, java_available


@pytest.fixture(scope="session")
def java() -> None:
    """Spark's tests need Java: without it they fail, saying what to install (they are never skipped)."""
    if not java_available():
        pytest.fail(JAVA_MISSING)
