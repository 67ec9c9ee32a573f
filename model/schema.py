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

from model.contract import QUERY


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


# How loosely each kind of field is typed in the model's input: MLflow refuses only wrong JSON types.
_LOOSE: dict[str, Any] = {
    "text": str, "int": int, "number": float, "films": list[FilmRef], "ids": list[int], "names": list[str],
}  # fmt: skip


class _QueryBase(pydantic.BaseModel):
    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return _from_dataframe(value)


Query = pydantic.create_model(
    "Query",
    __base__=_QueryBase,
    __doc__="One query: a recommendation (fields: model.contract.QUERY), a title search (`title`, `top_n`) or a "
    "film (`id`, mode film).",
    **{name: (_LOOSE[spec.kind] | None, None) for name, spec in QUERY.items()},
    id=(int | None, None),
)


# MLflow derives the served params schema from the input example's params: name every param here.
EXAMPLE_PARAMS: dict[str, Any] = {"mode": "recommend", "format": "records"}
INPUT_EXAMPLE: list[dict[str, Any]] = [
    {"title": "The Matrix", "top_n": 5},
    {"title": "Hamlet", "year": 1996},
    {"liked": [{"title": "Heat"}, {"title": "Alien", "year": 1979}], "genres": ["Crime", "Thriller"], "diversity": 0.3},
]
