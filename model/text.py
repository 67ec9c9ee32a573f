"""Movie text: the one sentence per film that the encoder turns into a vector.

Fields go in order of how much they say about a film's likeness to others (title, year, genres, directors, cast,
writers), so that if a text ever outgrows the encoder's window, truncation cuts the least telling field first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

MAX_TITLE_CHARS = 200
MAX_NAME_CHARS = 60


@dataclass(frozen=True)
class TextConfig:
    """How a film becomes text; every field is a build parameter."""

    cast_per_film: int = 5
    directors_per_film: int = 3
    writers_per_film: int = 3
    genres_per_film: int = 6
    include_year: bool = True
    include_writers: bool = True


def rank_cast(cast_lists: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each film's cast ordered by how many catalog films each actor appears in (most first, ties alphabetical).

    movies.db lists cast alphabetically, not in billing order, so "the first five" would be five arbitrary names
    (The Matrix would start with Ada Nicodemou). An actor credited in many films is more likely a lead and, more to
    the point, is the only kind of name that can link two films: a name that appears once in the whole catalog adds
    tokens to the text and nothing to similarity. Ranking by catalog frequency keeps the names that carry signal.
    """
    counts = Counter(name for cast in cast_lists for name in cast)
    return [sorted(cast, key=lambda name: (-counts[name], name)) for cast in cast_lists]


def movie_text(
    title: str,
    year: int | None,
    genres: Sequence[str],
    directors: Sequence[str],
    cast: Sequence[str],
    writers: Sequence[str],
    config: TextConfig = TextConfig(),
) -> str:
    """One film as text, e.g. "The Matrix (1999). Genres: Action, Sci-Fi. Directed by ... Starring ...".

    `cast` must already be in the order of preference (see `rank_cast`).
    """
    head = _clip(title, MAX_TITLE_CHARS)
    if config.include_year and year is not None and not pd.isna(year):
        head += f" ({int(year)})"
    parts = [head + "."]
    parts += _field("Genres:", genres, config.genres_per_film)
    parts += _field("Directed by", directors, config.directors_per_film)
    parts += _field("Starring", cast, config.cast_per_film)
    if config.include_writers:
        parts += _field("Written by", writers, config.writers_per_film)
    return " ".join(parts)


def movie_texts(movies: pd.DataFrame, config: TextConfig = TextConfig()) -> list[str]:
    """Texts for a whole catalog, in row order; its `cast` lists must already be ranked (see `rank_cast`)."""
    columns = ("title", "year", "genres", "directors", "cast", "writers")
    rows = zip(*(movies[column] for column in columns), strict=False)
    return [movie_text(t, y, g, d, c, w, config) for t, y, g, d, c, w in rows]


def _field(label: str, names: Iterable[str], limit: int) -> list[str]:
    chosen = [_clip(name, MAX_NAME_CHARS) for name in list(names)[:limit]]
    return [f"{label} {', '.join(chosen)}."] if chosen else []


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
