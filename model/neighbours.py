"""Precomputed neighbours: each film's best `k` recommendations as a one-film query, computed at build time.

A query for one film and nothing else (no filters, free text, dislikes or diversity, `offset + top_n <= k`) is then
a lookup instead of a search (model/engine.py). The lists rank as the live search does (model/ranking.py): the
`ranking.pool` films nearest by embedding, the query film left out, re-ranked by the same `blend`, ties to the
lower id; the two agree up to float32 rounding of near-equal scores.

Two steps, so that a rebuild redoes only what changed:
1. Dense pools (`dense_pools`): each film's nearest films by inner product, a little deeper than the ranking's
   pool. The model's index finds them in batches (with an approximate index, approximately, as a live query's
   pool); given the previous build's pools, a film whose vector did not change keeps its pool, minus films that
   changed or left, plus changed and added films that come closer than its pool's farthest member (the same films a
   full search would find), and only the rest are searched.
2. The blend (`precompute_neighbours`): every film's pool re-ranked. This runs for every film on every build: the
   people weights (idf) and the prior are catalog-wide, so one added film can move every score a little. Beside
   each entry goes its `shared_fields` mask, so that explaining a looked-up answer walks only the fields shared.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import sparse

from model.engagement import Engagement
from model.explain import shared_fields
from model.films import Films
from model.index import MISSING_ID, search, stores_vectors
from model.ranking import Ranking, blend

DEFAULT_K = 100
POOL_MARGIN = 64  # pools are kept this much deeper than the ranking needs, so films leaving one rarely empty it
MAX_FRESH_SHARE = 0.25  # above this share of changed or added films, searching every film again is cheaper


class Neighbours(NamedTuple):
    """Each film's precomputed recommendations, one row per catalog row, best first."""

    rows: np.ndarray  # int32 (n, k) catalog rows; -1 pads the end of a list when the catalog has fewer films
    scores: np.ndarray  # float32 (n, k)
    shared: np.ndarray | None = None  # uint8 (n, k): each entry's model.explain.shared_fields mask with its film


@dataclass(frozen=True)
class DensePools:
    """Each film's nearest films by inner product (itself included), for one catalog in row order.

    `rows[i]` and `sims[i]` are catalog rows and their inner products with film i, unordered, padded with -1 and
    -inf. With an exact index a pool is exact: it holds every film nearer than its farthest member (all films when it
    has them all); with an approximate one, what its search finds. The inner products are exact either way.
    `keys` fingerprint each film's vector, so the next build can tell which films kept theirs.
    """

    ids: np.ndarray  # int64 (n,) catalog ids
    keys: np.ndarray  # uint64 (n,) digests of the vectors
    rows: np.ndarray  # int32 (n, depth)
    sims: np.ndarray  # float32 (n, depth)


def vector_keys(vectors: np.ndarray) -> np.ndarray:
    """A 64-bit digest of each row's bytes: equal keys mean, for all practical purposes, an unchanged vector."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in vectors)
    return np.frombuffer(digests, dtype=np.uint64).copy()


def dense_pools(
    films: Films, ranking: Ranking, previous: DensePools | None = None, margin: int = POOL_MARGIN, chunk: int = 512
) -> tuple[DensePools, int]:
    """Pools of what the blend takes plus `margin` films (fewer in a smaller catalog) for every film, and how many
    were carried over from `previous` instead of searched."""
    ids, vectors = films.ids, films.vectors
    n = len(ids)
    need = _need(films, ranking)
    depth = min(need + margin, n)
    keys = vector_keys(vectors)
    rows = np.full((n, depth), -1, dtype=np.int32)
    sims = np.full((n, depth), -np.inf, dtype=np.float32)
    carried = np.zeros(n, dtype=bool)
    if previous is not None and len(previous.ids) and n:
        carried = _carry_over(previous, ids, keys, vectors, need, rows, sims)
    todo = np.flatnonzero(~carried)
    exact_scores = stores_vectors(films.index)
    for start in range(0, len(todo), chunk):
        queries = todo[start : start + chunk]
        found_sims, found = search(films.index, vectors[queries], depth)
        found_rows = np.where(found != MISSING_ID, films.find(found), -1)
        if not exact_scores:  # the index's scores are approximate; the blend takes exact ones
            found_sims = _inner_products(vectors, queries, found_rows)
        rows[queries] = found_rows
        sims[queries] = np.where(found_rows >= 0, found_sims, -np.inf)
    return DensePools(ids.astype(np.int64), keys, rows, sims), int(carried.sum())


def _inner_products(vectors: np.ndarray, queries: np.ndarray, rows: np.ndarray, chunk: int = 16) -> np.ndarray:
    """(len(queries), width) float32: each query row's vector times those of its `rows` (-1: -inf)."""
    products = np.empty(rows.shape, dtype=np.float32)
    for start in range(0, len(queries), chunk):
        part = slice(start, start + chunk)
        pooled = vectors[np.maximum(rows[part], 0)]  # (chunk, width, dim)
        products[part] = np.matmul(pooled, vectors[queries[part]][:, :, None])[:, :, 0]
    return np.where(rows >= 0, products, -np.inf).astype(np.float32)


