"""Title resolution: from what a user typed to one catalog film, or to suggestions.

Order of preference:
1. exact match on the normalised title (case, accents, punctuation and a leading article ignored);
   among films sharing the title, the one from the given year, else the most reviewed;
2. the best fuzzy match (rapidfuzz edit-distance ratio, see `_fuzzy`) when its score reaches `FUZZY_THRESHOLD`,
   reported as fuzzy;
3. otherwise no match, with up to `MAX_SUGGESTIONS` close titles.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

FUZZY_THRESHOLD = 80.0
SUGGESTION_FLOOR = 50.0
MAX_SUGGESTIONS = 5
_MIN_PREFIX = 4
_MIN_FUZZY = 3  # shorter queries ("It") only ever get suggestions: one edit is half the word
_PREFIX_WEIGHT = 0.9

_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+),\s*(?P<article>the|a|an|les|la|le|l'|il|el|los|las|das|der|die)$")
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an) ")
_TITLE_WITH_YEAR = re.compile(r"^(?P<title>.*\S)\s*\((?P<year>\d{4})\)$")
_APOSTROPHES = re.compile(r"['’`´]")
_NON_WORD = re.compile(r"[^\w]+")


def normalize_title(title: str) -> str:
    """Lower case, accents stripped, `&` as "and", punctuation as spaces, "Godfather, The" as "the godfather"."""
    if title.isascii():  # most titles: no accents to strip
        text = title.casefold().strip()
    else:
        text = unicodedata.normalize("NFKD", title)
        text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold().strip()
    match = _TRAILING_ARTICLE.match(text)
    if match:
        text = f"{match['article']} {match['rest']}"
    text = text.replace("&", " and ")
    text = _APOSTROPHES.sub("", text)
    return " ".join(_NON_WORD.sub(" ", text).replace("_", " ").split())


def title_key(title: str) -> str:
    """Exact-match key: the normalised title without a leading article ("The Matrix" and "matrix" meet)."""
    return _LEADING_ARTICLE.sub("", normalize_title(title))


@dataclass(frozen=True)
class Resolution:
    """Outcome of resolving one title. `position` is a catalog row, or None when nothing matched."""

    position: int | None
    matched: str | None  # "exact" | "fuzzy" | None
    score: float
    suggestions: tuple[int, ...] = ()


class TitleResolver:
    """Resolves typed titles against a fixed catalog; built once per loaded model."""

    def __init__(self, titles: Sequence[str], years: Sequence[int | None], reviews: Sequence[float]) -> None:
        self._years = [None if y is None or y != y else int(y) for y in years]  # y != y: NaN
        self._reviews = np.asarray(reviews, dtype=np.float64)
        self._names = [normalize_title(t) for t in titles]
        self._keys = [_LEADING_ARTICLE.sub("", name) for name in self._names]
        self._by_key: dict[str, list[int]] = {}
        self._by_name: dict[str, list[int]] = {}
        # Titles typed exactly as the catalog lists them (what apps send after a search) skip normalising.
        self._as_listed: dict[str, tuple[str, str]] = {}
        for position, (title, name, key) in enumerate(zip(titles, self._names, self._keys, strict=True)):
            self._by_key.setdefault(key, []).append(position)
            self._by_name.setdefault(name, []).append(position)
            if not _TITLE_WITH_YEAR.match(title.strip()):  # "Hamlet (1948)" is read as a title and a year
                self._as_listed[title] = (name, key)

    def resolve(self, title: str, year: int | None = None) -> Resolution:
        """The film `title` (and `year`, or a year in parentheses at its end) names, or suggestions."""
        listed = self._as_listed.get(title)
        if listed is not None:
            name, key = listed
        else:
            title, year = _split_year(title, year)
            name = normalize_title(title)
            key = _LEADING_ARTICLE.sub("", name)
        exact = self._exact(name, key)
        if exact:
            return Resolution(self._pick(exact, year), "exact", 100.0)
        ranked = self._fuzzy(name, key, year)
        if ranked and ranked[0][1] >= FUZZY_THRESHOLD and len(key) >= _MIN_FUZZY:
            return Resolution(ranked[0][0], "fuzzy", ranked[0][1])
        suggestions = tuple(p for p, score in ranked if score >= SUGGESTION_FLOOR)[:MAX_SUGGESTIONS]
        return Resolution(None, None, ranked[0][1] if ranked else 0.0, suggestions)

    def search(self, text: str, limit: int) -> list[tuple[int, float]]:
        """Up to `limit` (row, score 0-100) for a title search, best first. Every film of a shared title is listed,
        the better-known first, so a user can pick among them."""
        text, year = _split_year(text, None)
        name = normalize_title(text)
        key = _LEADING_ARTICLE.sub("", name)
        if not key:
            return []
        scores, whole = self._scores(name, key)
        for position in self._exact(name, key):
            scores[position] = whole[position] = 100.0
        if year is not None:  # "Hamlet (1948)": that year's film first among equals
            scores = scores + 0.01 * (np.asarray([y == year for y in self._years]))
        pool = np.flatnonzero(scores >= SUGGESTION_FLOOR)
        order = np.lexsort((-whole[pool], -self._reviews[pool], -scores[pool]))
        return [(int(p), float(min(scores[p], 100.0))) for p in pool[order][:limit]]

    def lookup(self, title: str) -> list[int]:
        """Every row whose title equals `title` up to normalisation."""
        return list(self._by_key.get(title_key(title), []))

    def _exact(self, name: str, key: str) -> list[int]:
        # The title as typed, article included, first: "Heat" is Heat (1995), not The Heat (2013).
        return self._by_name.get(name) or self._by_key.get(key) or []

    def _pick(self, positions: list[int], year: int | None) -> int:
        if year is not None:
            same_year = [p for p in positions if self._years[p] == year]
            if same_year:
                positions = same_year
        return max(positions, key=lambda p: (self._reviews[p], -p))

    def _scores(self, name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(score, whole-title ratio) per catalog row, 0-100.

        Score: the edit-distance ratio of query and title, or, for a query of `_MIN_PREFIX` characters or more,
        0.9 x the ratio of the query and the title's opening of the same length ("shawshank" finds "The Shawshank
        Redemption"). Partial matching the other way round (a short title inside the query) is not used: it would
        match "godfahter" to "Go". Titles are compared with and without their leading article ("teh matrix").
        """
        whole = np.maximum(
            process.cdist([key], self._keys, scorer=fuzz.ratio, dtype=np.float32)[0],
            process.cdist([name], self._names, scorer=fuzz.ratio, dtype=np.float32)[0],
        )
        scores = whole
        if len(key) >= _MIN_PREFIX:
            openings = [k[: len(key)] if len(k) > len(key) else "" for k in self._keys]
            prefix = process.cdist([key], openings, scorer=fuzz.ratio, dtype=np.float32)[0] * _PREFIX_WEIGHT
            scores = np.maximum(whole, prefix)
        return scores.astype(np.float64), whole.astype(np.float64)

    def _fuzzy(self, name: str, key: str, year: int | None) -> list[tuple[int, float]]:
        """Candidate rows with scores, best first; one row per distinct title (its best film)."""
        if not key:
            return []
        scores, whole = self._scores(name, key)
        pool = np.flatnonzero(scores >= SUGGESTION_FLOOR)
        # Ties (several sequels share an opening) go to the better-known film, then to the closest whole title.
        order = np.lexsort((-whole[pool], -self._reviews[pool], -scores[pool]))
        ranked: list[tuple[int, float]] = []
        seen: set[str] = set()
        for position in pool[order]:
            choice = self._keys[position]
            if choice not in seen:
                seen.add(choice)
                ranked.append((self._pick(self._by_key[choice], year), float(scores[position])))
            if len(ranked) == MAX_SUGGESTIONS:
                break
        return ranked


def _split_year(title: str, year: int | None) -> tuple[str, int | None]:
    """ "Hamlet (1948)", as film lists often write it, is title "Hamlet" and year 1948 (unless a year is given)."""
    dated = _TITLE_WITH_YEAR.match(title.strip())
    if dated and year is None:
        return dated["title"], int(dated["year"])
    return title, year
