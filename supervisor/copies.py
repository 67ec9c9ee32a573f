"""Local copies of registered model versions, in `STATE_DIR/models/`: downloaded once, the least recently used
pruned.

A registry version's files never change; a copy's folder name carries a hash of where they come from, so a model
deleted and registered again under the same version number is not served from a stale copy. Downloading here, in a
thread of the supervisor, spares `mlflow models serve` its two downloads of the same files (one to pick the flavor
backend, one to serve) and the start-up of another Python process to do it; a restart or a rollback reuses the copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Collection
from pathlib import Path

import mlflow.artifacts
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

KEEP_COPIES = 3  # the serving version, the one before it (a rollback), one more


class NotAModel(Exception):
    """The version's files hold no MLmodel file."""


def local_copy(client: MlflowClient, models: Path, name: str, version: str) -> Path:
    """The folder holding version `version` of registered model `name`, downloaded into `models` unless already
    there. Raises what the registry or the artifact store raise when they cannot be reached, NotAModel when the
    files are not an MLflow model."""
    source = client.get_model_version_download_uri(name, version)
    key = hashlib.sha256(source.encode()).hexdigest()[:12]
    folder = models / f"{name}-{version}-{key}"
    if complete(folder):
        os.utime(folder)  # most recently used: kept longest
        return folder
    models.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=models))
    try:
        began = time.monotonic()
        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(partial), tracking_uri=client.tracking_uri
            )
        )
        if not complete(downloaded):
            raise NotAModel(f"{source} has no MLmodel file: not an MLflow model")
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete copy (no MLmodel) left by a killed supervisor
        downloaded.rename(folder)
        logger.info("downloaded version %s (%s) in %.1f s", version, source, time.monotonic() - began)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def complete(folder: Path) -> bool:
    """Whether `folder` holds a model copy (an MLmodel file)."""
    return (folder / "MLmodel").is_file()


def prune_copies(models: Path, in_use: Collection[str], keep: int = KEEP_COPIES) -> list[Path]:
    """Delete all but the `keep` most recently used copies in `models`, never one named in `in_use`; returns what
    was deleted."""
    if not models.is_dir():
        return []
    copies = sorted(
        (p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    deleted = []
    for old in copies[keep:]:
        if old.name not in in_use:
            shutil.rmtree(old, ignore_errors=True)
            deleted.append(old)
    return deleted
