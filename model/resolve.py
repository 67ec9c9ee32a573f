"""Title resolution: from what a user typed to one catalog film, or to suggestions.

Order of preference:
1. exact match on the normalised title (case, accents, punctuation and a leading article ignored);
   among films sharing the title, the one from the given year, else the best known (the notability prior);
2. the best fuzzy match (rapidfuzz edit-distance ratio, see `_fuzzy`) when its score reaches `FUZZY_THRESHOLD`,
   reported as fuzzy;
3. otherwise no match, with up to `MAX_SUGGESTIONS` close titles.

Bounded work. Fuzzy matching scores a title against every catalog title, so a request buys a bounded number of them:
`resolve_many` matches fuzzily only the first `fuzzy_limit` titles that match nothing exactly (the engine passes the
request contract's `MAX_FUZZY_TITLES`), scored together in one batch; the titles after them are matched exactly only
and come back unmatched, without suggestions. A title longer than `max_chars` (`_LENGTH_FACTOR` times the longest
catalog title, accents counted as characters of their own: Unicode NFKD) matches nothing, and is neither normalised
nor scored: what reading one title costs is bounded by the catalog, not by what a client sends.
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

FUZZY_THRESHOLD = 80.0
SUGGESTION_FLOOR = 50.0
MAX_SUGGESTIONS = 5
_MIN_PREFIX = 4
_MIN_FUZZY = 3  # shorter queries ("It") only ever get suggestions: one edit is half the word
_PREFIX_WEIGHT = 0.9
_EXACT_TIER = 3  # search tiers (`TitleResolver._tiers`) from this one up are the title itself
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
        self._openings = _openings(self._keys, _MIN_PREFIX)
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
        film, so every film of a shared title is listed, the better-known first, and a user can pick among them."""
        text, year = _split_year(text, None)
        name = normalize_title(text)
        key = _LEADING_ARTICLE.sub("", name)
        if not key:
            return []
        scores, whole = self._scores([name], [key])
        scores, whole = scores[0], whole[0]
        tier = np.zeros(len(self._keys), dtype=np.int8)
        for level, rows in enumerate(self._tiers(name, key), start=1):
            tier[rows] = level
        scores[tier >= _EXACT_TIER] = whole[tier >= _EXACT_TIER] = 100.0
        pool = np.flatnonzero((scores >= SUGGESTION_FLOOR) | (tier > 0))
        fuzzy = np.where(tier[pool] > 0, 0.0, scores[pool])  # within a tier of its own, only notability counts
        same_year = np.asarray([year is not None and self._years[p] == year for p in pool], dtype=np.float64)
        order = np.lexsort((-whole[pool], -self._notability[pool], -fuzzy, -same_year, -tier[pool]))
        return [(int(p), float(min(scores[p], 100.0))) for p in pool[order][:limit]]

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

    def _scores(self, names: list[str], keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(score, whole-title ratio) of each query (a row) against each catalog row (a column), 0-100.

        Score: the edit-distance ratio of query and title, or, for a query of `_MIN_PREFIX` characters or more,
        0.9 x the ratio of the query and the title's opening of the same length ("shawshank" finds "The Shawshank
        Redemption"). Partial matching the other way round (a short title inside the query) is not used: it would
        match "godfahter" to "Go". Titles are compared with and without their leading article ("teh matrix").
        The queries are scored together: one rapidfuzz call per kind of comparison (and per query length, for
        openings), not one per query.
        """
        whole = np.maximum(_ratios(keys, self._keys), _ratios(names, self._names))
        scores = whole.copy()
        for length in {len(key) for key in keys} & self._openings.keys():
            rows, openings, which = self._openings[length]
            queries = [i for i, key in enumerate(keys) if len(key) == length]
            prefix = _ratios([keys[i] for i in queries], openings)[:, which] * _PREFIX_WEIGHT
            block = np.ix_(queries, rows)
            scores[block] = np.maximum(scores[block], prefix)
        return scores.astype(np.float64), whole.astype(np.float64)

    def _fuzzy(self, read: list[tuple[str, str, int | None]]) -> list[Resolution]:
        """Each (name, key, year) read from a typed title as a fuzzy match or suggestions, scored together."""
        if not read:
            return []
        scores, whole = self._scores([name for name, _, _ in read], [key for _, key, _ in read])
        return [
            _by_score(self._ranked(row_scores, row_whole, year), len(key))
            for row_scores, row_whole, (_, key, year) in zip(scores, whole, read, strict=True)
        ]

    def _ranked(self, scores: np.ndarray, whole: np.ndarray, year: int | None) -> list[tuple[int, float]]:
        """Candidate rows of one query with their scores, best first; one row per distinct title (its best film)."""
        pool = np.flatnonzero(scores >= SUGGESTION_FLOOR)
        # Ties (several sequels share an opening) go to the better-known film, then to the closest whole title.
        order = np.lexsort((-whole[pool], -self._notability[pool], -scores[pool]))
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


def _by_score(ranked: list[tuple[int, float]], key_length: int) -> Resolution:
    """The best candidate as a fuzzy match when it scores `FUZZY_THRESHOLD` or more (and the key is not too short for
    one), else no match with the candidates as suggestions."""
    if ranked and ranked[0][1] >= FUZZY_THRESHOLD and key_length >= _MIN_FUZZY:
        return Resolution(ranked[0][0], "fuzzy", ranked[0][1])
    suggestions = tuple(p for p, score in ranked if score >= SUGGESTION_FLOOR)[:MAX_SUGGESTIONS]
    return Resolution(None, None, ranked[0][1] if ranked else 0.0, suggestions)


def _ratios(queries: list[str], choices: list[str]) -> np.ndarray:
    """The edit-distance ratio (0-100) of each query (a row) and each choice (a column), as float32; on every core for
    several queries (for one, starting the threads costs more than they save)."""
    workers = -1 if len(queries) > 1 else 1
    return process.cdist(queries, choices, scorer=fuzz.ratio, dtype=np.float32, workers=workers)


def _openings(keys: list[str], min_length: int) -> dict[int, tuple[np.ndarray, list[str], np.ndarray]]:
    """For each query length from `min_length` up: the rows whose key is longer, the distinct openings of that length
    among their keys, and each row's opening as an index into those. Built once, so that scoring a query compares it
    with each distinct opening once ("star" opens dozens of titles) and slices no title."""
    lengths = np.fromiter(map(len, keys), np.int64, len(keys))
    by_length = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[by_length]
    table: dict[int, tuple[np.ndarray, list[str], np.ndarray]] = {}
    for length in range(min_length, int(lengths.max(initial=0))):
        rows = by_length[np.searchsorted(sorted_lengths, length, side="right") :]
        openings = [keys[row][:length] for row in rows.tolist()]
        distinct = {opening: i for i, opening in enumerate(dict.fromkeys(openings))}
        table[length] = (rows, list(distinct), np.fromiter(map(distinct.__getitem__, openings), np.intp, len(rows)))
    return table


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
