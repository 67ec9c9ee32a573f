"""The model's input rows as typed objects: `Query` is the type hint of `predict`, from which MLflow infers the
model signature and converts each JSON object (or DataFrame row) of the input.

Every field is optional and loosely typed, so that MLflow refuses only wrong JSON types (a string for `top_n`);
values of the right type but out of range are `model.contract.invalid_reason`'s to find, and come back as rows
with status `invalid`. The first contract (`title`, `top_n`, `year`) keeps working unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic


def _from_dataframe(value: Any) -> Any:
    """A DataFrame turns a missing cell into NaN and an int column with gaps into floats: read them back."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return int(value)
    return value


class FilmRef(pydantic.BaseModel):
    """One film of `liked`, `disliked` or `exclude`: a catalog `id`, or a `title` with an optional `year`."""

    id: int | None = None
    title: str | None = None
    year: int | None = None

    @pydantic.field_validator("id", "title", "year", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return _from_dataframe(value)


class Query(pydantic.BaseModel):
    """One query: a recommendation (see model/contract.py), a title search (`title`, `top_n`) or a film (`id`)."""

    title: str | None = None
    year: int | None = None
    top_n: int | None = None
    liked: list[FilmRef] | None = None
    disliked: list[FilmRef] | None = None
    query: str | None = None
    genres: list[str] | None = None
    exclude_genres: list[str] | None = None
    year_min: int | None = None
    year_max: int | None = None
    exclude: list[FilmRef] | None = None
    within: list[int] | None = None
    diversity: float | None = None
    offset: int | None = None
    id: int | None = None  # mode "film"

    @pydantic.field_validator(
        "title", "year", "top_n", "query", "year_min", "year_max", "diversity", "offset", "id", mode="before"
    )
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return _from_dataframe(value)


# MLflow derives the served params schema from the input example's params: name every param here.
EXAMPLE_PARAMS: dict[str, Any] = {"mode": "recommend", "format": "records"}
INPUT_EXAMPLE: list[dict[str, Any]] = [
    {"title": "The Matrix", "top_n": 5},
    {"title": "Hamlet", "year": 1996},
    {"liked": [{"title": "Heat"}, {"title": "Alien", "year": 1979}], "genres": ["Crime", "Thriller"], "diversity": 0.3},
]
