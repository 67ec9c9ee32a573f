"""Request and response schemas of the HTTP API (the word "model" is kept for the ML model).

The request's fields and the film record are declared once, in the model's request contract (`model.contract.QUERY`,
`USER` and `FILM`): their schemas here are derived from those declarations (JSON types by kind, bounds documented in
the JSON schema), and one validator applies the contract's `invalid_reason`, so a request is refused for the same
reason, in the same words, as the model would refuse it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from events.records import EVENTS
from model.contract import (
    FILM,
    MAX_FEEDBACK,
    MAX_GENRE_CHARS,
    MAX_ID,
    MAX_TITLE_CHARS,
    MAX_USER_CHARS,
    QUERY,
    USER,
    YEAR_MAX,
    YEAR_MIN,
    Spec,
    invalid_reason,
    user_reason,
)

INVALID_QUERY = "invalid_query"  # the pydantic error type of a request the contract refuses
NEEDS_REQUEST_OR_USER = "an event needs a request_id, a user, or both"
REQUEST_ID_CHARS = 64


def bounds(low: float, high: float) -> dict[str, Any]:
    """JSON-schema bounds of a number (documentation: `invalid_reason` enforces them)."""
    return {"minimum": low, "maximum": high}


def at_most(count: int, of: Literal["items", "characters", ""] = "items") -> dict[str, Any]:
    """JSON-schema size bound of a list or a string (documentation: `invalid_reason` enforces it)."""
    return {"maxLength": count} if of == "characters" else {"maxItems": count}


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
# The JSON type of each kind of field of the contract (model.contract.Spec), bounds documented from the declaration.
_STRICT: dict[str, Any] = {
    "text": str, "int": StrictInt, "number": float, "films": list[FilmInput], "ids": list[CatalogId],
    "names": list[Genre],
}  # fmt: skip


def field_of(spec: Spec, default: Any = ...) -> tuple[Any, Any]:
    """A pydantic field (type, FieldInfo) for one declared field of the contract."""
    kind = _STRICT[spec.kind]
    if spec.low is not None and spec.high is not None:
        kind = Annotated[kind, Field(json_schema_extra=bounds(spec.low, spec.high))]
    elif spec.most is not None:
        kind = Annotated[kind, Field(json_schema_extra=at_most(spec.most, "characters" * (spec.kind == "text")))]
    examples = None if spec.example is None else [spec.example]
    info = Field(default, description=spec.description, examples=examples)
    return (kind | None if default is None or spec.nullable else kind), info


class _Request(BaseModel):
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
                {"title": "Heat", "user": "user-1234"},
            ]
        },
    )

    @model_validator(mode="after")
    def _follows_the_contract(self) -> _Request:
        user = getattr(self, "user", None)  # a request of a user alone is completed from their history
        reason = invalid_reason(self, needs_films=user is None) or user_reason(user)
        if reason is not None:
            raise PydanticCustomError(INVALID_QUERY, "{reason}", {"reason": reason})
        return self

    def model_inputs(self) -> dict[str, Any]:
        """The request as one row of the model's input (film references as `{"id"}` or `{"title", "year"}`); the
        gateway's own fields (`user`) stay here."""
        row = self.model_dump(exclude_none=True, include=set(QUERY), exclude={"liked", "disliked", "exclude"})
        for name in ("liked", "disliked", "exclude"):
            films = getattr(self, name)
            if films is not None:
                row[name] = [_model_film(f) for f in films]
        return row


RecommendationRequest = create_model(
    "RecommendationRequest",
    __base__=_Request,
    __doc__=_Request.__doc__,
    **{name: field_of(spec, spec.default) for name, spec in QUERY.items()},
    user=field_of(USER, None),
)


def _model_film(film: int | str | FilmTitle) -> dict[str, Any]:
    if isinstance(film, int):
        return {"id": film}
    if isinstance(film, str):
        return {"title": film}
    return film.model_dump(exclude_none=True)


_FilmRecord = create_model(
    "FilmRecord", **{name: field_of(spec, None if spec.nullable else ...) for name, spec in FILM.items()}
)


class Film(_FilmRecord):  # type: ignore[misc, valid-type]
    """A film as answered: the model's record (model.contract.FILM), its cover always filled in by the gateway."""

    cover_url: str = Field(
        description="poster image: the catalog's own, else GATEWAY_COVER_URL_TEMPLATE's, else the gateway's "
        "generated cover (/movies/{id}/cover.svg)"
    )


class TextMatch(BaseModel):
    field: str = Field(description="the film field whose text is closest to the free-text query")
    text: str