def _carry_over(
    previous: DensePools,
    ids: np.ndarray,
    keys: np.ndarray,
    vectors: np.ndarray,
    need: int,
    rows: np.ndarray,
    sims: np.ndarray,
    chunk: int = 2048,
) -> np.ndarray:
    """Fill the pools of films whose id and vector are unchanged since `previous` and whose pool stays exact and
    at least `need` deep; returns which films were filled."""
    n, depth = rows.shape
    order = np.argsort(previous.ids, kind="stable")
    slots = np.clip(np.searchsorted(previous.ids[order], ids), 0, len(order) - 1)
    before = order[slots]  # previous row of each film, where the same id and vector were there
    same = (previous.ids[before] == ids) & (previous.keys[before] == keys)
    fresh = np.flatnonzero(~same)
    filled = np.zeros(n, dtype=bool)
    if len(fresh) > MAX_FRESH_SHARE * n:
        return filled
    now = np.full(len(previous.ids), -1, dtype=np.int64)  # row in this catalog of each previous film kept
    now[before[same]] = np.flatnonzero(same)
    fresh_vectors = vectors[fresh].T
    kept = np.flatnonzero(same)

    def carry(start: int) -> None:
        chunk_rows = kept[start : start + chunk]
        old = previous.rows[before[chunk_rows]]
        old_sims = previous.sims[before[chunk_rows]]
        known = old >= 0
        # Beyond its farthest member a pool knows nothing: a fresh film counts only if it comes nearer than that,
        # unless the pool held every film of the previous catalog.
        whole = known.sum(axis=1) == len(previous.ids)
        horizon = np.where(whole, -np.inf, np.where(known, old_sims, np.inf).min(axis=1))
        mapped = np.where(known, now[np.maximum(old, 0)], -1)
        candidate_rows = np.concatenate([mapped, np.broadcast_to(fresh, (len(chunk_rows), len(fresh)))], axis=1)
        candidate_sims = np.concatenate(
            [np.where(mapped >= 0, old_sims, -np.inf), vectors[chunk_rows] @ fresh_vectors], axis=1
        ).astype(np.float32)
        candidate_sims[:, old.shape[1] :][candidate_sims[:, old.shape[1] :] < horizon[:, None]] = -np.inf
        if candidate_sims.shape[1] > depth:
            top = np.argpartition(-candidate_sims, depth - 1, axis=1)[:, :depth]
            candidate_rows = np.take_along_axis(candidate_rows, top, axis=1)
            candidate_sims = np.take_along_axis(candidate_sims, top, axis=1)
        width = candidate_sims.shape[1]
        valid = np.isfinite(candidate_sims)
        ok = valid.sum(axis=1) >= need
        rows[chunk_rows[ok], :width] = np.where(valid[ok], candidate_rows[ok], -1)
        sims[chunk_rows[ok], :width] = np.where(valid[ok], candidate_sims[ok], -np.inf)
        filled[chunk_rows[ok]] = True

    _in_parallel(carry, range(0, len(kept), chunk))
    return filled


