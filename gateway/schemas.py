"""Request and response schemas of the HTTP API (the word "model" is kept for the ML model).

The request's limits and rules are the model's request contract (`model.contract`): the fields are declared here with
their JSON types, their bounds are documented in the JSON schema from the contract's constants, and one validator
applies the contract's `invalid_reason`, so a request is refused for the same reason, in the same words, as the
model would refuse it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from model.contract import (
    DEFAULT_TOP_N,
    MAX_EXCLUDE,
    MAX_FILMS,
    MAX_GENRE_CHARS,
    MAX_GENRES,
    MAX_ID,
    MAX_OFFSET,
    MAX_QUERY_CHARS,
    MAX_TITLE_CHARS,
    MAX_TOP_N,
    MAX_WITHIN,
    YEAR_MAX,
    YEAR_MIN,
    invalid_reason,
)

INVALID_QUERY = "invalid_query"  # the pydantic error type of a request the contract refuses


def bounds(low: float, high: float) -> dict[str, Any]:
    """JSON-schema bounds of a number (documentation: `invalid_reason` enforces them)."""
    return {"minimum": low, "maximum": high}


def at_most(count: int, of: Literal["items", "characters"] = "items") -> dict[str, Any]:
    """JSON-schema size bound of a list or a string (documentation: `invalid_reason` enforces it)."""
    return {"maxItems": count} if of == "items" else {"maxLength": count}


StrictInt = Annotated[int, Field(strict=True)]
Year = Annotated[int, Field(strict=True, json_schema_extra=bounds(YEAR_MIN, YEAR_MAX))]
CatalogId = Annotated[int, Field(strict=True, json_schema_extra=bounds(0, MAX_ID))]
Title = Annotated[str, Field(json_schema_extra=at_most(MAX_TITLE_CHARS, "characters"))]
Genre = Annotated[str, Field(json_schema_extra=at_most(MAX_GENRE_CHARS, "characters"))]


class FilmTitle(BaseModel):
    """A film by title, with an optional year to pick among films sharing it."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    year: Year | None = None


FilmInput = Annotated[
    CatalogId | str | FilmTitle,
    Field(description='a catalog id (`83495`), a title (`"The Matrix"`), or `{"title": "Hamlet", "year": 1948}`'),
]
Films = Annotated[list[FilmInput], Field(json_schema_extra=at_most(MAX_FILMS))]
Excluded = Annotated[list[FilmInput], Field(json_schema_extra=at_most(MAX_EXCLUDE))]
CatalogIds = Annotated[list[CatalogId], Field(json_schema_extra=at_most(MAX_WITHIN))]
Genres = Annotated[list[Genre], Field(json_schema_extra=at_most(MAX_GENRES))]
FreeText = Annotated[str, Field(json_schema_extra=at_most(MAX_QUERY_CHARS, "characters"))]
Diversity = Annotated[float, Field(json_schema_extra=bounds(0, 1))]


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

    title: Title | None = Field(None, description="a film you like; typos are tolerated", examples=["The Matrix"])
    year: Year | None = Field(None, description="release year of `title`, among films sharing it", examples=[1999])
    top_n: StrictInt = Field(
        DEFAULT_TOP_N, description="how many films to return", examples=[5], json_schema_extra=bounds(1, MAX_TOP_N)
    )
    liked: Films | None = Field(
        None, description="films you like (later ones weigh more)",
        examples=[["Heat", {"title": "Alien", "year": 1979}, 83495]],
    )  # fmt: skip
    disliked: Films | None = Field(None, description="films to steer away from; never returned", examples=[["Titanic"]])
    query: FreeText | None = Field(
        None, description="free text, alone or with liked films", examples=["heist film with a twist ending"]
    )
    genres: Genres | None = Field(
        None, description="only films with any of these genres", examples=[["Crime", "Drama"]]
    )
    exclude_genres: Genres | None = Field(
        None, description="no film with any of these genres", examples=[["Documentary"]]
    )
    year_min: Year | None = Field(None, description="released in or after", examples=[1990])
    year_max: Year | None = Field(None, description="released in or before", examples=[1999])
    exclude: Excluded | None = Field(None, description="films already seen: never returned", examples=[[83495, "Heat"]])
    within: CatalogIds | None = Field(
        None, description="choose only among these catalog ids", examples=[[83495, 207536]]
    )
    diversity: Diversity | None = Field(
        None, description="0: plain similarity; up to 1: fewer near-duplicates (MMR)", examples=[0.3]
    )
    offset: StrictInt = Field(
        0, description="skip this many results (paging)", examples=[0], json_schema_extra=bounds(0, MAX_OFFSET)
    )

    @model_validator(mode="after")
    def _follows_the_contract(self) -> RecommendationRequest:
        reason = invalid_reason(self)
        if reason is not None:
            raise PydanticCustomError(INVALID_QUERY, "{reason}", {"reason": reason})
        return self

    def model_inputs(self) -> dict[str, Any]:
        """The request as one row of the model's input (film references as `{"id"}` or `{"title", "year"}`)."""
        row = self.model_dump(exclude_none=True, exclude={"liked", "disliked", "exclude"})
        for name in ("liked", "disliked", "exclude"):
            films = getattr(self, name)
            if films is not None:
                row[name] = [_model_film(f) for f in films]
        return row


def _model_film(film: int | str | FilmTitle) -> dict[str, Any]:
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
    imdb_id: str | None = Field(None, description="IMDb title id, null when the catalog has none")
    imdb_url: str | None = Field(None, description="the film's IMDb page, null without an IMDb id")
    cover_url: str = Field(
        description="poster image: the catalog's own, else GATEWAY_COVER_URL_TEMPLATE's, else the gateway's "
        "generated cover (/movies/{id}/cover.svg)"
    )


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


class GenreCount(BaseModel):
    name: str = Field(description="as the catalog spells it, and as `genres` filters take it")
    films: int = Field(description="films of the catalog with this genre")


class GenresResponse(BaseModel):
    genres: list[GenreCount] = Field(description="every genre of the served catalog, by name")
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
    rejected: int = Field(description="requests tracking refused for good (after repairs), dropped and counted")
    lost: int = Field(description="requests that found the queue full, or were still queued when the gateway stopped")
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
    stale: bool = Field(
        description="serving the last champion from its local copy: the registry could not be asked at start, and "
        "has not confirmed the version since"
    )
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
