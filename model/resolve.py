"""Title resolution: from what a user typed to one catalog film, or to suggestions.

Order of preference:
1. exact match on the normalised title (case, accents, punctuation and a leading article ignored);
   among films sharing the title, the one from the given year, else the best known (the notability prior);
2. the best fuzzy match (rapidfuzz edit-distance ratio, see `_fuzzy`) when its score reaches `FUZZY_THRESHOLD`,
   reported as fuzzy;
3. otherwise no match, with up to `MAX_SUGGESTIONS` close titles.

Bounded work, whatever the catalog's size. Fuzzy matching scores a title against its candidates from a trigram
index of the title keys (model/title_index.py), at most `CANDIDATES` of them, never against every title; a search
tier (exact title, opening) is a lookup or a slice of the sorted titles, of which only the best known are ranked.
A request buys a bounded number of fuzzy matches: `resolve_many` matches fuzzily only the first `fuzzy_limit` titles
that match nothing exactly (the engine passes the request contract's `MAX_FUZZY_TITLES`); the titles after them are
matched exactly only and come back unmatched, without suggestions. A title longer than `max_chars` (`_LENGTH_FACTOR`
times the longest catalog title, accents counted as characters of their own: Unicode NFKD) matches nothing, and is
neither normalised nor scored: what reading one title costs is bounded by the catalog, not by what a client sends.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from model.title_index import TitleGrams

FUZZY_THRESHOLD = 80.0
SUGGESTION_FLOOR = 50.0
MAX_SUGGESTIONS = 5
_MIN_PREFIX = 4
_MIN_FUZZY = 3  # shorter queries ("It") only ever get suggestions: one edit is half the word
_PREFIX_WEIGHT = 0.9
_EXACT_TIER = 3  # search tiers (`TitleResolver._tiers`) from this one up are the title itself
_TIE_LIMIT = 4096  # films of one search tier compared with the text when they tie on notability
_LAST_CHARACTER = chr(0x10FFFF)  # sorts after every character: text + it bounds the texts that open with text
_LENGTH_FACTOR = 1.5  # a typed title longer than this many times the longest catalog title matches nothing

_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+),\s*(?P<article>the|a|an|les|la|le|l'|il|el|los|las|das|der|die)$")
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an) ")
_TITLE_WITH_YEAR = re.compile(r"^(?P<title>.*\S)\s*\((?P<year>\d{4})\)$")
_APOSTROPHES = re.compile(r"['’`´]")
_WORDS = re.compile(r"[^\W_]+")  # runs of letters and digits; "_" is punctuation


def normalize_title(title: str) -> str:
    """Lower case, accents stripped, `&` as "and", punctuation as spaces, "Godfather, The" as "the godfather"."""
    if title.isascii():  # most titles: no accents to strip
        text = title.casefold().strip()
    else:
        text = unicodedata.normalize("NFKD", title)
        text = "".join(itertools.filterfalse(unicodedata.combining, text)).casefold().strip()
    match = _TRAILING_ARTICLE.match(text) if "," in text else None  # the cheap test first: typed titles can be long
    if match:
        text = f"{match['article']} {match['rest']}"
    text = text.replace("&", " and ")
    text = _APOSTROPHES.sub("", text)
    return " ".join(_WORDS.findall(text))


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


_NO_MATCH = Resolution(None, None, 0.0)


class TitleResolver:
    """Resolves typed titles against a fixed catalog; built once per loaded model."""

    def __init__(self, titles: Sequence[str], years: Sequence[int | None], notability: Sequence[float]) -> None:
        """`notability`: how well known each film is, higher better (the model's notability prior); it orders films
        that match equally well."""
        self._years = [None if y is None or y != y else int(y) for y in years]  # y != y: NaN
        self._notability = np.asarray(notability, dtype=np.float64)
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
        # The longest typed title read, accents counted apart; a longer one matches nothing (`_too_long`).
        self.max_chars = int(_LENGTH_FACTOR * max((len(_decomposed(title)) for title in titles), default=0))
        self._year_of = np.asarray([-1 if y is None else y for y in self._years], dtype=np.int64)
        self._grams = TitleGrams(self._keys, self._notability)
        span = self._notability.max(initial=0.0) - self._notability.min(initial=0.0)
        self._notability_span = float(span) + 1.0  # more than any two films' notabilities differ
        self._names_sorted = _sorted_with_rows(self._names)
        self._keys_sorted = _sorted_with_rows(self._keys)

    def resolve(self, title: str, year: int | None = None) -> Resolution:
        """The film `title` (and `year`, or a year in parentheses at its end) names, or suggestions."""
        return self.resolve_many([(title, year)], fuzzy_limit=1)[0]

    def resolve_many(self, typed: Sequence[tuple[str, int | None]], fuzzy_limit: int) -> list[Resolution]:
        """`resolve` of each (title, year), in order, except that only the first `fuzzy_limit` titles that match no
        title exactly are matched fuzzily (and get suggestions); the others come back unmatched, without suggestions."""
        found: list[Resolution] = []
        fuzzy: list[tuple[int, tuple[str, str, int | None]]] = []  # (place in `found`, the title as read)
        for title, year in typed:
            read = self._read(title, year)
            match = self._exactly(*read) if read else None
            if match is None and read and read[1] and len(fuzzy) < fuzzy_limit:  # read[1]: a key, not punctuation only
                fuzzy.append((len(found), read))
            found.append(match or _NO_MATCH)
        for (i, _), match in zip(fuzzy, self._fuzzy([read for _, read in fuzzy]), strict=True):
            found[i] = match
        return found

    def search(self, text: str, limit: int) -> list[tuple[int, float]]:
        """Up to `limit` (row, score 0-100) for a title search (autocomplete), best first, as a person expects: the
        title exactly as typed ("Heat": Heat before The Heat), the title up to its leading article, titles that start
        with the text as typed, then without its article, then fuzzy matches by score. Ties go to the better-known
        film, so every film of a shared title is listed, the better-known first, and a user can pick among them.

        Each tier is a lookup or a slice of the sorted titles, of which only the best `limit` are ranked; the fuzzy
        matches are scored among the trigram index's candidates (model/title_index.py), never among all titles."""
        text, year = _split_year(text, None)
        name = normalize_title(text)
        key = _LEADING_ARTICLE.sub("", name)
        if not key or limit <= 0:
            return []
        found: list[tuple[int, float]] = []
        for level, rows in reversed(list(enumerate(self._tiers(name, key), start=1))):
            if len(found) >= limit:
                break
            taken = {row for row, _ in found}
            exact = level >= _EXACT_TIER
            best = self._best_known(np.asarray(rows, dtype=np.intp), limit, name, key, year, exact)
            new = np.asarray([row for row in best.tolist() if row not in taken][: limit - len(found)], dtype=np.intp)
            scores = np.full(len(new), 100.0) if exact else self._candidate_scores(name, key, new)[0]
            found += [(int(row), float(min(score, 100.0))) for row, score in zip(new, scores, strict=True)]
        if len(found) < limit:
            taken = {row for row, _ in found}
            rows = np.asarray([row for row in self._grams.candidates(key).tolist() if row not in taken], dtype=np.intp)
            scores, whole = self._candidate_scores(name, key, rows)
            kept = scores >= SUGGESTION_FLOOR
            rows, scores, whole = rows[kept], scores[kept], whole[kept]
            same_year = (self._year_of[rows] == year) if year is not None else np.zeros(len(rows), dtype=bool)
            same_year = same_year.astype(np.float64)
            order = np.lexsort((-whole, -self._notability[rows], -scores, -same_year))[: limit - len(found)]
            found += [(int(rows[i]), float(min(scores[i], 100.0))) for i in order]
        return found

    def _best_known(
        self, rows: np.ndarray, count: int, name: str, key: str, year: int | None, exact: bool
    ) -> np.ndarray:
        """The `count` first of `rows` (one search tier) in the tier's order: the given year's films first, then the
        better known, then the closer whole title. Only the rows that can be among them (the best known, ties
        included, at most `_TIE_LIMIT` of them) are compared with the text."""
        if len(rows) == 0:
            return rows
        same_year = (self._year_of[rows] == year) if year is not None else np.zeros(len(rows), dtype=bool)
        same_year = same_year.astype(np.float64)
        if len(rows) > count:
            # the year first, then notability: one number that orders both (the year outweighs any notability)
            rank = self._notability[rows] + same_year * self._notability_span
            cut = np.partition(-rank, count - 1)[count - 1]
            ties = np.flatnonzero(-rank == cut)[:_TIE_LIMIT]
            near = np.concatenate([np.flatnonzero(-rank < cut), ties])
            rows, same_year = rows[near], same_year[near]
        whole = np.zeros(len(rows)) if exact else self._candidate_scores(name, key, rows)[1]
        return rows[np.lexsort((-whole, -self._notability[rows], -same_year))][:count]

    def _tiers(self, name: str, key: str) -> tuple[list[int] | np.ndarray, ...]:
        """The rows of each search tier, weakest first: key opens the title's key, name opens the title, the key
        equals, the title equals (`_EXACT_TIER` and up are exact)."""
        return (
            _opening_with(self._keys_sorted, key),
            _opening_with(self._names_sorted, name),
            self._by_key.get(key, []),
            self._by_name.get(name, []),
        )

    def lookup(self, title: str) -> list[int]:
        """Every row whose title equals `title` up to normalisation."""
        return list(self._by_key.get(title_key(title), []))

    def _read(self, title: str, year: int | None) -> tuple[str, str, int | None] | None:
        """(normalised title, exact-match key, year) of a typed title; None for one too long to name any film."""
        listed = self._as_listed.get(title)
        if listed is not None:
            return (*listed, year)
        if self._too_long(title):
            return None
        title, year = _split_year(title, year)
        name = normalize_title(title)
        return name, _LEADING_ARTICLE.sub("", name), year

    def _too_long(self, title: str) -> bool:
        """Whether `title` is longer than `max_chars`, accents counted apart."""
        # Decomposing never shortens a title: its length as typed decides first, and bounds the decomposing.
        return len(title) > self.max_chars or len(_decomposed(title)) > self.max_chars

    def _exactly(self, name: str, key: str, year: int | None) -> Resolution | None:
        """The exact match of a read title, or None."""
        exact = self._exact(name, key)
        return Resolution(self._pick(exact, year), "exact", 100.0) if exact else None

    def _exact(self, name: str, key: str) -> list[int]:
        # The title as typed, article included, first: "Heat" is Heat (1995), not The Heat (2013).
        return self._by_name.get(name) or self._by_key.get(key) or []

    def _pick(self, positions: list[int], year: int | None) -> int:
        if year is not None:
            same_year = [p for p in positions if self._years[p] == year]
            if same_year:
                positions = same_year
        return max(positions, key=lambda p: (self._notability[p], -p))

    def _candidate_scores(self, name: str, key: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, whole-title ratio) of a query against each of `rows`, 0-100.

        Score: the edit-distance ratio of query and title, or, for a query of `_MIN_PREFIX` characters or more,
        0.9 x the ratio of the query and the title's opening of the same length ("shawshank" finds "The Shawshank
        Redemption"). Partial matching the other way round (a short title inside the query) is not used: it would
        match "godfahter" to "Go". Titles are compared with and without their leading article ("teh matrix").
        """
        keys = [self._keys[row] for row in rows.tolist()]
        whole = np.maximum(_ratios(key, keys), _ratios(name, [self._names[row] for row in rows.tolist()]))
        scores = whole.copy()
        if len(key) >= _MIN_PREFIX:
            longer = [i for i, choice in enumerate(keys) if len(choice) > len(key)]
            if longer:
                prefix = _ratios(key, [keys[i][: len(key)] for i in longer]) * _PREFIX_WEIGHT
                scores[longer] = np.maximum(scores[longer], prefix)
        return scores, whole

    def _fuzzy(self, read: list[tuple[str, str, int | None]]) -> list[Resolution]:
        """Each (name, key, year) read from a typed title as a fuzzy match or suggestions, scored among the trigram
        index's candidates for it."""
        found = []
        for name, key, year in read:
            rows = self._grams.candidates(key).astype(np.intp)
            scores, whole = self._candidate_scores(name, key, rows)
            found.append(_by_score(self._ranked(rows, scores, whole, year), len(key)))
        return found

    def _ranked(
        self, rows: np.ndarray, scores: np.ndarray, whole: np.ndarray, year: int | None
    ) -> list[tuple[int, float]]:
        """Candidate rows of one query with their scores, best first; one row per distinct title (its best film)."""
        pool = np.flatnonzero(scores >= SUGGESTION_FLOOR)
        # Ties (several sequels share an opening) go to the better-known film, then to the closest whole title.
        order = np.lexsort((-whole[pool], -self._notability[rows[pool]], -scores[pool]))
        ranked: list[tuple[int, float]] = []
        seen: set[str] = set()
        for i in pool[order]:
            choice = self._keys[rows[i]]
            if choice not in seen:
                seen.add(choice)
                ranked.append((self._pick(self._by_key[choice], year), float(scores[i])))
            if len(ranked) == MAX_SUGGESTIONS:
                break
        return ranked


def _by_score(ranked: list[tuple[int, float]], key_length: int) -> Resolution:
    """The best candidate as a fuzzy match when it scores `FUZZY_THRESHOLD` or more (and the key is not too short for
    one), else no match with the candidates as suggestions."""
    if ranked and ranked[0][1] >= FUZZY_THRESHOLD and key_length >= _MIN_FUZZY:
        return Resolution(ranked[0][0], "fuzzy", ranked[0][1])
    suggestions = tuple(p for p, score in ranked if score >= SUGGESTION_FLOOR)[:MAX_SUGGESTIONS]
    return Resolution(None, None, ranked[0][1] if ranked else 0.0, suggestions)


def _ratios(query: str, choices: list[str]) -> np.ndarray:
    """The edit-distance ratio (0-100) of `query` and each of `choices`."""
    return process.cdist([query], choices, scorer=fuzz.ratio, dtype=np.float32, workers=1)[0].astype(np.float64)


def _sorted_with_rows(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """`texts` sorted, and the row of each: the texts that open with a given one are then one slice of it."""
    rows = np.asarray(sorted(range(len(texts)), key=texts.__getitem__), dtype=np.intp)
    return [texts[row] for row in rows], rows


def _opening_with(table: tuple[list[str], np.ndarray], opening: str) -> np.ndarray:
    """The rows whose text opens with `opening` (equal to it included), from a `_sorted_with_rows` table."""
    texts, rows = table
    return rows[bisect.bisect_left(texts, opening) : bisect.bisect_left(texts, opening + _LAST_CHARACTER)]


def _decomposed(title: str) -> str:
    """`title` with accents and ligatures as characters of their own (Unicode NFKD)."""
    return title if title.isascii() else unicodedata.normalize("NFKD", title)


def _split_year(title: str, year: int | None) -> tuple[str, int | None]:
    """ "Hamlet (1948)", as film lists often write it, is title "Hamlet" and year 1948 (unless a year is given)."""
    stripped = title.strip()
    dated = _TITLE_WITH_YEAR.match(stripped) if stripped.endswith(")") else None  # the cheap test first
    if dated and year is None:
        return dated["title"], int(dated["year"])
    return title, year