def precompute_neighbours(
    films: Films,
    ranking: Ranking,
    k: int = DEFAULT_K,
    pools: DensePools | None = None,
    chunk: int = 512,
    engagement: Engagement | None = None,
) -> Neighbours:
    """Each film's `k` best recommendations, best first; -1 / -inf pad the lists of a catalog of `k` films or
    fewer. `pools` (from `dense_pools`) saves searching them again; `engagement` adds its term and its films."""
    n = len(films)
    k = min(k, n - 1)
    rows_out = np.full((n, max(k, 0)), -1, dtype=np.int32)
    scores_out = np.full((n, max(k, 0)), -np.inf, dtype=np.float32)
    shared_out = np.zeros((n, max(k, 0)), dtype=np.uint8)
    if k <= 0:
        return Neighbours(rows_out, scores_out, shared_out)
    if pools is None:
        pools, _ = dense_pools(films, ranking, margin=0, chunk=chunk)

    def fill(start: int) -> None:
        queries = np.arange(start, min(start + chunk, n))
        rows, scores = _rank_pools(films, ranking, queries, pools.rows[queries], pools.sims[queries], k, engagement)
        rows_out[queries, : rows.shape[1]] = rows
        scores_out[queries, : scores.shape[1]] = scores
        for query, found in zip(queries.tolist(), rows.tolist(), strict=True):
            found = found[: found.index(-1)] if -1 in found else found
            shared_out[query, : len(found)] = shared_fields(films, [query], found)

    _in_parallel(fill, range(0, n, chunk))
    return Neighbours(rows_out, scores_out, shared_out)


def _in_parallel(work: Callable[[int], None], starts: Iterable[int]) -> None:
    """Run `work` for every chunk start on a thread per core: the chunks write disjoint rows, and numpy, scipy
    and BLAS release the GIL for the heavy part of each."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for done in [pool.submit(work, start) for start in starts]:
            done.result()


def shared_people(people: sparse.csr_matrix, queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """(len(queries), pool width): query film i's people row times that of film `pool[i, j]`, pair by pair, so
    that the work and memory grow with the pools, not with the catalog."""
    width = pool.shape[1]
    pairs = people[np.repeat(queries, width)].multiply(people[pool.ravel()])
    return np.asarray(pairs.sum(axis=1), dtype=np.float64).reshape(len(queries), width)


def _rank_pools(
    films: Films,
    ranking: Ranking,
    queries: np.ndarray,
    pool: np.ndarray,
    similarity: np.ndarray,
    k: int,
    engagement: Engagement | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of the `k` best films of each query film's pool, vectorised over a chunk of query films:
    the nearest `ranking.pool` of the pool without the query film, joined by its co-engaged films (as the live
    search joins them), blended, best first by (score, id)."""
    need = _need(films, ranking)
    if pool.shape[1] > need:
        nearest = _nearest(similarity, pool, need)
        pool, similarity = np.take_along_axis(pool, nearest, axis=1), np.take_along_axis(similarity, nearest, axis=1)
    # Drop the query film itself (or, where the pool lacks it, the farthest film): exactly one per row.
    drop = pool == queries[:, None]
    lacking = ~drop.any(axis=1)
    drop[lacking, np.argmin(similarity[lacking], axis=1)] = True
    pool = pool[~drop].reshape(len(queries), -1)
    similarity = similarity[~drop].reshape(len(queries), -1)
    engaged = None
    if engagement is not None and ranking.engagement_weight:
        pool, similarity = _join_co_engaged(films, engagement, queries, pool, similarity)
        engaged = engagement.pairs(queries, pool, ranking.engagement_shrink)
    valid = pool >= 0
    safe = np.where(valid, pool, 0)
    has_people = (np.diff(films.people.indptr)[queries] > 0)[:, None]
    shared = shared_people(films.people, queries, safe) if ranking.dense_weight < 1 else None
    era = films.years[queries][:, None]
    score = blend(ranking, similarity, shared, films.prior[safe], films.years[safe], era, has_people, engaged)
    score = np.where(valid, score, -np.inf)
    order = _top(score, np.where(valid, films.ids[safe], np.iinfo(np.int64).max), k)
    rows = np.where(np.take_along_axis(valid, order, axis=1), np.take_along_axis(pool, order, axis=1), -1)
    return rows, np.take_along_axis(score, order, axis=1)


