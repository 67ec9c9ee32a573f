"""The model's input contract: one `Query` per row, its validation reasons, and the MLflow signature.

Wrong JSON types (a string for `top_n`) are refused by MLflow's type-hint validation before `predict` runs;
values of the right type but out of range come back from `predict` as rows with status `invalid` and a reason.
Every field is optional, so the first contract (`title`, `top_n`, `year`) keeps working unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType, Array, ColSpec, Object, Property

DEFAULT_TOP_N = 5
MAX_TOP_N = 100
MAX_OFFSET = 900  # offset + top_n stays within the re-ranked pool, so pages never reshuffle
MAX_TITLE_CHARS = 300
MAX_QUERY_CHARS = 1000
MAX_FILMS = 50  # liked, disliked
MAX_EXCLUDE = 1000
MAX_WITHIN = 10_000
MAX_SEARCH = 50
YEAR_RANGE = (1800, 2100)
MODES = ("recommend", "search", "film", "info")
EXPLAINED_FIELDS = ("genres", "directors", "cast", "writers")  # what a recommendation's `because` lists
FORMATS = ("records", "json")  # param `format`: records as JSON objects, or each as one JSON text (see recommender)

TITLE_REQUIRED = "title, liked or query is required"
TITLE_TOO_LONG = f"title must be at most {MAX_TITLE_CHARS} characters"
QUERY_TOO_LONG = f"query must be at most {MAX_QUERY_CHARS} characters"
TOP_N_OUT_OF_RANGE = f"top_n must be between 1 and {MAX_TOP_N}"
OFFSET_OUT_OF_RANGE = f"offset must be between 0 and {MAX_OFFSET}"
YEAR_OUT_OF_RANGE = f"year must be between {YEAR_RANGE[0]} and {YEAR_RANGE[1]}"
YEARS_REVERSED = "year_min must not be greater than year_max"
DIVERSITY_OUT_OF_RANGE = "diversity must be between 0 and 1"
TOO_MANY_FILMS = f"liked and disliked take at most {MAX_FILMS} films each"
TOO_MANY_EXCLUDED = f"exclude takes at most {MAX_EXCLUDE} films"
TOO_MANY_WITHIN = f"within takes at most {MAX_WITHIN} catalog ids"
EMPTY_FILM_REF = "a film is given by id, or by title (and optional year)"
LIKED_AND_DISLIKED = "the same film is both liked and disliked: {titles}"
UNKNOWN_GENRES = "unknown genre(s) {unknown}; the catalog has: {known}"
ID_REQUIRED = "id is required"
SEARCH_REQUIRED = f"title (the search text) is required; top_n (results) at most {MAX_SEARCH}"
UNKNOWN_MODE = f"mode must be one of {', '.join(MODES)}"
UNKNOWN_FORMAT = f"format must be one of {', '.join(FORMATS)}"

STATUS_OK = "ok"
STATUS_UNKNOWN_TITLE = "unknown_title"
STATUS_NOT_FOUND = "not_found"
STATUS_INVALID = "invalid"


def _from_dataframe(value: Any) -> Any:
    # A pandas DataFrame turns a missing cell into NaN and an int column with gaps into floats.
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return int(value)
    return value


class FilmRef(pydantic.BaseModel):
    """One film: by catalog `id`, or by `title` with an optional `year`."""

    id: int | None = None
    title: str | None = None
    year: int | None = None

    @pydantic.field_validator("id", "title", "year", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return _from_dataframe(value)

    def is_empty(self) -> bool:
        return _names_no_film(self.id, self.title)


class Query(pydantic.BaseModel):
    """One recommendation request (see README: The API). At least one of `title`, `liked`, `query`."""

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


def invalid_reason(query: Query) -> str | None:
    """Why a recommendation `query` cannot be answered, or None when its values are usable."""
    has_title = bool((query.title or "").strip())
    if not has_title and not query.liked and not (query.query or "").strip():
        return TITLE_REQUIRED
    checks = (
        (query.title is not None and len(query.title) > MAX_TITLE_CHARS, TITLE_TOO_LONG),
        (query.query is not None and len(query.query) > MAX_QUERY_CHARS, QUERY_TOO_LONG),
        (query.top_n is not None and not 1 <= query.top_n <= MAX_TOP_N, TOP_N_OUT_OF_RANGE),
        (query.offset is not None and not 0 <= query.offset <= MAX_OFFSET, OFFSET_OUT_OF_RANGE),
        (any(y is not None and not YEAR_RANGE[0] <= y <= YEAR_RANGE[1] for y in _years(query)), YEAR_OUT_OF_RANGE),
        (query.year_min is not None and query.year_max is not None and query.year_min > query.year_max, YEARS_REVERSED),
        (query.diversity is not None and not 0 <= query.diversity <= 1, DIVERSITY_OUT_OF_RANGE),
        (len(query.liked or []) > MAX_FILMS or len(query.disliked or []) > MAX_FILMS, TOO_MANY_FILMS),
        (len(query.exclude or []) > MAX_EXCLUDE, TOO_MANY_EXCLUDED),
        (len(query.within or []) > MAX_WITHIN, TOO_MANY_WITHIN),
        (any(ref.is_empty() for ref in _refs(query)), EMPTY_FILM_REF),
        (any(ref.title is not None and len(ref.title) > MAX_TITLE_CHARS for ref in _refs(query)), TITLE_TOO_LONG),
    )
    return next((reason for failed, reason in checks if failed), None)


def plain_reason(query: Query) -> str | None:
    """`invalid_reason` for a query that only names one film (title, or one liked film): the few checks that apply."""
    if query.liked:
        title, film_year, empty = query.liked[0].title, query.liked[0].year, query.liked[0].is_empty()
    else:  # the title itself, read directly (no FilmRef built): this runs on every lookup
        title, film_year, empty = query.title, query.year, _names_no_film(None, query.title)
    if empty:
        return TITLE_REQUIRED if query.title is not None or not query.liked else EMPTY_FILM_REF
    if title is not None and len(title) > MAX_TITLE_CHARS:
        return TITLE_TOO_LONG
    if query.top_n is not None and not 1 <= query.top_n <= MAX_TOP_N:
        return TOP_N_OUT_OF_RANGE
    if query.offset is not None and not 0 <= query.offset <= MAX_OFFSET:
        return OFFSET_OUT_OF_RANGE
    for year in (query.year, film_year):
        if year is not None and not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
            return YEAR_OUT_OF_RANGE
    return None


def _names_no_film(film_id: int | None, title: str | None) -> bool:
    """Neither an id nor a title with visible characters."""
    return film_id is None and not (title or "").strip()


def _refs(query: Query) -> list[FilmRef]:
    return [*(query.liked or []), *(query.disliked or []), *(query.exclude or [])]


def _years(query: Query) -> list[int | None]:
    return [query.year, query.year_min, query.year_max, *(ref.year for ref in _refs(query))]


def model_signature() -> ModelSignature:
    """Input: a list of queries, every field optional; output: one record per query, an object or (param `format`
    json) its JSON text, so `Any` (what MLflow infers from predict's type hints too); params `mode`, `format`."""
    film = Object(
        [
            Property("id", "long", required=False),
            Property("title", "string", required=False),
            Property("year", "long", required=False),
        ]
    )
    fields = {
        "title": "string",
        "year": "long",
        "top_n": "long",
        "liked": Array(film),
        "disliked": Array(film),
        "query": "string",
        "genres": Array("string"),
        "exclude_genres": Array("string"),
        "year_min": "long",
        "year_max": "long",
        "exclude": Array(film),
        "within": Array("long"),
        "diversity": "double",
        "offset": "long",
        "id": "long",
    }
    query = Object([Property(name, dtype, required=False) for name, dtype in sorted(fields.items())])
    return ModelSignature(
        inputs=Schema([ColSpec(query)]),
        outputs=Schema([ColSpec(AnyType())]),
        params=ParamSchema([ParamSpec("mode", "string", "recommend"), ParamSpec("format", "string", "records")]),
    )


# MLflow derives the served params schema from the input example's params too: name every param here.
EXAMPLE_PARAMS: dict[str, Any] = {"mode": "recommend", "format": "records"}
INPUT_EXAMPLE: list[dict[str, Any]] = [
    {"title": "The Matrix", "top_n": 5},
    {"title": "Hamlet", "year": 1996},
    {"liked": [{"title": "Heat"}, {"title": "Alien", "year": 1979}], "genres": ["Crime", "Thriller"], "diversity": 0.3},
]
