"""The engine: answers the model's three kinds of query over one loaded catalog. No MLflow, no HTTP.

A recommendation query names query films (`title`, `liked`), films to push away (`disliked`), free text (`query`),
filters and paging. The engine checks it against the request contract, resolves the films it names, ranks (a
lookup in the precomputed neighbour lists when the query is one film and nothing else, else the live search of
model/ranking.py) and explains each recommendation. Outcomes are values: every query gets a record whose `status`
is ok, unknown_title or invalid.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from model.artifacts import read_artifacts, read_engagement, read_vectors
from model.contract import (
    DEFAULT_SEARCH,
    DEFAULT_TOP_N,
    FILM_LISTS,
    ID_REQUIRED,
    LIKED_AND_DISLIKED,
    MAX_FUZZY_TITLES,
    STATUS_INVALID,
    STATUS_NOT_FOUND,
    STATUS_OK,
    STATUS_UNKNOWN_TITLE,
    UNKNOWN_GENRES,
    film_parts,
    invalid_reason,
    search_reason,
)
from model.engagement import Engagement
from model.explain import Encode, TextMatcher, because
from model.films import Films, genre_key
from model.neighbours import Neighbours
from model.ranking import Ranked, Ranking, Search, rank
from model.resolve import MAX_SUGGESTIONS, Resolution
from model.schema import Query

DETAIL_CAST = 30  # cast names in a film's details
DETAIL_NUMBERS = ("reviews", "rating", "metacritic", "box_office", "awards")
WARM_UP_ENV = "RECOMMENDER_WARM_UP"  # "false": the encoder loads at the first free-text query, not at model load


@dataclass
class Resolved:
    """Films a query named, as catalog rows and answer records, and those that matched nothing."""

    rows: list[int] = field(default_factory=list)
    films: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)


class Engine:
    """Recommendations, title search and film details over `films`, ranked with `ranking`."""

    def __init__(
        self,
        films: Films,
        ranking: Ranking | None = None,
        info: Mapping[str, Any] | None = None,
        load_encoder: Callable[[], Encode] | None = None,
        neighbours: Neighbours | None = None,
        engagement: Engagement | None = None,
    ) -> None:
        self.films = films
        self.ranking = ranking or Ranking()
        self.info = dict(info or {})
        self._load_encoder = load_encoder
        self._encode: Encode | None = None
        self._encoder_lock = threading.Lock()
        self.neighbours = neighbours if neighbours is not None and len(neighbours.rows) == len(films) else None
        self.engagement = engagement if engagement is not None and len(engagement) == len(films) else None
        self._matcher = TextMatcher(films)  # no reference back to the engine, so a dropped engine is freed at once

    @classmethod
    def from_artifacts(cls, paths: Mapping[str, str], config: Mapping[str, Any] | None = None) -> Engine:
        """The engine of a logged model: `paths` as MLflow hands them to `load_context`, `config` its model config."""
        movies, index, people, neighbours, encoder_dir = read_artifacts(paths)

        def load_encoder() -> Encode:
            from model.encoder import encode, load_encoder

            encoder = load_encoder(encoder_dir, device="cpu")
            return lambda texts: encode(encoder, texts)

        films = Films(movies, index, people, read_vectors(paths))
        return cls(
            films,
            Ranking.from_config(config),
            info=config,
            load_encoder=load_encoder,
            neighbours=neighbours,
            engagement=read_engagement(paths),
        )

    def with_ranking(self, ranking: Ranking) -> Engine:
        """The same films under other weights (for tuning), ranking every query live; shares the encoder and what
        was learned from engagement."""
        other = Engine(self.films, ranking, self.info, self._load_encoder, engagement=self.engagement)
        other._encode = self._encode
        return other

    def warm_up(self, then: Callable[[], None] | None = None) -> threading.Thread | None:
        """Load the encoder in the background (a free-text query arriving meanwhile waits for it), then call `then`,
        unless RECOMMENDER_WARM_UP=false."""
        if os.environ.get(WARM_UP_ENV, "true").strip().lower() in ("false", "0", "no"):
            return None

        def load() -> None:
            self.encode(["warm-up"])
            if then is not None:
                then()

        thread = threading.Thread(target=load, name="encoder-warm-up", daemon=True)
        thread.start()
        return thread

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of free texts, (len(texts), dim); loads the encoder on first use."""
        with self._encoder_lock:
            if self._encode is None:
                if self._load_encoder is None:
                    raise RuntimeError("this engine has no encoder")
                self._encode = self._load_encoder()
        return self._encode(texts)

    # --- the three modes -------------------------------------------------------------------------------------

    def recommend(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One record per query, in order: status, reason, query, liked, disliked, unresolved, suggestions,
        recommendations (and offset, top_n when ok)."""
        return [self._recommend(query) for query in queries]

    def search(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """Title search per query: `title` is the text, `top_n` the number of results."""
        answers = []
        for query in queries:
            limit = query.top_n or DEFAULT_SEARCH
            reason = search_reason(query.title, limit)
            if reason:
                answers.append(_result(STATUS_INVALID, reason=reason))
                continue
            hits = self.films.resolver.search(query.title or "", limit)
            results = [{**self.films.brief(row), "match_score": round(score, 1)} for row, score in hits]
            answers.append({"status": STATUS_OK, "reason": None, "results": results})
        return answers

    def details(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One film's full record per query `id`."""
        answers = []
        for query in queries:
            row = self.films.row(query.id) if query.id is not None else None
            if query.id is None:
                answers.append(_result(STATUS_INVALID, reason=ID_REQUIRED))
            elif row is None:
                answers.append({"status": STATUS_NOT_FOUND, "reason": f"no film has id {query.id}", "film": None})
            else:
                answers.append({"status": STATUS_OK, "reason": None, "film": self._details(row)})
        return answers

    # --- recommend -------------------------------------------------------------------------------------------

    def _recommend(self, query: Query) -> dict[str, Any]:
        reason = invalid_reason(query)
        if reason:
            return _result(STATUS_INVALID, reason=reason)
        title, liked, disliked, excluded = self._resolve(query)
        unresolved = title.unresolved + liked.unresolved + disliked.unresolved + excluded.unresolved
        positive = list(dict.fromkeys(liked.rows + title.rows))  # the title weighs most: it comes last
        text = (query.query or "").strip()
        if not positive and not text:
            suggestions = next((u["suggestions"] for u in unresolved if u["suggestions"]), [])
            return _result(STATUS_UNKNOWN_TITLE, suggestions=suggestions, unresolved=unresolved)
        both = set(positive) & set(disliked.rows)
        if both:
            titles = ", ".join(sorted(self.films.records[row]["title"] for row in both))
            return _result(STATUS_INVALID, reason=LIKED_AND_DISLIKED.format(titles=titles))
        allowed, reason = self._filters(query)
        if reason:
            return _result(STATUS_INVALID, reason=reason)
        search = Search(
            liked=positive,
            disliked=disliked.rows,
            text=self.encode([text])[0] if text else None,
            allowed=allowed,
            banned=set(positive) | set(disliked.rows) | set(excluded.rows),
            top_n=query.top_n or DEFAULT_TOP_N,
            offset=query.offset or 0,
            diversity=query.diversity or 0.0,
        )
        ranked = self._precomputed(search) or rank(self.films, self.ranking, search, self.engagement)
        result = _result(STATUS_OK, unresolved=unresolved)
        result.update(
            query=title.films[0] if title.films else None,
            liked=liked.films,
            disliked=disliked.films,
            recommendations=self._records(ranked, positive, text, search.text),
            offset=search.offset,
            top_n=search.top_n,
        )
        return result

    def _precomputed(self, search: Search) -> Ranked | None:
        """The neighbour lists' answer when the query is one film and nothing that changes its ranking."""
        neighbours = self.neighbours
        plain = (
            neighbours is not None
            and len(search.liked) == 1
            and search.banned == set(search.liked)
            and search.text is None
            and search.allowed is None
            and not search.diversity
            and search.offset + search.top_n <= neighbours.rows.shape[1]
        )
        if not plain:
            return None
        assert neighbours is not None
        film, window = search.liked[0], slice(search.offset, search.offset + search.top_n)
        rows = neighbours.rows[film, window].tolist()
        end = rows.index(-1) if -1 in rows else len(rows)  # -1 pads the lists of a catalog smaller than their length
        scores = neighbours.scores[film, window].tolist()[:end]
        shared = neighbours.shared[film, window].tolist()[:end] if neighbours.shared is not None else None
        return Ranked(rows[:end], scores, shared)

    def _resolve(self, query: Query) -> list[Resolved]:
        """The films `title`, `liked`, `disliked` and `exclude` name, one `Resolved` per field in that order: each
        (id, title, year) as a catalog row (by id, else by title), or as unresolved with suggestions. The titles are
        resolved together: only the first `MAX_FUZZY_TITLES` that match no title exactly are matched fuzzily."""
        named = [("title", (None, query.title, query.year))] if query.title is not None else []
        named += [(name, film_parts(film)) for name in FILM_LISTS for film in getattr(query, name) or ()]
        ids = [film_id for _, (film_id, _, _) in named if film_id is not None]
        rows = self.films.find(np.asarray(ids, dtype=np.int64)).tolist() if ids else []
        by_id = (Resolution(row if row >= 0 else None, "id", 100.0) for row in rows)  # -1: no film has the id
        typed = [(title or "", year) for _, (film_id, title, year) in named if film_id is None]
        by_title = iter(self.films.resolver.resolve_many(typed, MAX_FUZZY_TITLES))
        resolved = {name: Resolved() for name in ("title", *FILM_LISTS)}
        placed: set[tuple[str, int]] = set()  # (field, row) of the films already in their field
        for name, (film_id, title, year) in named:
            found = next(by_id) if film_id is not None else next(by_title)
            row, target = found.position, resolved[name]
            if row is None:
                given = {k: v for k, v in (("id", film_id), ("title", title), ("year", year)) if v is not None}
                brief = [self.films.brief(p) for p in found.suggestions]
                target.unresolved.append({"field": name, "input": given, "suggestions": brief})
            elif (name, row) not in placed:
                placed.add((name, row))
                target.rows.append(row)
                target.films.append(
                    {**self.films.records[row], "matched": found.matched, "match_score": round(found.score, 1)}
                )
        return list(resolved.values())

    def _filters(self, query: Query) -> tuple[np.ndarray | None, str | None]:
        """Films the filters allow (None without filters), or the reason a filter cannot be used."""
        genres = self.films.genres
        wanted = [*(query.genres or []), *(query.exclude_genres or [])]
        unknown = sorted({g for g in wanted if genre_key(g) not in genres})
        if unknown:
            known = ", ".join(sorted(name for name, _ in genres.values()))
            return None, UNKNOWN_GENRES.format(unknown=", ".join(unknown), known=known)
        if not wanted and query.year_min is None and query.year_max is None and query.within is None:
            return None, None
        allowed = np.ones(len(self.films), dtype=bool)
        if query.genres:
            allowed &= np.logical_or.reduce([genres[genre_key(g)][1] for g in query.genres])
        for genre in query.exclude_genres or []:
            allowed &= ~genres[genre_key(genre)][1]
        years = self.films.years
        if query.year_min is not None:
            allowed &= years >= query.year_min
        if query.year_max is not None:
            allowed &= years <= query.year_max
        if query.within is not None:
            inside = np.zeros(len(self.films), dtype=bool)
            rows = self.films.find(np.asarray(query.within, dtype=np.int64))
            inside[rows[rows >= 0]] = True
            allowed &= inside
        return allowed, None

    def _records(
        self, ranked: Ranked, positive: list[int], text: str, vector: np.ndarray | None
    ) -> list[dict[str, Any]]:
        """Recommendation records: the film, its `score` and `because`."""
        shared = because(self.films, positive, ranked.rows, ranked.shared)
        matches = (
            self._matcher.matches(ranked.rows, text, vector, self.encode)
            if vector is not None
            else [None] * len(shared)
        )
        together = self._also_liked(positive, ranked.rows)
        for fields, match, also in zip(shared, matches, together, strict=True):
            fields["query_match"] = match
            fields["also_liked"] = also
        return [
            {**self.films.records[row], "score": round(score, 4), "because": fields}
            for row, score, fields in zip(ranked.rows, ranked.scores, shared, strict=True)
        ]

    def _also_liked(self, positive: list[int], rows: list[int]) -> list[dict[str, Any] | None]:
        """Per film: how many people who liked or clicked a query film (the one with the most) did so for it too."""
        if self.engagement is None or not self.ranking.engagement_weight:
            return [None] * len(rows)
        titles = self.films.records
        return [
            {"film": titles[query]["title"], "people": count} if count else None
            for query, count in self.engagement.together_counts(positive, rows)
        ]

    def _details(self, row: int) -> dict[str, Any]:
        movie = self.films.movies.iloc[row]
        record = dict(self.films.records[row])
        record["cast"] = list(movie["cast"])[:DETAIL_CAST]
        record["writers"] = list(movie["writers"])
        for column in DETAIL_NUMBERS:
            value = movie.get(column)
            record[column] = None if value is None or pd.isna(value) else float(value)
        return record


def _result(
    status: str,
    reason: str | None = None,
    suggestions: list[dict[str, Any]] | None = None,
    unresolved: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "reason": reason,
        "query": None,
        "liked": [],
        "disliked": [],
        "unresolved": unresolved or [],
        "suggestions": (suggestions or [])[:MAX_SUGGESTIONS],
        "recommendations": [],
    }
