"""Request and response schemas of the HTTP API (the word "model" is kept for the ML model)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_TITLE_CHARS = 300
MAX_QUERY_CHARS = 1000
MAX_TOP_N = 100
MAX_OFFSET = 900
MAX_FILMS = 50
MAX_EXCLUDE = 1000
MAX_WITHIN = 10_000
MAX_GENRES = 30
MAX_SEARCH = 50
YEAR_MIN, YEAR_MAX = 1800, 2100

StrictInt = Annotated[int, Field(strict=True)]
Year = Annotated[int, Field(strict=True, ge=YEAR_MIN, le=YEAR_MAX)]
CatalogId = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]
Genre = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]

NEEDS_A_QUERY = "give at least one of title, liked or query"
YEARS_REVERSED = "year_min must not be greater than year_max"
LIKED_AND_DISLIKED = "the same film is both liked and disliked: {films}"


def _visible(text: str) -> str:
    """Whitespace collapsed; refuses text with no visible character (empty, spaces, control characters)."""
    cleaned = " ".join(text.split())
    if not any(ch.isprintable() and not ch.isspace() for ch in cleaned):
        raise ValueError("must contain visible characters")
    return cleaned


class FilmRef(BaseModel):
    """A film by title, with an optional year to pick among films sharing it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    year: Year | None = None

    @field_validator("title")
    @classmethod
    def _visible_title(cls, title: str) -> str:
        return _visible(title)


Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE_CHARS)]
FilmInput = Annotated[
    CatalogId | Title | FilmRef,
    Field(description='a catalog id (`83495`), a title (`"The Matrix"`), or `{"title": "Hamlet", "year": 1948}`'),
]


class RecommendationRequest(BaseModel):
    """What to recommend from: a `title`, `liked` films, free text `query`, or any mix; plus filters.

    The first form, `{"title": ..., "top_n": ...}`, is a complete request on its own.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "The Matrix", "top_n": 5},
                {"title": "Hamlet", "year": 1948},
                {"liked": ["Heat", {"title": "Alien", "year": 1979}, 83495], "disliked": ["Titanic"], "top_n": 10},
                {"query": "heist film with a twist ending", "year_min": 1990, "exclude_genres": ["Documentary"]},
                {"title": "Toy Story", "genres": ["Animation", "Comedy"], "diversity": 0.5, "offset": 5},
            ]
        },
    )

    title: str | None = Field(
        None, min_length=1, max_length=MAX_TITLE_CHARS, description="a film you like; typos are tolerated",
        examples=["The Matrix"],
    )  # fmt: skip
    year: Year | None = Field(None, description="release year of `title`, among films sharing it", examples=[1999])
    top_n: StrictInt = Field(5, ge=1, le=MAX_TOP_N, description="how many films to return", examples=[5])
    liked: list[FilmInput] | None = Field(
        None, max_length=MAX_FILMS, description="films you like (later ones weigh more)",
        examples=[["Heat", {"title": "Alien", "year": 1979}, 83495]],
    )  # fmt: skip
    disliked: list[FilmInput] | None = Field(
        None, max_length=MAX_FILMS, description="films to steer away from; never returned", examples=[["Titanic"]]
    )
    query: str | None = Field(
        None, min_length=1, max_length=MAX_QUERY_CHARS, description="free text, alone or with liked films",
        examples=["heist film with a twist ending"],
    )  # fmt: skip
    genres: list[Genre] | None = Field(
        None, max_length=MAX_GENRES, description="only films with any of these genres", examples=[["Crime", "Drama"]]
    )
    exclude_genres: list[Genre] | None = Field(
        None, max_length=MAX_GENRES, description="no film with any of these genres", examples=[["Documentary"]]
    )
    year_min: Year | None = Field(None, description="released in or after", examples=[1990])
    year_max: Year | None = Field(None, description="released in or before", examples=[1999])
    exclude: list[FilmInput] | None = Field(
        None, max_length=MAX_EXCLUDE, description="films already seen: never returned", examples=[[83495, "Heat"]]
    )
    within: list[CatalogId] | None = Field(
        None, max_length=MAX_WITHIN, description="choose only among these catalog ids", examples=[[83495, 207536]]
    )
    diversity: float | None = Field(
        None, ge=0, le=1, description="0: plain similarity; up to 1: fewer near-duplicates (MMR)", examples=[0.3]
    )
    offset: StrictInt = Field(0, ge=0, le=MAX_OFFSET, description="skip this many results (paging)", examples=[0])

    @field_validator("title", "query")
    @classmethod
    def _visible_text(cls, text: str | None) -> str | None:
        return None if text is None else _visible(text)

    @field_validator("liked", "disliked", "exclude", mode="before")
    @classmethod
    def _visible_titles(cls, films: Any) -> Any:
        if isinstance(films, list):
            return [_visible(f) if isinstance(f, str) else f for f in films]
        return films

    @field_validator("diversity")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> RecommendationRequest:
        if not self.title and not self.liked and not self.query:
            raise ValueError(NEEDS_A_QUERY)
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise ValueError(YEARS_REVERSED)
        liked = {_ref_key(f) for f in self.liked or []} | ({_ref_key(self.title)} if self.title else set())
        both = sorted(str(k) for k in liked & {_ref_key(f) for f in self.disliked or []})
        if both:
            raise ValueError(LIKED_AND_DISLIKED.format(films=", ".join(both)))
        return self

    def model_inputs(self) -> dict[str, Any]:
        """The request as one row of the model's input (film references as `{"id"}` or `{"title", "year"}`)."""
        row = self.model_dump(exclude_none=True, exclude={"liked", "disliked", "exclude"})
        for name in ("liked", "disliked", "exclude"):
            films = getattr(self, name)
            if films is not None:
                row[name] = [_model_ref(f) for f in films]
        return row


