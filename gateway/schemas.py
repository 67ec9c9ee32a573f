"""Request and response schemas of the HTTP API (the word "model" is kept for the ML model)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TITLE_CHARS = 300
MAX_TOP_N = 100
YEAR_MIN, YEAR_MAX = 1800, 2100

StrictInt = Annotated[int, Field(strict=True)]


class RecommendationRequest(BaseModel):
    """Films similar to `title`; `year` picks among films that share a title."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "The Matrix", "top_n": 5}, {"title": "Hamlet", "year": 1948}]},
    )

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS, description="film title; typos are tolerated")
    top_n: StrictInt = Field(5, ge=1, le=MAX_TOP_N, description="how many films to return")
    year: StrictInt | None = Field(None, ge=YEAR_MIN, le=YEAR_MAX, description="release year of the query film")

    @field_validator("title")
    @classmethod
    def _visible(cls, title: str) -> str:
        cleaned = " ".join(title.split())
        if not cleaned or not any(ch.isprintable() and not ch.isspace() for ch in cleaned):
            raise ValueError("title must contain visible characters")
        return cleaned


class Film(BaseModel):
    id: int
    title: str
    year: int | None
    genres: list[str]
    directors: list[str]
    cast: list[str] = Field(description="best-known names first, at most 10")
    cover_url: str | None = Field(description="poster image; null when the catalog has none")


class Recommendation(Film):
    score: float = Field(description="cosine similarity to the query film, -1..1")


class QueryFilm(Film):
    matched: Literal["exact", "fuzzy"] = Field(description="how the title was matched")
    match_score: float = Field(description="title match score, 0-100 (100 for exact)")


class ServedModel(BaseModel):
    name: str | None
    version: str | None


class RecommendationResponse(BaseModel):
    query: QueryFilm
    recommendations: list[Recommendation]
    model: ServedModel


class Suggestion(BaseModel):
    id: int
    title: str
    year: int | None


class ErrorResponse(BaseModel):
    """The shape of every error; `suggestions` comes with `unknown_title`, `errors` with `invalid_request`."""

    detail: str
    code: str
    suggestions: list[Suggestion] | None = None
    errors: list[dict[str, str]] | None = None


class RequestLogHealth(BaseModel):
    enabled: bool
    queued: int
    written: int
    lost: int
    tracking_reachable: bool | None
    last_error: str | None


class ScoringHealth(BaseModel):
    url: str
    reachable: bool


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    scoring: ScoringHealth
    model: ServedModel
    request_log: RequestLogHealth
