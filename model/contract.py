"""The request contract: the limits and rules of a query, and the words for breaking them, written once.

The model checks each input row with `invalid_reason` and answers `status: invalid` with the reason; the gateway
checks each HTTP request with the same function before forwarding it, and answers 422 with the same reason. Both
read the limits from here. Standard library only: the gateway imports this module and nothing else of `model`.

A query is a dict or any object with the query's attributes (`title`, `top_n`, `liked`, ...; see `QUERY_FIELDS`),
missing ones read as None. A film in `liked`, `disliked` or `exclude` is a catalog id (int), a title (str), or a dict or
object with `id`, `title` and `year`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_TOP_N = 5
MAX_TOP_N = 100
MAX_OFFSET = 900  # offset + top_n stays within the re-ranked pool, so pages never reshuffle
MAX_TITLE_CHARS = 300
MAX_QUERY_CHARS = 1000
MAX_FILMS = 50  # liked, disliked
MAX_EXCLUDE = 1000
# Per query, the titles (title, then liked, disliked, exclude, in order) matched fuzzily and given suggestions when they
# match no catalog title exactly; later ones are matched exactly only, and listed as unresolved without suggestions.
MAX_FUZZY_TITLES = 10
MAX_WITHIN = 10_000
MAX_GENRES = 30  # genres, exclude_genres
MAX_GENRE_CHARS = 50
MAX_ID = 2**63 - 1
YEAR_MIN, YEAR_MAX = 1800, 2100
DEFAULT_SEARCH = 10
MAX_USER_CHARS = 128
RESPONSE_CAST = 10  # names per film in an answer; the stored cast is ranked best-known first
MAX_FEEDBACK = 100  # events per feedback batch
MAX_SEARCH = 50


@dataclass(frozen=True)
class Spec:
    """One field of a shape, declared once: its kind, what it means, an example, and its bounds.

    Kinds: `text` (a string of at most `most` characters), `int` and `number` (between `low` and `high`), `films`
    (film references, at most `most`), `ids` (catalog ids, at most `most`), `names` (strings, at most `most`).
    The model's input schema (model/schema.py), the gateway's request and response schemas (gateway/schemas.py),
    the batch output's Spark schema (pipelines/batch.py) and the page (through the OpenAPI document) derive theirs.
    """

    kind: str
    description: str
    example: Any = None
    low: float | None = None
    high: float | None = None
    most: int | None = None
    default: Any = None
    nullable: bool = False


# A recommendation query, as the model takes it (and the gateway's request, which adds `user`).
QUERY: dict[str, Spec] = {
    "title": Spec("text", "a film you like; typos are tolerated", "The Matrix", most=MAX_TITLE_CHARS),
    "year": Spec("int", "release year of `title`, among films sharing it", 1999, YEAR_MIN, YEAR_MAX),
    "top_n": Spec("int", "how many films to return", 5, 1, MAX_TOP_N, default=DEFAULT_TOP_N),
    "liked": Spec(
        "films", "films you like (later ones weigh more)", ["Heat", {"title": "Alien", "year": 1979}, 83495],
        most=MAX_FILMS,
    ),
    "disliked": Spec("films", "films to steer away from; never returned", ["Titanic"], most=MAX_FILMS),
    "query": Spec(
        "text", "free text, alone or with liked films", "heist film with a twist ending", most=MAX_QUERY_CHARS
    ),
    "genres": Spec("names", "only films with any of these genres", ["Crime", "Drama"], most=MAX_GENRES),
    "exclude_genres": Spec("names", "no film with any of these genres", ["Documentary"], most=MAX_GENRES),
    "year_min": Spec("int", "released in or after", 1990, YEAR_MIN, YEAR_MAX),
    "year_max": Spec("int", "released in or before", 1999, YEAR_MIN, YEAR_MAX),
    "exclude": Spec("films", "films already seen: never returned", [83495, "Heat"], most=MAX_EXCLUDE),
    "within": Spec("ids", "choose only among these catalog ids", [83495, 207536], most=MAX_WITHIN),
    "diversity": Spec("number", "0: plain similarity; up to 1: fewer near-duplicates (MMR)", 0.3, 0, 1),
    "offset": Spec("int", "skip this many results (paging)", 0, 0, MAX_OFFSET, default=0),
}  # fmt: skip
QUERY_FIELDS = tuple(QUERY)
# The gateway's own field of a request: who asks, kept in the event store only (never sent to the model).
USER = Spec(
    "text", "an opaque id of your app's user (1-128 printable characters): attributes feedback, keeps a canary "
    "sticky; stored in the event store only", "user-1234", most=MAX_USER_CHARS,
)  # fmt: skip

# A film as the model answers it in a recommendation (model/films.py builds these records).
FILM: dict[str, Spec] = {
    "id": Spec("int", "catalog id", 83495, 0, MAX_ID),
    "title": Spec("text", "title", "The Matrix"),
    "year": Spec("int", "release year, null when unknown", 1999, nullable=True),
    "genres": Spec("names", "genres", ["Sci-Fi", "Action"]),
    "directors": Spec("names", "directors", ["Lana Wachowski", "Lilly Wachowski"]),
    "cast": Spec("names", f"best-known names first, at most {RESPONSE_CAST}", ["Keanu Reeves"], most=RESPONSE_CAST),
    "imdb_id": Spec("text", "IMDb title id, null when the catalog has none", "tt0133093", nullable=True),
    "imdb_url": Spec(
        "text", "the film's IMDb page, null without an IMDb id", "https://www.imdb.com/title/tt0133093/", nullable=True
    ),
    "cover_url": Spec("text", "the catalog's poster image, null when it has none", None, nullable=True),
}
FILM_FIELDS = tuple(FILM)


def example_film(**values: Any) -> dict[str, Any]:
    """A film record with every field of `FILM` (its examples, overridden by `values`, which must be fields)."""
    unknown = set(values) - set(FILM)
    if unknown:
        raise KeyError(f"not fields of a film record: {sorted(unknown)}")
    return {name: values.get(name, spec.example) for name, spec in FILM.items()}


FILM_LISTS = ("liked", "disliked", "exclude")
MODES = ("recommend", "search", "film", "info")  # the model's param `mode`
FORMATS = ("records", "json")  # the model's param `format`: records as objects, or each as its JSON text
EXPLAINED_FIELDS = ("genres", "directors", "cast", "writers")  # what a recommendation's `because` lists

STATUS_OK = "ok"
STATUS_UNKNOWN_TITLE = "unknown_title"
STATUS_NOT_FOUND = "not_found"
STATUS_INVALID = "invalid"

NEEDS_A_QUERY = "give at least one of title, liked or query"
TITLE_TOO_LONG = f"a title has at most {MAX_TITLE_CHARS} characters"
NO_VISIBLE_TEXT = "title and query must contain visible characters"
QUERY_TOO_LONG = f"query has at most {MAX_QUERY_CHARS} characters"
TOP_N_OUT_OF_RANGE = f"top_n must be between 1 and {MAX_TOP_N}"
OFFSET_OUT_OF_RANGE = f"offset must be between 0 and {MAX_OFFSET}"
YEAR_OUT_OF_RANGE = f"years must be between {YEAR_MIN} and {YEAR_MAX}"
YEARS_REVERSED = "year_min must not be greater than year_max"
DIVERSITY_OUT_OF_RANGE = "diversity must be a number between 0 and 1"
TOO_MANY_FILMS = f"liked and disliked take at most {MAX_FILMS} films each"
TOO_MANY_EXCLUDED = f"exclude takes at most {MAX_EXCLUDE} films"
TOO_MANY_WITHIN = f"within takes at most {MAX_WITHIN} catalog ids"
ID_OUT_OF_RANGE = f"catalog ids are between 0 and {MAX_ID}"
TOO_MANY_GENRES = f"genres and exclude_genres take at most {MAX_GENRES} names each"
BAD_GENRE = f"a genre is a name of 1 to {MAX_GENRE_CHARS} visible characters"
EMPTY_FILM_REF = "a film is a catalog id, a title, or {title, year}"
LIKED_AND_DISLIKED = "the same film is both liked and disliked: {titles}"
UNKNOWN_GENRES = "unknown genre(s) {unknown}; the catalog has: {known}"
ID_REQUIRED = "id (a catalog id) is required"
SEARCH_REQUIRED = f"the search text must contain visible characters, and at most {MAX_TITLE_CHARS} of them"
SEARCH_LIMIT_OUT_OF_RANGE = f"the number of search results must be between 1 and {MAX_SEARCH}"
UNKNOWN_MODE = f"mode must be one of {', '.join(MODES)}"
UNKNOWN_FORMAT = f"format must be one of {', '.join(FORMATS)}"
BAD_USER = f"user is 1 to {MAX_USER_CHARS} printable characters"


def has_text(text: str | None) -> bool:
    """Whether `text` holds at least one visible character (not only spaces or control characters)."""
    return text is not None and any(ch.isprintable() and not ch.isspace() for ch in text)


def film_parts(film: Any) -> tuple[int | None, str | None, int | None]:
    """(id, title, year) of a film reference in any of its forms."""
    if isinstance(film, bool):  # a JSON true is not a catalog id
        return None, None, None
    if isinstance(film, int):
        return film, None, None
    if isinstance(film, str):
        return None, film, None
    if isinstance(film, dict):
        return film.get("id"), film.get("title"), film.get("year")
    return getattr(film, "id", None), getattr(film, "title", None), getattr(film, "year", None)


def invalid_reason(query: Any, needs_films: bool = True) -> str | None:
    """Why a recommendation query cannot be answered as asked, or None when it can. Checks values, not catalog
    contents: unknown titles and genres are the model's to find. The first rule broken, in this order, is named.
    `needs_films` False: it may name no title, liked film or text (the gateway adds a user's own from history)."""
    field = _reader(query)
    title, text = field("title"), field("query")
    if needs_films and title is None and text is None and not field("liked"):
        return NEEDS_A_QUERY
    if (title is not None and not has_text(title)) or (text is not None and not has_text(text)):
        return NO_VISIBLE_TEXT
    if title is not None and len(title) > MAX_TITLE_CHARS:
        return TITLE_TOO_LONG
    if text is not None and len(text) > MAX_QUERY_CHARS:
        return QUERY_TOO_LONG
    if not _within(field("top_n"), 1, MAX_TOP_N):
        return TOP_N_OUT_OF_RANGE
    if not _within(field("offset"), 0, MAX_OFFSET):
        return OFFSET_OUT_OF_RANGE
    if not _within(field("diversity"), 0, 1):
        return DIVERSITY_OUT_OF_RANGE
    lists = {name: field(name) or () for name in (*FILM_LISTS, "within", "genres", "exclude_genres")}
    if len(lists["liked"]) > MAX_FILMS or len(lists["disliked"]) > MAX_FILMS:
        return TOO_MANY_FILMS
    if len(lists["exclude"]) > MAX_EXCLUDE:
        return TOO_MANY_EXCLUDED
    if len(lists["within"]) > MAX_WITHIN:
        return TOO_MANY_WITHIN
    parts = [film_parts(film) for name in FILM_LISTS for film in lists[name]]
    if any(id_ is None and not has_text(name) for id_, name, _ in parts):
        return EMPTY_FILM_REF
    if any(name is not None and len(name) > MAX_TITLE_CHARS for _, name, _ in parts):
        return TITLE_TOO_LONG
    if not all(_within(id_, 0, MAX_ID) for id_ in [*(id_ for id_, _, _ in parts), *lists["within"]]):
        return ID_OUT_OF_RANGE
    year_min, year_max = field("year_min"), field("year_max")
    if not all(
        _within(year, YEAR_MIN, YEAR_MAX) for year in (field("year"), year_min, year_max, *(y for *_, y in parts))
    ):
        return YEAR_OUT_OF_RANGE
    if year_min is not None and year_max is not None and year_min > year_max:
        return YEARS_REVERSED
    genres = [*lists["genres"], *lists["exclude_genres"]]
    if len(lists["genres"]) > MAX_GENRES or len(lists["exclude_genres"]) > MAX_GENRES:
        return TOO_MANY_GENRES
    if not all(has_text(g) and len(g) <= MAX_GENRE_CHARS for g in genres):
        return BAD_GENRE
    return None


def user_reason(user: str | None) -> str | None:
    """Why `user` (an app's opaque user id; None: not given) cannot be taken, or None."""
    if user is None or (0 < len(user) <= MAX_USER_CHARS and user.isprintable() and has_text(user)):
        return None
    return BAD_USER


def search_reason(text: str | None, limit: int | None) -> str | None:
    """Why a title search cannot be answered, or None."""
    if not has_text(text) or len(text or "") > MAX_TITLE_CHARS:
        return SEARCH_REQUIRED
    if not _within(limit, 1, MAX_SEARCH):
        return SEARCH_LIMIT_OUT_OF_RANGE
    return None


def _reader(query: Any) -> Any:
    if isinstance(query, dict):
        return query.get
    return lambda name: getattr(query, name, None)


def _within(value: float | None, low: float, high: float) -> bool:
    """None (not given) or a number in [low, high]; NaN is outside every range."""
    return value is None or low <= value <= high
