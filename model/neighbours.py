"""Precomputed neighbours: each film's best `k` recommendations as a single-film query, computed at build time.

A request for one known title (no filters, no free text, no dislikes, no diversity, `offset + top_n <= k`) is then
a lookup instead of a search. The lists are computed the way `Recommender` ranks a one-film query: FAISS retrieves
the `ranking.pool` nearest films (one batched search per chunk of films), the blend re-ranks them, ties go to the
lower id. Beyond the first `k`, and for every other kind of request, ranking stays live; the two agree up to
float32 rounding of near-equal scores.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import faiss
import numpy as np

if TYPE_CHECKING:
    from model.engine import Recommender

logger = logging.getLogger(__name__)

DEFAULT_K = 100


def precompute_neighbours(
    recommender: Recommender, k: int = DEFAULT_K, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """(rows int32 (n, k), scores float32 (n, k)) per catalog row, best first; -1 / -inf pad short catalogs."""
    n = len(recommender.movies)
    k = min(k, n - 1)
    rows_out = np.full((n, max(k, 0)), -1, dtype=np.int32)
    scores_out = np.full((n, max(k, 0)), -np.inf, dtype=np.float32)
    if k <= 0:
        return rows_out, scores_out
    for start in range(0, n, chunk):
        queries = np.arange(start, min(start + chunk, n))
        _fill(recommender, queries, k, rows_out, scores_out)
    return rows_out, scores_out


def _fill(recommender: Recommender, queries: np.ndarray, k: int, rows_out: np.ndarray, scores_out: np.ndarray) -> None:
    """One chunk, vectorised: FAISS pool per query (the query film dropped), blend, top `k` by (score, id)."""
    ranking = recommender.ranking
    vectors, people, ids = recommender._vectors, recommender._people, recommender._ids
    pool_size = min(ranking.pool + 1, recommender.index.ntotal)
    # The flat index inside the id map answers with vector positions: mapping them to rows is one gather.
    flat = faiss.downcast_index(recommender.index.index)
    dense, found = flat.search(np.ascontiguousarray(vectors[queries]), pool_size)
    pool = np.where(found >= 0, recommender._row_of_vector[np.maximum(found, 0)], -1)
    # Drop the query film itself (or, when FAISS did not return it, the last and farthest film).
    drop = pool == queries[:, None]
    drop[~drop.any(axis=1), -1] = True
    kept = np.argsort(drop, axis=1, kind="stable")[:, : pool_size - 1]
    pool = np.take_along_axis(pool, kept, axis=1)
    similarity = np.take_along_axis(dense, kept, axis=1).astype(np.float64)
    valid = pool >= 0
    safe = np.where(valid, pool, 0)
    has_people = (np.diff(people.indptr)[queries] > 0)[:, None]
    weight = np.where(has_people, ranking.dense_weight, 1.0)
    score = weight * similarity
    if ranking.dense_weight < 1:
        shared = (people[queries] @ people.T).toarray()
        score += np.where(has_people, (1 - weight) * np.take_along_axis(shared, safe, axis=1), 0.0)
    score += ranking.prior_weight * recommender._prior[safe]
    if ranking.era_weight:
        years = recommender._years
        gap = np.abs(years[safe] - years[queries][:, None]) / 10
        score -= ranking.era_weight * np.nan_to_num(gap, nan=0.0)
    score = np.where(valid, score, -np.inf)
    order = np.lexsort((np.where(valid, ids[safe], np.iinfo(np.int64).max), -score), axis=-1)[:, :k]
    rows_out[queries, : order.shape[1]] = np.where(
        np.take_along_axis(valid, order, axis=1), np.take_along_axis(pool, order, axis=1), -1
    )
    scores_out[queries, : order.shape[1]] = np.take_along_axis(score, order, axis=1)


def load_neighbours(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return data["rows"], data["scores"]
