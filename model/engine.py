"""The recommender itself: resolves query titles, retrieves with FAISS, re-ranks. No MLflow, no HTTP.

Ranking, for query films Q (one title, or several liked films, the later weighing more):

    score(film) = dense_weight        x cos(mean vector of Q, film vector)            [FAISS retrieves the pool]
                + (1 - dense_weight)  x cos(mean shared-people row of Q, film row)    [model/people.py]
                + prior_weight        x notability prior of the film                  [model/prior.py]
                - era_weight          x |film year - mean year of Q| / 10

FAISS retrieves the `pool` nearest films by embedding (restricted to `within` when given); the blend re-ranks that
pool exactly. A title query uses the film's stored vectors: nothing is encoded. Outcomes are values: each query
gives a record with `status` ok / unknown_title / invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import faiss
import numpy as np
import pandas as pd
from scipy import sparse

from model.artifacts import read_artifacts
from model.index import MISSING_ID, index_contents
from model.resolve import Resolution, TitleResolver
from model.schema import (
    DEFAULT_TOP_N,
    STATUS_INVALID,
    STATUS_OK,
    STATUS_UNKNOWN_TITLE,
    Query,
    invalid_reason,
)

RESPONSE_CAST = 10  # names per film in a response; the stored cast is ranked best-known first


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
    """Catalog ids best first, with their scores."""

    ids: list[int]
    scores: list[float]


class Recommender:
    """Films similar to query films, over one catalog, its FAISS index and its shared-people matrix."""

    def __init__(
        self,
        movies: pd.DataFrame,
        index: faiss.IndexIDMap2,
        people: sparse.csr_matrix,
        ranking: Ranking = Ranking(),
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.movies = movies.reset_index(drop=True)
        self.index = index
        self.ranking = ranking
        self.info = dict(info or {})
        ids = self.movies["id"].to_numpy(dtype=np.int64)
        self._ids = ids
        self._sorter = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._sorter]
        vector_ids, vectors = index_contents(index)
        if len(vector_ids) != len(ids) or not np.array_equal(np.sort(vector_ids), self._sorted_ids):
            raise ValueError("the index must hold exactly one vector per catalog id")
        if np.array_equal(vector_ids, ids):  # the build adds vectors in catalog order: use the index's memory
            self._vectors = vectors
        else:
            by_id = vectors[np.argsort(vector_ids, kind="stable")]
            self._vectors = by_id[np.argsort(self._sorter, kind="stable")]
        if people.shape[0] != len(ids):
            raise ValueError(f"people matrix has {people.shape[0]} rows for {len(ids)} films")
        self._people = people.tocsr()
        self._prior = self.movies["prior"].to_numpy(dtype=np.float32) if "prior" in self.movies else np.zeros(len(ids))
        self._years = self.movies["year"].to_numpy(dtype=np.float64, na_value=np.nan)
        self._films = [_film_record(row) for row in self.movies.itertuples(index=False)]
        self.resolver = TitleResolver(
            self.movies["title"].tolist(), self.movies["year"].tolist(), self.movies["reviews"]
        )

    @classmethod
    def from_artifacts(cls, paths: Mapping[str, str], config: Mapping[str, Any] | None = None) -> Recommender:
        movies, index, people, _encoder = read_artifacts(paths)
        return cls(movies, index, people, Ranking.from_config(config), info=config)

    # --- lookups ---------------------------------------------------------------------------------------------

    def rows_of(self, film_ids: Iterable[int]) -> np.ndarray:
        """Catalog rows of catalog ids (every id must exist)."""
        wanted = np.asarray(list(film_ids), dtype=np.int64)
        found = np.searchsorted(self._sorted_ids, wanted)
        if len(wanted) and (found.max() >= len(self._sorted_ids) or (self._sorted_ids[found] != wanted).any()):
            raise KeyError(f"unknown catalog id(s) among {wanted[:5].tolist()}")
        return self._sorter[found]

    def film(self, film_id: int) -> dict[str, Any]:
        """The response record of one catalog film (a fresh dict the caller may extend)."""
        return dict(self._films[int(self.rows_of([film_id])[0])])

    def vector(self, film_id: int) -> np.ndarray:
        """The stored, normalised embedding of one catalog film, shape (dim,)."""
        return self._vectors[int(self.rows_of([film_id])[0])]

    # --- ranking ---------------------------------------------------------------------------------------------

    def rank(
        self,
        liked: Sequence[int],
        top_n: int,
        exclude: Iterable[int] = (),
        within: Sequence[int] | None = None,
    ) -> Ranked:
        """The `top_n` best films for query films `liked` (in order, later weighing more), never returning a query
        film or an `exclude`d one, and only films from `within` when given."""
        rows = self.rows_of(liked)
        weights = self.ranking.recency ** np.arange(len(rows) - 1, -1, -1, dtype=np.float64)
        weights /= weights.sum()
        dense = _unit(weights @ self._vectors[rows])
        people = _unit_row(sparse.csr_matrix(weights) @ self._people[rows])
        years = self._years[rows]
        known = ~np.isnan(years)
        era = float(weights[known] @ years[known] / weights[known].sum()) if known.any() else None
        banned = set(self._ids[rows].tolist()) | {int(i) for i in exclude}
        pool = self._pool(dense, top_n + len(banned), within)
        pool = pool[~np.isin(self._ids[pool], list(banned))]
        scores = self._blend(pool, dense, people, era)
        order = np.lexsort((self._ids[pool], -scores))[:top_n]  # ties by id: stable between calls
        return Ranked(self._ids[pool[order]].tolist(), scores[order].tolist())

    def _pool(self, dense: np.ndarray, needed: int, within: Sequence[int] | None) -> np.ndarray:
        """Rows of the films FAISS finds nearest to `dense`: at least `needed`, usually `ranking.pool`."""
        size = len(within) if within is not None else self.index.ntotal
        k = min(max(self.ranking.pool, needed), size)
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        params = None
        if within is not None:
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(np.asarray(within, dtype=np.int64))
        _, ids = self.index.search(dense.reshape(1, -1).astype(np.float32), k, params=params)
        found = ids[0][ids[0] != MISSING_ID]
        return self.rows_of(found)

    def _blend(self, rows: np.ndarray, dense: np.ndarray, people: sparse.csr_matrix, era: float | None) -> np.ndarray:
        weights = self.ranking
        score = weights.dense_weight * (self._vectors[rows] @ dense)
        if weights.dense_weight < 1 and people.nnz:
            shared = (self._people[rows] @ people.T).toarray().ravel()
            score += (1 - weights.dense_weight) * shared
        score += weights.prior_weight * self._prior[rows]
        if era is not None and weights.era_weight:
            gap = np.abs(self._years[rows] - era) / 10
            score -= weights.era_weight * np.nan_to_num(gap, nan=0.0)
        return score.astype(np.float64)

    # --- predict ---------------------------------------------------------------------------------------------

    def recommend(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One result record per query, in order: status, reason, query, suggestions, recommendations."""
        return [self._answer(query) for query in queries]

    def _answer(self, query: Query) -> dict[str, Any]:
        reason = invalid_reason(query)
        if reason:
            return _result(STATUS_INVALID, reason=reason)
        resolution = self.resolver.resolve(query.title or "", query.year)
        if resolution.position is None:
            return _result(STATUS_UNKNOWN_TITLE, suggestions=self._suggestions(resolution))
        film_id = int(self._ids[resolution.position])
        ranked = self.rank([film_id], query.top_n or DEFAULT_TOP_N)
        result = _result(STATUS_OK, query=self._query_film(film_id, resolution))
        result["recommendations"] = [
            {**self._films[int(row)], "score": round(score, 4)}
            for row, score in zip(self.rows_of(ranked.ids), ranked.scores, strict=True)
        ]
        return result

    def _query_film(self, film_id: int, resolution: Resolution) -> dict[str, Any]:
        record = self.film(film_id)
        record["matched"] = resolution.matched
        record["match_score"] = round(resolution.score, 1)
        return record

    def _suggestions(self, resolution: Resolution) -> list[dict[str, Any]]:
        keep = ("id", "title", "year")
        return [{key: self._films[p][key] for key in keep} for p in resolution.suggestions]


def _unit_row(row: sparse.csr_matrix) -> sparse.csr_matrix:
    norm = float(np.sqrt(row.multiply(row).sum()))
    return row / norm if norm > 0 else row


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def _result(
    status: str,
    reason: str | None = None,
    query: dict[str, Any] | None = None,
    suggestions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "reason": reason,
        "query": query,
        "suggestions": suggestions or [],
        "recommendations": [],
    }


def _film_record(row: Any) -> dict[str, Any]:
    year = row.year
    return {
        "id": int(row.id),
        "title": row.title,
        "year": None if pd.isna(year) else int(year),
        "genres": list(row.genres),
        "directors": list(row.directors),
        "cast": list(row.cast)[:RESPONSE_CAST],
        "cover_url": row.cover_url if isinstance(row.cover_url, str) and row.cover_url else None,
    }