def _join_co_engaged(
    films: Films, engagement: Engagement, queries: np.ndarray, pool: np.ndarray, similarity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each pool joined by the films its query film is co-engaged with and the pool lacks (-1 pads), with their
    exact inner products: the candidates a live query for the film adds (model/ranking.py `co_engaged`)."""
    matrix = engagement.similarity
    lengths = np.diff(matrix.indptr)[queries]
    width = int(lengths.max(initial=0))
    if width == 0:
        return pool, similarity
    extra = np.full((len(queries), width), -1, dtype=np.int64)
    for i, query in enumerate(queries.tolist()):
        found = matrix.indices[matrix.indptr[query] : matrix.indptr[query + 1]]
        found = np.sort(found[~np.isin(found, pool[i])])
        extra[i, : len(found)] = found
    extra_sims = _inner_products(films.vectors, queries, extra)
    return np.concatenate([pool, extra.astype(pool.dtype)], axis=1), np.concatenate([similarity, extra_sims], axis=1)


def _need(films: Films, ranking: Ranking) -> int:
    """How many nearest films the blend takes from a pool: the ranking's pool and the query film itself."""
    return min(ranking.pool + 1, len(films))


def _nearest(similarity: np.ndarray, rows: np.ndarray, need: int) -> np.ndarray:
    """Positions of each row's `need` largest similarities, unordered. A tie across the cut (films with equal
    vectors) goes to the lower catalog row: FAISS leaves it unspecified, and a full build and a rebuild must agree."""
    part = np.argpartition(-similarity, (need - 1, need), axis=1)
    cut = np.take_along_axis(similarity, part[:, need - 1 : need + 1], axis=1)
    nearest = part[:, :need]
    tied = np.flatnonzero(cut[:, 0] == cut[:, 1])
    if len(tied):
        order = np.where(rows[tied] >= 0, rows[tied], np.iinfo(np.int32).max)
        nearest[tied] = np.lexsort((order, -similarity[tied]), axis=-1)[:, :need]
    return nearest


def _top(score: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of each row's `k` best by score, ties to the lower id, best first. Sorts a short list per row
    found by partition, and the whole row only where ties straddle that list's end."""
    width = score.shape[1]
    short = k + 32
    if width <= short:
        return np.lexsort((ids, -score), axis=-1)[:, :k]
    part = np.argpartition(-score, short, axis=1)
    candidates = part[:, :short]
    outside_best = np.take_along_axis(score, part[:, short : short + 1], axis=1)[:, 0]  # best score left out
    order = np.lexsort(
        (np.take_along_axis(ids, candidates, axis=1), -np.take_along_axis(score, candidates, axis=1)), axis=-1
    )[:, :k]
    order = np.take_along_axis(candidates, order, axis=1)
    last_kept = np.take_along_axis(score, order[:, -1:], axis=1)[:, 0]
    unsure = np.flatnonzero(last_kept <= outside_best)
    if len(unsure):
        order[unsure] = np.lexsort((ids[unsure], -score[unsure]), axis=-1)[:, :k]
    return order


def save_neighbours(path: str | os.PathLike[str], neighbours: Neighbours) -> None:
    np.savez(path, **{name: array for name, array in neighbours._asdict().items() if array is not None})


def load_neighbours(path: str | os.PathLike[str]) -> Neighbours:
    with np.load(path) as data:
        return Neighbours(data["rows"], data["scores"], data.get("shared"))
