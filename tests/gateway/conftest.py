"""Every gateway these tests create keeps its events in a SQLite file of the test's own, never in `.run/`."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def events_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The event store URI of the gateway under test (GATEWAY_EVENTS_URI, read by `Settings()`)."""
    uri = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("GATEWAY_EVENTS_URI", uri)
    return uri
