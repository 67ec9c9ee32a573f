"""The recommender itself: resolves query films, retrieves with FAISS, re-ranks. No MLflow, no HTTP.

A request names query films (`title`, `liked`: the later weighing more), films to push away (`disliked`) and/or
free text (`query`). Their vectors combine into one query; then

    score(film) = dense_weight        x cos(query embedding, film embedding)        [FAISS retrieves the pool]
                + (1 - dense_weight)  x cos(query people row, film people row)      [model/people.py]
                + prior_weight        x notability prior of the film                [model/prior.py]
                - era_weight          x |film year - query films' year| / 10

(without query films there is no people row and no year: the embedding takes the whole similarity weight).
FAISS retrieves the `pool` nearest films by embedding among the films the filters allow (an id selector, so a
filter never starves the list); the blend re-ranks that pool exactly; `diversity` re-ranks it again by maximal
marginal relevance; `offset` pages through the result. Title queries use stored vectors: only free text is
encoded. Outcomes are values: each query gives a record whose `status` is ok / unknown_title / invalid.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import faiss
import numpy as np
import pandas as pd
from scipy import sparse

from model.artifacts import NEIGHBOURS, read_artifacts
from model.index import MISSING_ID, index_contents
from model.neighbours import Neighbours, load_neighbours
from model.resolve import MAX_SUGGESTIONS, Resolution, TitleResolver
from model.schema import (
    DEFAULT_TOP_N,
    EXPLAINED_FIELDS,
    ID_REQUIRED,
    LIKED_AND_DISLIKED,
    MAX_SEARCH,
    SEARCH_REQUIRED,
    STATUS_INVALID,
    STATUS_NOT_FOUND,
    STATUS_OK,
    STATUS_UNKNOWN_TITLE,
    UNKNOWN_GENRES,
    FilmRef,
    Query,
    invalid_reason,
    plain_reason,
)

RESPONSE_CAST = 10  # names per film in a response; the stored cast is ranked best-known first
DETAIL_CAST = 30
DISLIKE_WEIGHT = 0.5  # how hard disliked films push, relative to the liked films' pull
WARM_UP_ENV = "RECOMMENDER_WARM_UP"  # "false": a loaded model loads its encoder at the first free-text query

Encode = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Ranking:
    """Weights of the final score (see the module docstring); build parameters, chosen by evaluation."""

    dense_weight: float = 0.5
    prior_weight: float = 0.025
    era_weight: float = 0.08
    recency: float = 0.7  # weight ratio between consecutive liked films, the last weighing most
    pool: int = 1000  # films retrieved by FAISS before re-ranking

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Ranking:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in (config or {}).items() if key in known})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Ranked:
    """Catalog rows best first, with their scores."""

    rows: list[int]
    scores: list[float]


@dataclass
class Resolved:
    """Films a request named, resolved to catalog rows, and what could not be resolved."""

    rows: list[int] = field(default_factory=list)
    films: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Search:
    """Everything `_search` needs: query films (in order), pushed-away films, free text, allowed films."""

    liked: list[int]
    disliked: list[int]
    text: np.ndarray | None
    allowed: np.ndarray | None  # bool per row; None: every film not banned
    banned: set[int]
    top_n: int
    offset: int = 0
    diversity: float = 0.0


class Recommender:
    """Films for query films and/or free text, over one catalog, its FAISS index and its shared-people matrix."""

    def __init__(
        self,
        movies: pd.DataFrame,
        index: faiss.IndexIDMap2,
        people: sparse.csr_matrix,
        ranking: Ranking = Ranking(),
        info: Mapping[str, Any] | None = None,
        encoder: Callable[[], Encode] | None = None,
        neighbours: Neighbours | tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        with collector_paused():  # a few hundred thousand objects, none of them garbage
            self.movies = movies.reset_index(drop=True)
            self.index = index
            self.ranking = ranking
            self.info = dict(info or {})
            self._load_encoder = encoder
            self._encode: Encode | None = None
            self._encoder_lock = threading.Lock()
            ids = self.movies["id"].to_numpy(dtype=np.int64)
            self._ids = ids
            self._sorter = np.argsort(ids, kind="stable")
            self._sorted_ids = ids[self._sorter]
            vector_ids, vectors = index_contents(index)
            if len(vector_ids) != len(ids) or not np.array_equal(np.sort(vector_ids), self._sorted_ids):
                raise ValueError("the index must hold exactly one vector per catalog id")
            self._row_of_vector = self._find(vector_ids)  # movie row of each stored vector, by id
            if np.array_equal(vector_ids, ids):  # the build adds vectors in catalog order: use the index's memory
                self._vectors = vectors
            else:
                self._vectors = vectors[np.argsort(vector_ids, kind="stable")][np.argsort(self._sorter, kind="stable")]
            if people.shape[0] != len(ids):
                raise ValueError(f"people matrix has {people.shape[0]} rows for {len(ids)} films")
            self._people = people.tocsr()
            self._prior = self.movies["prior"].to_numpy(np.float32) if "prior" in self.movies else np.zeros(len(ids))
            self._years = self.movies["year"].to_numpy(dtype=np.float64, na_value=np.nan)
            self._films = _film_records(self.movies)
            self._lists = {name: self.movies[name].tolist() for name in EXPLAINED_FIELDS}
            self._sets = {name: [frozenset(values) for values in lists] for name, lists in self._lists.items()}
            self._genre_vectors: tuple[list[str], np.ndarray] | None = None
            self._neighbours = _neighbours_for(neighbours, len(ids))
            self._genres = _genre_index(self.movies["genres"])
            self.resolver = TitleResolver(
                self.movies["title"].tolist(), self.movies["year"].tolist(), self.movies["reviews"]
            )

    @classmethod
    def from_artifacts(cls, paths: Mapping[str, str], config: Mapping[str, Any] | None = None) -> Recommender:
        with collector_paused():
            movies, index, people, encoder_dir = read_artifacts(paths)
        neighbours = load_neighbours(paths[NEIGHBOURS]) if NEIGHBOURS in paths else None

        def load_encoder() -> Encode:
            from model.encoder import text_encoder

            return text_encoder(encoder_dir)

        ranking = Ranking.from_config(config)
        return cls(movies, index, people, ranking, info=config, encoder=load_encoder, neighbours=neighbours)

    def with_ranking(self, ranking: Ranking) -> Recommender:
        """The same catalog and artifacts under other weights (for tuning); shares the encoder."""
        # Precomputed neighbours belong to the build's weights: the variant ranks every query live.
        other = Recommender(self.movies, self.index, self._people, ranking, self.info, self._load_encoder)
        other._encode = self._encode
        return other

    def warm_up(self) -> threading.Thread | None:
        """Load the encoder in the background; a free-text request arriving meanwhile waits for it. Not when
        `RECOMMENDER_WARM_UP=false`: then the first free-text query loads it (the build sets this while MLflow
        loads the model to log it)."""
        if os.environ.get(WARM_UP_ENV, "true").strip().lower() in ("false", "0", "no"):
            return None
        thread = threading.Thread(target=self.encode, args=(["warm-up"],), name="encoder-warm-up", daemon=True)
        thread.start()
        return thread

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of free texts, (len(texts), dim); loads the encoder on first use."""
        if self._encode is None:
            with self._encoder_lock:
                if self._encode is None:
                    if self._load_encoder is None:
                        raise RuntimeError("this recommender has no encoder")
                    self._encode = self._load_encoder()
        return self._encode(texts)

    # --- lookups ---------------------------------------------------------------------------------------------

    def rows_of(self, film_ids: Iterable[int]) -> np.ndarray:
        """Catalog rows of catalog ids (every id must exist)."""
        wanted = np.asarray(list(film_ids), dtype=np.int64)
        found = self._find(wanted)
        if (found < 0).any():
            raise KeyError(f"unknown catalog id(s) among {wanted[found < 0][:5].tolist()}")
        return found

    def film(self, film_id: int) -> dict[str, Any]:
        """The response record of one catalog film (a fresh dict the caller may extend)."""
        return dict(self._films[int(self.rows_of([film_id])[0])])

    def vector(self, film_id: int) -> np.ndarray:
        """The stored, normalised embedding of one catalog film, shape (dim,)."""
        return self._vectors[int(self.rows_of([film_id])[0])]

    def _find(self, wanted: np.ndarray) -> np.ndarray:
        """Rows of ids, -1 where an id is not in the catalog."""
        slots = np.clip(np.searchsorted(self._sorted_ids, wanted), 0, len(self._sorted_ids) - 1)
        hit = self._sorted_ids[slots] == wanted
        return np.where(hit, self._sorter[slots], -1)

    # --- modes -------------------------------------------------------------------------------------------------

    def recommend(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One result record per query, in order (see `_answer`)."""
        return [self._answer(query) for query in queries]

    def search(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """Title search: `title` is the text, `top_n` the number of results (default 10)."""
        answers = []
        for query in queries:
            limit = query.top_n or 10
            if not (query.title or "").strip() or not 1 <= limit <= MAX_SEARCH:
                answers.append(_result(STATUS_INVALID, reason=SEARCH_REQUIRED))
                continue
            hits = self.resolver.search(query.title or "", limit)
            results = [{**self._brief(row), "match_score": round(score, 1)} for row, score in hits]
            answers.append({"status": STATUS_OK, "reason": None, "results": results})
        return answers

    def details(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One film's full record per query `id`."""
        answers = []
        for query in queries:
            if query.id is None:
                answers.append(_result(STATUS_INVALID, reason=ID_REQUIRED))
                continue
            row = int(self._find(np.asarray([query.id]))[0])
            if row < 0:
                answers.append({"status": STATUS_NOT_FOUND, "reason": f"no film has id {query.id}", "film": None})
                continue
            answers.append({"status": STATUS_OK, "reason": None, "film": self._details(row)})
        return answers

    # --- recommend -------------------------------------------------------------------------------------------

    def _answer(self, query: Query) -> dict[str, Any]:
        """status, reason, query, liked, disliked, unresolved, suggestions, recommendations, offset, top_n."""
        if self._neighbours is not None and _plain(query, self._neighbours.rows.shape[1]):
            reason = plain_reason(query)
            return _result(STATUS_INVALID, reason=reason) if reason else self._answer_plain(query)
        reason = invalid_reason(query)
        if reason:
            return _result(STATUS_INVALID, reason=reason)
        title = self._resolve([FilmRef(title=query.title, year=query.year)], "title") if query.title else Resolved()
        liked = self._resolve(query.liked or [], "liked")
        disliked = self._resolve(query.disliked or [], "disliked")
        excluded = self._resolve(query.exclude or [], "exclude")
        unresolved = title.unresolved + liked.unresolved + disliked.unresolved + excluded.unresolved
        positive = list(dict.fromkeys(liked.rows + title.rows))  # the title weighs most: it comes last
        text = (query.query or "").strip()
        if not positive and not text:
            suggestions = next((u["suggestions"] for u in unresolved if u["suggestions"]), [])
            return _result(STATUS_UNKNOWN_TITLE, suggestions=suggestions, unresolved=unresolved)
        both = set(positive) & set(disliked.rows)
        if both:
            titles = ", ".join(sorted(self._films[row]["title"] for row in both))
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
        ranked = self._search(search)
        result = _result(STATUS_OK, unresolved=unresolved)
        result.update(
            query=title.films[0] if title.films else None,
            liked=liked.films,
            disliked=disliked.films,
            recommendations=self._explain(ranked, positive, search.text, text),
            offset=search.offset,
            top_n=search.top_n,
        )
        return result

    def _answer_plain(self, query: Query) -> dict[str, Any]:
        """The fast path: one title, no filters, text, dislikes or diversity: the precomputed neighbours."""
        assert self._neighbours is not None
        if query.title:
            found = self.resolver.resolve(query.title, query.year)  # the common case, without a FilmRef
            if found.position is None:
                resolved = self._resolve([FilmRef(title=query.title, year=query.year)], "title")
            else:
                film = self._films[found.position].copy()
                film.update(matched=found.matched, match_score=round(found.score, 1))
                resolved = Resolved([found.position], [film])
        else:
            resolved = self._resolve(query.liked or [], "liked")
        if not resolved.rows:
            suggestions = resolved.unresolved[0]["suggestions"] if resolved.unresolved else []
            return _result(STATUS_UNKNOWN_TITLE, suggestions=suggestions, unresolved=resolved.unresolved)
        row = resolved.rows[0]
        offset, top_n = query.offset or 0, query.top_n or DEFAULT_TOP_N
        neighbours, window = self._neighbours, slice(offset, offset + top_n)
        rows = neighbours.rows[row, window].tolist()
        scores = neighbours.scores[row, window].tolist()
        shared = neighbours.shared[row, window].tolist() if neighbours.shared is not None else None
        if -1 in rows:  # a list shorter than the catalog's films: -1 pads its end
            end = rows.index(-1)
            rows, scores, shared = rows[:end], scores[:end], shared[:end] if shared is not None else None
        ranked = Ranked(rows, scores)
        result = _result(STATUS_OK)
        result.update(
            query=resolved.films[0] if query.title else None,
            liked=[] if query.title else resolved.films,
            recommendations=self._explain(ranked, [row], None, shared=shared),
            offset=offset,
            top_n=top_n,
        )
        return result

    def rank(
        self,
        liked: Sequence[int],
        top_n: int,
        exclude: Iterable[int] = (),
        within: Sequence[int] | None = None,
    ) -> Ranked:
        """Rows of the `top_n` best films for query film ids `liked` (later weighing more): the ranking of a
        `liked` request with an `exclude` and a `within` filter, without resolving titles or explaining."""
        rows = self.rows_of(liked).tolist()
        allowed = None
        if within is not None:
            allowed = np.zeros(len(self._ids), dtype=bool)
            allowed[self.rows_of(within)] = True
        banned = set(rows) | set(self.rows_of(exclude).tolist())
        return self._search(Search(rows, [], None, allowed, banned, top_n))

    def _resolve(self, refs: Sequence[FilmRef], field: str) -> Resolved:
        resolved = Resolved()
        for ref in refs:
            if ref.id is not None:
                row = int(self._find(np.asarray([ref.id]))[0])
                resolution = Resolution(row if row >= 0 else None, "id" if row >= 0 else None, 100.0)
            else:
                resolution = self.resolver.resolve(ref.title or "", ref.year)
            given = ref.model_dump(exclude_none=True)
            if resolution.position is None:
                suggestions = [self._brief(p) for p in resolution.suggestions]
                resolved.unresolved.append({"field": field, "input": given, "suggestions": suggestions})
            elif resolution.position not in resolved.rows:
                resolved.rows.append(resolution.position)
                film = dict(self._films[resolution.position])
                film.update(matched=resolution.matched, match_score=round(resolution.score, 1))
                resolved.films.append(film)
        return resolved

    def _filters(self, query: Query) -> tuple[np.ndarray | None, str | None]:
        """Films the filters allow (None when there are no filters), or the reason a filter is unusable."""
        wanted = [*(query.genres or []), *(query.exclude_genres or [])]
        unknown = sorted({g for g in wanted if _genre_key(g) not in self._genres})
        if unknown:
            known = ", ".join(sorted(name for name, _ in self._genres.values()))
            return None, UNKNOWN_GENRES.format(unknown=", ".join(unknown), known=known)
        allowed = np.ones(len(self._ids), dtype=bool)
        if query.genres:
            allowed &= np.logical_or.reduce([self._genres[_genre_key(g)][1] for g in query.genres])
        for genre in query.exclude_genres or []:
            allowed &= ~self._genres[_genre_key(genre)][1]
        if query.year_min is not None:
            allowed &= self._years >= query.year_min
        if query.year_max is not None:
            allowed &= self._years <= query.year_max
        if query.within is not None:
            inside = np.zeros(len(self._ids), dtype=bool)
            rows = self._find(np.asarray(query.within, dtype=np.int64))
            inside[rows[rows >= 0]] = True
            allowed &= inside
        return (None if allowed.all() else allowed), None

    def _search(self, search: Search) -> Ranked:
        dense, people, era = self._query_vectors(search)
        pool = self._pool(dense, search)
        scores = self._blend(pool, dense, people, era)
        wanted = search.offset + search.top_n
        if search.diversity > 0:
            order = self._diversify(pool, scores, wanted, search.diversity)
        else:
            order = np.lexsort((self._ids[pool], -scores))[:wanted]  # ties by id: stable between calls and pages
        order = order[search.offset : wanted]
        return Ranked(pool[order].tolist(), scores[order].tolist())

    def _query_vectors(self, search: Search) -> tuple[np.ndarray, sparse.csr_matrix | None, float | None]:
        rows = np.asarray(search.liked, dtype=np.int64)
        dense = np.zeros(self._vectors.shape[1], dtype=np.float32)
        people, era = None, None
        if len(rows):
            weights = self.ranking.recency ** np.arange(len(rows) - 1, -1, -1, dtype=np.float64)
            weights /= weights.sum()
            dense = _unit(weights @ self._vectors[rows])
            people = sparse.csr_matrix(weights) @ self._people[rows]
            years = self._years[rows]
            known = ~np.isnan(years)
            era = float(weights[known] @ years[known] / weights[known].sum()) if known.any() else None
        if search.text is not None:
            dense = _unit(dense + search.text)
        if search.disliked:
            pushed = np.asarray(search.disliked, dtype=np.int64)
            dense = _unit(dense - DISLIKE_WEIGHT * self._vectors[pushed].mean(axis=0))
            if people is not None:
                people = people - DISLIKE_WEIGHT * sparse.csr_matrix(self._people[pushed].mean(axis=0))
        if people is not None:
            people = _unit_row(sparse.csr_matrix(people))
        return dense, (people if people is not None and people.nnz else None), era

    def _pool(self, dense: np.ndarray, search: Search) -> np.ndarray:
        """Rows FAISS finds nearest to `dense` among the allowed, unbanned films: `ranking.pool` of them (fewer
        only when fewer are allowed). The pool does not depend on `top_n` or `offset`, so pages never reshuffle."""
        query = dense.reshape(1, -1).astype(np.float32)
        if search.allowed is None:
            k = min(self.ranking.pool + len(search.banned), self.index.ntotal)
            _, ids = self.index.search(query, k)
            rows = self._find(ids[0][ids[0] != MISSING_ID])
            rows = rows[~np.isin(rows, list(search.banned))]
            return rows[: self.ranking.pool]
        allowed = search.allowed.copy()
        allowed[list(search.banned)] = False
        candidates = self._ids[allowed]
        if len(candidates) == 0:
            return np.empty(0, dtype=np.int64)
        params = faiss.SearchParameters()
        params.sel = faiss.IDSelectorBatch(candidates)
        _, ids = self.index.search(query, min(self.ranking.pool, len(candidates)), params=params)
        return self._find(ids[0][ids[0] != MISSING_ID])

    def _blend(
        self, rows: np.ndarray, dense: np.ndarray, people: sparse.csr_matrix | None, era: float | None
    ) -> np.ndarray:
        weights = self.ranking
        similarity_weight = weights.dense_weight if people is not None else 1.0
        score = similarity_weight * (self._vectors[rows] @ dense)
        if people is not None and similarity_weight < 1:
            score += (1 - similarity_weight) * (self._people[rows] @ people.T).toarray().ravel()
        score += weights.prior_weight * self._prior[rows]
        if era is not None and weights.era_weight:
            gap = np.abs(self._years[rows] - era) / 10
            score -= weights.era_weight * np.nan_to_num(gap, nan=0.0)
        return score.astype(np.float64)

    def _diversify(self, rows: np.ndarray, scores: np.ndarray, wanted: int, diversity: float) -> np.ndarray:
        """Maximal marginal relevance: each next film maximises (1 - diversity) x score - diversity x its highest
        cosine to the films already chosen. Returns positions into `rows`, in the chosen order."""
        vectors = self._vectors[rows]
        closest = np.full(len(rows), -np.inf)
        chosen: list[int] = []
        available = np.ones(len(rows), dtype=bool)
        for _ in range(min(wanted, len(rows))):
            penalty = np.where(np.isinf(closest), 0.0, closest)
            value = np.where(available, (1 - diversity) * scores - diversity * penalty, -np.inf)
            pick = int(np.argmax(value))
            chosen.append(pick)
            available[pick] = False
            closest = np.maximum(closest, vectors @ vectors[pick])
        return np.asarray(chosen, dtype=np.int64)

    # --- response records ------------------------------------------------------------------------------------

    def _explain(
        self,
        ranked: Ranked,
        positive: list[int],
        text: np.ndarray | None,
        query_text: str = "",
        shared: list[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Recommendation records with `score` and `because`: what each shares with the query films, and for free
        text the film field whose text is closest to it. `shared`: per film, which fields share anything (bit i:
        EXPLAINED_FIELDS[i], as precomputed with the neighbours); found here when not given."""
        films, lists, sets = self._films, self._lists, self._sets
        if len(positive) == 1:
            wanted = [sets[name][positive[0]] for name in EXPLAINED_FIELDS]
        else:
            wanted = [frozenset().union(*(sets[name][r] for r in positive)) for name in EXPLAINED_FIELDS]
        if shared is None:
            field_sets = [sets[name] for name in EXPLAINED_FIELDS]
            shared = [
                sum(1 << bit for bit, want in enumerate(wanted) if not field_sets[bit][row].isdisjoint(want))
                for row in ranked.rows
            ]
        closest = [None] * len(ranked.rows)
        if text is not None:
            closest = self._closest_fields(ranked.rows, _words(query_text), text)
        genres, directors, cast, writers = (lists[name] for name in EXPLAINED_FIELDS)
        with_genres, with_directors, with_cast, with_writers = wanted
        records = []
        for row, score, bits, field_match in zip(ranked.rows, ranked.scores, shared, closest, strict=True):
            record = films[row].copy()
            record["score"] = round(score, 4)
            # Only the fields a film shares are walked (most share a genre, few share people). Spelled out: a dict
            # literal costs less than a comprehension over EXPLAINED_FIELDS, on every film of every answer.
            record["because"] = {
                "genres": [v for v in genres[row] if v in with_genres] if bits & 1 else [],
                "directors": [v for v in directors[row] if v in with_directors] if bits & 2 else [],
                "cast": [v for v in cast[row] if v in with_cast] if bits & 4 else [],
                "writers": [v for v in writers[row] if v in with_writers] if bits & 8 else [],
                "query_match": field_match,
            }
            records.append(record)
        return records

    def _closest_fields(self, rows: list[int], words: set[str], text: np.ndarray) -> list[dict[str, str] | None]:
        """For free text, per film: a title or name that shares a word with the text, else the film's genre whose
        embedding is closest to the text. Nothing is encoded per film: genre embeddings are computed once."""
        genre_similarity = self._genre_similarity(text)
        matches: list[dict[str, str] | None] = []
        for row in rows:
            match = None
            for name in ("title", "directors", "cast", "writers"):
                values = [self._films[row]["title"]] if name == "title" else self._lists[name][row]
                hit = next((v for v in values if words & _words(v)), None)
                if hit:
                    match = {"field": name, "text": hit}
                    break
            if match is None and self._lists["genres"][row]:
                genre = max(self._lists["genres"][row], key=lambda g: genre_similarity.get(g, -1.0))
                match = {"field": "genres", "text": genre}
            matches.append(match)
        return matches

    def _genre_similarity(self, text: np.ndarray) -> dict[str, float]:
        if self._genre_vectors is None:
            names = sorted({name for name, _ in self._genres.values()})
            self._genre_vectors = (names, self.encode(names))
        names, vectors = self._genre_vectors
        return dict(zip(names, (vectors @ text).tolist(), strict=True))

    def _brief(self, row: int) -> dict[str, Any]:
        film = self._films[row]
        return {"id": film["id"], "title": film["title"], "year": film["year"], "genres": film["genres"]}

    def _details(self, row: int) -> dict[str, Any]:
        movie = self.movies.iloc[row]
        record = dict(self._films[row])
        record["cast"] = list(movie["cast"])[:DETAIL_CAST]
        record["writers"] = list(movie["writers"])
        for column in ("reviews", "rating", "metacritic", "box_office", "awards"):
            value = movie.get(column)
            record[column] = None if value is None or pd.isna(value) else float(value)
        return record


def _neighbours_for(neighbours: Neighbours | tuple[np.ndarray, ...] | None, n_films: int) -> Neighbours | None:
    """The precomputed lists when they cover this catalog (their shared-field bits when those match them)."""
    if neighbours is None or len(neighbours[0]) != n_films:
        return None
    found = Neighbours(*neighbours)
    if found.shared is not None and found.shared.shape != found.rows.shape:
        return found._replace(shared=None)
    return found


def _plain(query: Query, stored: int) -> bool:
    """One title (or one liked film) and nothing that changes the ranking: the neighbour lists answer it."""
    one_film = bool(query.title) != bool(query.liked) and len(query.liked or []) <= 1
    return (
        one_film
        and not (query.disliked or query.query or query.genres or query.exclude_genres or query.exclude)
        and query.year_min is None
        and query.year_max is None
        and query.within is None
        and not query.diversity
        and (query.offset or 0) + (query.top_n or DEFAULT_TOP_N) <= stored
    )


_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "film", "films", "movie", "movies", "in", "into",
     "is", "it", "of", "on", "or", "the", "to", "with", "about", "who", "that"}
)  # fmt: skip


def _words(text: str) -> set[str]:
    """Lower-case words of three letters or more, stopwords left out: what a free-text query and a name share."""
    return {
        w for w in "".join(ch if ch.isalnum() else " " for ch in text.casefold()).split() if len(w) > 2
    } - _STOPWORDS


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a model loads. Loading makes a few hundred thousand long-lived,
    acyclic objects (film records, their lists and sets, title keys); every few hundred of them set off a
    collection that walks the objects of the younger generations, and older passes walk everything built so far,
    MLflow's and the server's objects included. None of it is garbage. Restored as it was on the way out.
    `python -m benchmarks.startup` times a model load with the collector running and paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _genre_key(genre: str) -> str:
    return "".join(ch for ch in genre.casefold() if ch.isalnum())


def _genre_index(genres: pd.Series) -> dict[str, tuple[str, np.ndarray]]:
    """Normalised genre name → (catalog spelling, bool mask of films with it): "sci fi", "SciFi", "sci-fi" meet."""
    index: dict[str, tuple[str, np.ndarray]] = {}
    for row, names in enumerate(genres):
        for name in names:
            key = _genre_key(name)
            if key not in index:
                index[key] = (name, np.zeros(len(genres), dtype=bool))
            index[key][1][row] = True
    return index


def _unit_row(row: sparse.csr_matrix) -> sparse.csr_matrix:
    norm = float(np.sqrt(row.multiply(row).sum()))
    return row / norm if norm > 0 else row


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


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


def _film_records(movies: pd.DataFrame) -> list[dict[str, Any]]:
    """Each film's response fields, read column by column: `itertuples` over the catalog's pyarrow-backed columns
    takes over twice as long, on every model load."""
    columns = ("id", "title", "year", "genres", "directors", "cast", "cover_url")
    return [
        {
            "id": int(film_id),
            "title": title,
            "year": None if pd.isna(year) else int(year),
            "genres": list(genres),
            "directors": list(directors),
            "cast": list(cast)[:RESPONSE_CAST],
            "cover_url": cover if isinstance(cover, str) and cover else None,
        }
        for film_id, title, year, genres, directors, cast, cover in zip(
            *(movies[column].tolist() for column in columns), strict=True
        )
    ]