def _ref_key(film: int | str | FilmRef) -> Any:
    """Literal identity of a film reference: the same id, or the same title (and year); the model catches the rest."""
    if isinstance(film, FilmRef):
        title = " ".join(film.title.casefold().split())
        return (title, film.year) if film.year else title
    return film if isinstance(film, int) else " ".join(film.casefold().split())


def _model_ref(film: int | str | FilmRef) -> dict[str, Any]:
    if isinstance(film, int):
        return {"id": film}
    if isinstance(film, str):
        return {"title": film}
    return film.model_dump(exclude_none=True)


class Film(BaseModel):
    id: int
    title: str
    year: int | None
    genres: list[str]
    directors: list[str]
    cast: list[str] = Field(description="best-known names first, at most 10")
    cover_url: str | None = Field(description="poster image; null when the catalog has none")


class TextMatch(BaseModel):
    field: str = Field(description="the film field whose text is closest to the free-text query")
    text: str


class Because(BaseModel):
    """Why a film is recommended: what it shares with the query films, and for free text its closest field."""

    genres: list[str]
    directors: list[str]
    cast: list[str]
    writers: list[str]
    query_match: TextMatch | None = None


class Recommendation(Film):
    score: float = Field(description="ranking score: similarity plus a small notability prior and era bonus")
    because: Because


class QueryFilm(Film):
    matched: Literal["exact", "fuzzy", "id"] = Field(description="how the film was found")
    match_score: float = Field(description="title match score, 0-100 (100 for exact)")


class ServedModel(BaseModel):
    name: str | None
    version: str | None


class Suggestion(BaseModel):
    id: int
    title: str
    year: int | None
    genres: list[str] = []


class Unresolved(BaseModel):
    field: Literal["title", "liked", "disliked", "exclude"]
    input: dict[str, Any] = Field(description="the film as given")
    suggestions: list[Suggestion]


class RecommendationResponse(BaseModel):
    query: QueryFilm | None = Field(description="the film `title` resolved to (null without a title)")
    liked: list[QueryFilm] = []
    disliked: list[QueryFilm] = []
    unresolved: list[Unresolved] = Field([], description="films that matched nothing, with suggestions")
    recommendations: list[Recommendation]
    offset: int
    top_n: int
    model: ServedModel


class SearchResult(Suggestion):
    match_score: float


class SearchResponse(BaseModel):
    results: list[SearchResult]
    model: ServedModel


class FilmDetails(Film):
    writers: list[str]
    cast: list[str] = Field(description="best-known names first, at most 30")
    reviews: float | None
    rating: float | None
    metacritic: float | None
    box_office: float | None
    awards: float | None


class ErrorResponse(BaseModel):
    """The shape of every error; `suggestions` and `unresolved` come with `unknown_title`, `errors` with
    `invalid_request`."""

    detail: str
    code: str
    suggestions: list[Suggestion] | None = None
    unresolved: list[Unresolved] | None = None
    errors: list[dict[str, str]] | None = None


class RequestLogHealth(BaseModel):
    enabled: bool
    mode: str
    runs: int = Field(description="runs written (one per request, or per group of requests)")
    queued: int
    written: int
    lost: int
    tracking_reachable: bool | None
    last_error: str | None


class ScoringHealth(BaseModel):
    url: str
    reachable: bool


class StandbyHealth(BaseModel):
    alias: str | None = Field(description="the alias whose version is kept warm, as NAME@ALIAS; null: no standby")
    target_version: str | None = Field(description="where that alias pointed at the last look")
    version: str | None = Field(description="the version being started or kept warm (none when it is the served one)")
    ready: bool = Field(description="warm: moving the followed alias to `version` switches at once")
    url: str | None
    failed_versions: dict[str, str] = Field(description="standby versions that did not start, and why")


class SupervisorHealth(BaseModel):
    alias: str = Field(description="the registry alias followed, as NAME@ALIAS")
    target_version: str | None = Field(description="where the alias pointed at the last look")
    serving_version: str | None
    serving_url: str | None
    serving_since: float | None = Field(description="Unix time of the switch to the serving version")
    switching_to: str | None = Field(description="version being started and warmed up, if any")
    switches: int = Field(description="alias moves followed since the gateway started")
    last_switch_s: float | None = Field(description="seconds from seeing the alias move to serving the version")
    restarts: int = Field(description="times the serving process died and was started again")
    failed_versions: dict[str, str] = Field(
        description="versions not switched to, and why; retried when pointed at again"
    )
    last_failure: str | None
    registry_error: str | None = Field(description="why the registry could not be asked, while it cannot")
    standby: StandbyHealth


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    scoring: ScoringHealth
    model: ServedModel
    request_log: RequestLogHealth
    supervisor: SupervisorHealth | None = Field(None, description="present when run as `python -m gateway serve`")


class ReadyResponse(BaseModel):
    ready: Literal[True]
    model: ServedModel
