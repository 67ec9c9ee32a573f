"""Why a film is recommended: what it shares with the query films, and for free text its closest field.

`because` lists, per explained field (genres, directors, cast, writers), the film's values that any query film has
too, in the film's own order. For free text, `query_match` names a title or name sharing a word with the text, else
the film's genre whose embedding is closest to the text (genre names are encoded once per model).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from model.contract import EXPLAINED_FIELDS
from model.films import Films

Encode = Callable[[list[str]], np.ndarray]

_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "film", "films", "movie", "movies", "in", "into",
     "is", "it", "of", "on", "or", "the", "to", "with", "about", "who", "that"}
)  # fmt: skip
_NAMED_FIELDS = ("title", "directors", "cast", "writers")


def shared_fields(films: Films, query_rows: Sequence[int], rows: Sequence[int]) -> list[int]:
    """For each film of `rows`, a bit mask of the fields in which it shares a value with the query films: bit i
    stands for EXPLAINED_FIELDS[i]. The precomputed neighbour lists store these masks (model/neighbours.py)."""
    fields = [(films.sets[name], _union(films.sets[name], query_rows)) for name in EXPLAINED_FIELDS]
    return [
        sum(1 << bit for bit, (sets, wanted) in enumerate(fields) if not wanted.isdisjoint(sets[row])) for row in rows
    ]


def because(
    films: Films, query_rows: Sequence[int], rows: Sequence[int], shared: Sequence[int] | None = None
) -> list[dict[str, list[str]]]:
    """For each film of `rows`: {field: its values shared with any of the films `query_rows`}, for every field of
    EXPLAINED_FIELDS, in the film's own order. `shared`: the films' `shared_fields` masks, when already known."""
    if shared is None:
        shared = shared_fields(films, query_rows, rows)
    # Bit i of a mask stands for EXPLAINED_FIELDS[i], as `shared_fields` made it; only the fields a film shares are
    # walked, this running for every film of every answer.
    fields = [
        (1 << bit, name, films.lists[name], _union(films.sets[name], query_rows))
        for bit, name in enumerate(EXPLAINED_FIELDS)
    ]
    return [
        {name: [v for v in lists[row] if v in wanted] if bits & flag else [] for flag, name, lists, wanted in fields}
        for row, bits in zip(rows, shared, strict=True)
    ]


def _union(sets: list[frozenset[str]], rows: Sequence[int]) -> frozenset[str]:
    return sets[rows[0]] if len(rows) == 1 else frozenset().union(*(sets[row] for row in rows))


class TextMatcher:
    """Finds, per film, the field closest to a free-text query (`query_match`)."""

    def __init__(self, films: Films) -> None:
        self.films = films
        self._genres: tuple[list[str], np.ndarray] | None = None
        self._lock = threading.Lock()

    def matches(
        self, rows: Sequence[int], text: str, vector: np.ndarray, encode: Encode
    ) -> list[dict[str, str] | None]:
        """{"field", "text"} per film of `rows` for free text `text` with normalised embedding `vector`; `encode`
        embeds the genre names once."""
        similarity = self._genre_similarity(vector, encode)
        words = _words(text)
        found: list[dict[str, str] | None] = []
        for row in rows:
            match = self._named(row, words)
            genres = self.films.lists["genres"][row]
            if match is None and genres:
                match = {"field": "genres", "text": max(genres, key=lambda g: similarity.get(g, -1.0))}
            found.append(match)
        return found

    def _named(self, row: int, words: set[str]) -> dict[str, str] | None:
        for name in _NAMED_FIELDS:
            values = [self.films.records[row]["title"]] if name == "title" else self.films.lists[name][row]
            hit = next((v for v in values if words & _words(v)), None)
            if hit:
                return {"field": name, "text": hit}
        return None

    def _genre_similarity(self, vector: np.ndarray, encode: Encode) -> dict[str, Any]:
        with self._lock:
            if self._genres is None:
                names = sorted({name for name, _ in self.films.genres.values()})
                self._genres = (names, encode(names))
        names, vectors = self._genres
        return dict(zip(names, (vectors @ vector).tolist(), strict=True))


def _words(text: str) -> set[str]:
    """Lower-case words of three letters or more, stopwords left out: what a free-text query and a name share."""
    words = "".join(ch if ch.isalnum() else " " for ch in text.casefold()).split()
    return {word for word in words if len(word) > 2} - _STOPWORDS
