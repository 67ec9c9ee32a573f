"""The recommender itself: resolves query titles and finds their nearest films. No MLflow, no HTTP.

A title query is answered from the film's stored vector (never re-encoded) with one batched FAISS search for all
rows of a call. Outcomes are values: each query gives a record with `status` ok / unknown_title / invalid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import faiss
import numpy as np
import pandas as pd

from model.artifacts import read_artifacts
from model.index import MISSING_ID, index_contents, search
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


class Recommender:
    """Films similar to a query film, over one catalog and its index."""

    def __init__(self, movies: pd.DataFrame, index: faiss.IndexIDMap2, info: Mapping[str, Any] | None = None) -> None:
        self.movies = movies.reset_index(drop=True)
        self.index = index
        self.info = dict(info or {})
        vector_ids, self._vectors = index_contents(index)
        self._vector_row = {int(i): row for row, i in enumerate(vector_ids)}
        self._row_of_id = {int(i): row for row, i in enumerate(self.movies["id"])}
        missing = set(self._row_of_id) - set(self._vector_row)
        if missing:
            raise ValueError(f"{len(missing)} catalog id(s) have no vector in the index, e.g. {sorted(missing)[:5]}")
        self._films = [_film_record(row) for row in self.movies.itertuples(index=False)]
        self.resolver = TitleResolver(
            self.movies["title"].tolist(), self.movies["year"].tolist(), self.movies["reviews"]
        )

    @classmethod
    def from_artifacts(cls, paths: Mapping[str, str], info: Mapping[str, Any] | None = None) -> Recommender:
        movies, index, _encoder = read_artifacts(paths)
        return cls(movies, index, info)

    def film(self, film_id: int) -> dict[str, Any]:
        """The response record of one catalog film (a fresh dict the caller may extend)."""
        return dict(self._films[self._row_of_id[film_id]])

    def vector(self, film_id: int) -> np.ndarray:
        """The stored, normalised vector of one catalog film, shape (dim,)."""
        return self._vectors[self._vector_row[film_id]]

    def recommend(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One result record per query, in order: status, reason, query, suggestions, recommendations."""
        results: list[dict[str, Any]] = []
        found: list[tuple[int, int, int]] = []  # (result slot, film id, top_n)
        for query in queries:
            reason = invalid_reason(query)
            if reason:
                results.append(_result(STATUS_INVALID, reason=reason))
                continue
            resolution = self.resolver.resolve(query.title or "", query.year)
            if resolution.position is None:
                results.append(_result(STATUS_UNKNOWN_TITLE, suggestions=self._suggestions(resolution)))
                continue
            film_id = int(self.movies.at[resolution.position, "id"])
            results.append(_result(STATUS_OK, query=self._query_film(film_id, resolution)))
            found.append((len(results) - 1, film_id, query.top_n or DEFAULT_TOP_N))
        if found:
            self._fill_neighbours(results, found)
        return results

    def _fill_neighbours(self, results: list[dict[str, Any]], found: list[tuple[int, int, int]]) -> None:
        vectors = np.stack([self.vector(film_id) for _, film_id, _ in found])
        k = min(max(top_n for _, _, top_n in found) + 1, self.index.ntotal)
        scores, ids = search(self.index, vectors, k)
        for (slot, film_id, top_n), row_scores, row_ids in zip(found, scores, ids, strict=False):
            results[slot]["recommendations"] = self._neighbours(film_id, row_ids, row_scores, top_n)

    def _neighbours(self, query_id: int, ids: np.ndarray, scores: np.ndarray, top_n: int) -> list[dict[str, Any]]:
        picked: list[dict[str, Any]] = []
        for film_id, score in zip(ids.tolist(), scores.tolist(), strict=False):
            if film_id in (query_id, MISSING_ID):
                continue
            record = self.film(film_id)
            record["score"] = round(score, 4)
            picked.append(record)
            if len(picked) == top_n:
                break
        return picked

    def _query_film(self, film_id: int, resolution: Resolution) -> dict[str, Any]:
        record = self.film(film_id)
        record["matched"] = resolution.matched
        record["match_score"] = round(resolution.score, 1)
        return record

    def _suggestions(self, resolution: Resolution) -> list[dict[str, Any]]:
        keep = ("id", "title", "year")
        return [{key: self._films[p][key] for key in keep} for p in resolution.suggestions]


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
