"""The model's input contract: one `Query` per row, its validation reasons, and the MLflow signature.

Wrong JSON types (a string for `top_n`) are refused by MLflow's type-hint validation before `predict` runs;
values of the right type but out of range come back from `predict` as rows with status `invalid` and a reason.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType, ColSpec, Map, Object, Property

DEFAULT_TOP_N = 5
MAX_TOP_N = 100
MAX_TITLE_CHARS = 300
YEAR_RANGE = (1800, 2100)
MODES = ("recommend", "info")

TITLE_REQUIRED = "title is required"
TITLE_TOO_LONG = f"title must be at most {MAX_TITLE_CHARS} characters"
TOP_N_OUT_OF_RANGE = f"top_n must be between 1 and {MAX_TOP_N}"
YEAR_OUT_OF_RANGE = f"year must be between {YEAR_RANGE[0]} and {YEAR_RANGE[1]}"
UNKNOWN_MODE = f"mode must be one of {', '.join(MODES)}"

STATUS_OK = "ok"
STATUS_UNKNOWN_TITLE = "unknown_title"
STATUS_INVALID = "invalid"


class Query(pydantic.BaseModel):
    """One recommendation request: films like `title` (from `year` when several share it), `top_n` of them."""

    title: str | None = None
    top_n: int | None = None
    year: int | None = None

    @pydantic.field_validator("title", "top_n", "year", mode="before")
    @classmethod
    def _from_dataframe(cls, value: Any) -> Any:
        # A pandas DataFrame turns a missing cell into NaN and an int column with gaps into floats.
        if isinstance(value, float):
            if math.isnan(value):
                return None
            if value.is_integer():
                return int(value)
        return value


def invalid_reason(query: Query) -> str | None:
    """Why `query` cannot be answered, or None when its values are usable."""
    if query.title is None or not query.title.strip():
        return TITLE_REQUIRED
    if len(query.title) > MAX_TITLE_CHARS:
        return TITLE_TOO_LONG
    if query.top_n is not None and not 1 <= query.top_n <= MAX_TOP_N:
        return TOP_N_OUT_OF_RANGE
    if query.year is not None and not YEAR_RANGE[0] <= query.year <= YEAR_RANGE[1]:
        return YEAR_OUT_OF_RANGE
    return None


def model_signature() -> ModelSignature:
    """Input: a list of queries with every field optional; output: one record per query; param `mode`."""
    query = Object(
        [
            Property("title", "string", required=False),
            Property("top_n", "long", required=False),
            Property("year", "long", required=False),
        ]
    )
    return ModelSignature(
        inputs=Schema([ColSpec(query)]),
        outputs=Schema([ColSpec(Map(AnyType()))]),
        params=ParamSchema([ParamSpec("mode", "string", "recommend")]),
    )


INPUT_EXAMPLE: list[dict[str, Any]] = [{"title": "The Matrix", "top_n": 5}, {"title": "Hamlet", "year": 1996}]