class AlsoLiked(BaseModel):
    film: str = Field(description="the query film with the most people in common with this one")
    people: int = Field(description="how many people who liked or clicked that film liked or clicked this one too")


class Because(BaseModel):
    """Why a film is recommended: what it shares with the query films, for free text its closest field, and in a
    model built from engagement how many people who liked a query film liked this one too."""

    genres: list[str]
    directors: list[str]
    cast: list[str]
    writers: list[str]
    query_match: TextMatch | None = None
    also_liked: AlsoLiked | None = None


class Recommendation(Film):
    score: float = Field(
        description="ranking score: similarity plus a small notability prior and era bonus, and co-engagement in a "
        "model built from engagement"
    )
    because: Because


class QueryFilm(Film):
    matched: Literal["exact", "fuzzy", "id"] = Field(description="how the film was found")
    match_score: float = Field(description="title match score, 0-100 (100 for exact)")


class ServedModel(BaseModel):
    name: str | None
    version: str | None
    alias: str | None = Field(
        None, description="the registry alias that chose this version: champion, or challenger for the canary"
    )


class Suggestion(BaseModel):
    id: int
    title: str
    year: int | None
    genres: list[str] = []


class Unresolved(BaseModel):
    field: Literal["title", "liked", "disliked", "exclude"]
    input: dict[str, Any] = Field(description="the film as given")
    suggestions: list[Suggestion]


class HistoryUsed(BaseModel):
    """The films of a user's history added to their request ("for you"; docs/events.md)."""

    liked: int = Field(description="liked or clicked films added to `liked`, before the request's own")
    disliked: int = Field(description="dismissed films added to `disliked`")
    excluded: int = Field(description="films of the history beyond the limits of those lists, never recommended")
    sinking: int = Field(description="films shown often and never taken, placed after the others")


class RecommendationResponse(BaseModel):
    query: QueryFilm | None = Field(description="the film `title` resolved to (null without a title)")
    liked: list[QueryFilm] = []
    disliked: list[QueryFilm] = []
    unresolved: list[Unresolved] = Field([], description="films that matched nothing, with suggestions")
    recommendations: list[Recommendation]
    offset: int
    top_n: int
    model: ServedModel
    request_id: str = Field(description="this answer's id (also the X-Request-Id header): give it with feedback")
    history: HistoryUsed | None = Field(None, description="what of the user's history completed the request, if any")


RequestId = Annotated[str, Field(min_length=1, max_length=REQUEST_ID_CHARS, pattern=r"^[0-9A-Za-z_-]+$")]


class FeedbackEvent(BaseModel):
    """What a user did with a film: of an answer (`request_id`), or of their own (`user`, no request: attributed to
    no model version)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"request_id": "3f2b0c9e8d7a4b1c9e0f1a2b3c4d5e6f", "film_id": 189600, "event": "click"},
                {"user": "user-1234", "film_id": 83495, "event": "like"},
            ]
        },
    )

    request_id: RequestId | None = Field(None, description="the `request_id` of the answer that showed the film")
    user: str | None = Field(
        None, description=USER.description, json_schema_extra=at_most(MAX_USER_CHARS, "characters")
    )
    film_id: Annotated[int, Field(strict=True, ge=0, le=MAX_ID)] = Field(description="the film's catalog id")
    event: Literal[EVENTS] = Field(  # type: ignore[valid-type]
        description="shown: the client displayed it; click: followed it; like; dismiss: not this"
    )

    @model_validator(mode="after")
    def _attributable(self) -> FeedbackEvent:
        reason = (NEEDS_REQUEST_OR_USER if self.request_id is None and self.user is None else None) or user_reason(
            self.user
        )
        if reason is not None:
            raise PydanticCustomError(INVALID_QUERY, "{reason}", {"reason": reason})
        return self


class FeedbackBatch(BaseModel):
    """Up to 100 events; each is checked on its own: bad ones are reported by index, the good ones kept."""

    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(
        description="FeedbackEvent objects", min_length=1, max_length=MAX_FEEDBACK, json_schema_extra={"items": {}}
    )


class EventError(BaseModel):
    index: int = Field(description="the event's position in `events` (0 first)")
    code: str = Field(description="unknown_request, not_in_answer, invalid_request or events_unavailable")
    detail: str


class FeedbackResponse(BaseModel):
    accepted: int = Field(description="events recorded (written to the event store in the background)")
    duplicates: int = Field(description="events already recorded for the same request (or user), film and event")
    errors: list[EventError] = Field([], description="events refused, by index")


class ForgetResponse(BaseModel):
    user: str
    deleted: int | None = Field(description="feedback events deleted; null while the event store is away")
    pending: bool = Field(description="true: the event store is away; the user is forgotten as soon as it is back")


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
