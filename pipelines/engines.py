"""The engine of a logged model, loaded in a pipeline's process.

A served model loads its encoder in a background thread (model/engine.py, `warm_up`). A pipeline has no request to
answer meanwhile, and its own imports (scikit-learn and scipy for the baselines) would race torch's import in that
thread; so pipelines load models with the warm-up off: the encoder loads when free text first needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow

from model.engine import WARM_UP_ENV, Engine


@contextmanager
def no_encoder_warm_up() -> Iterator[None]:
    """RECOMMENDER_WARM_UP=false while the block runs; restored afterwards."""
    previous = os.environ.get(WARM_UP_ENV)
    os.environ[WARM_UP_ENV] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(WARM_UP_ENV, None)
        else:
            os.environ[WARM_UP_ENV] = previous


def load_engine(model_uri: str) -> Engine:
    """The engine of the pyfunc model at `model_uri` (registry or run URI)."""
    with no_encoder_warm_up():
        return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().engine
