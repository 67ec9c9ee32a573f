"""Ranking: the score that orders films, and the live search that applies it to one query.

Query films Q (later ones weighing more), films to push away D and free text T make one query; then

    score(film) = w               x cos(query embedding, film embedding)        [FAISS retrieves the pool]
                + (1 - w)         x cos(query people row, film people row)      [model/people.py]
                + prior_weight    x notability prior of the film                [model/prior.py]
                - era_weight      x |film year - query films' year| / 10
                + engagement_weight x co-engagement of the query films with the film   [model/engagement.py]

with w = dense_weight when the query has a people row, else 1 (free text alone has no people and no year). The last
term is there only in a model built from engagement, and is 0 for query films nobody engaged with: they rank as the
content model alone ranks them.
`blend` is that formula, for one query or many: the live search below and the precomputed neighbour lists
(model/neighbours.py) both call it. FAISS retrieves the `pool` films nearest by embedding among those the filters
allow, joined by the films the query films are co-engaged with; the blend re-ranks them exactly; `diversity`
re-ranks again by maximal marginal relevance; `offset` pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import sparse

from model.engagement import Engagement
from model.films import Films
from model.index import MISSING_ID
from model.index import search as search_index

DISLIKE_WEIGHT = 0.5  # how hard disliked films push, relative to the liked films' pull


@dataclass(frozen=True)
class Ranking:
    """Weights of the score (see the module docstring): build parameters, chosen with `tune`."""

    dense_weight: float = 0.5
    prior_weight: float = 0.025
    era_weight: float = 0.08
    recency: float = 0.7  # weight ratio between consecutive query films, the last weighing most
    pool: int = 1000  # films retrieved by FAISS before re-ranking
    engagement_weight: float = 4.0  # of co-engagement; nothing in a model built from content only
    engagement_shrink: float = 10.0  # people a film's co-engagement needs to count half (model/engagement.py)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Ranking:
        """The weights found in a model config (other keys ignored; missing ones keep their defaults)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in (config or {}).items() if key in known})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Search:
    """One live query: query films (rows, in order), pushed-away films, free-text vector, allowed films."""

    liked: list[int]
    disliked: list[int]
    text: np.ndarray | None  # normalised embedding of the free text, (dim,)
    allowed: np.ndarray | None  # bool per row; None: every film not banned
    banned: set[int]
    top_n: int
    offset: int = 0
    diversity: float = 0.0


@dataclass(frozen=True)
class Ranked:
    """Catalog rows best first, with their scores (and their `explain.shared_fields` masks, when known)."""

    rows: list[int]
    scores: list[float]
    shared: list[int] | None = None


def blend(
    ranking: Ranking,
    similarity: np.ndarray,
    people: np.ndarray | None,
    prior: np.ndarray,
    years: np.ndarray,
    era: float | np.ndarray,
    has_people: bool | np.ndarray,
    engaged: np.ndarray | None = None,
) -> np.ndarray:
    """The score of candidate films (module docstring), float64, shaped like `similarity`.

    `similarity`, `people` (None: no people term), `prior`, `years` and `engaged` (the query's co-engagement with
    each, None: no engagement term) hold one value per candidate, (n,) for one query or (queries, n); `era` is the
    query films' year (NaN: unknown, no era term) and `has_people` whether the query has a people row, scalars or
    (queries, 1)."""
    weight = np.where(has_people, ranking.dense_weight, 1.0)
    score = weight * np.asarray(similarity, dtype=np.float64)
    if people is not None and ranking.dense_weight < 1:
        score += (1 - weight) * people
    score += ranking.prior_weight * prior
    if ranking.era_weight:
        score -= ranking.era_weight * np.nan_to_num(np.abs(years - era) / 10, nan=0.0)
    if engaged is not None and ranking.engagement_weight:
        score += ranking.engagement_weight * engaged
    return score


def rank(films: Films, ranking: Ranking, search: Search, engagement: Engagement | None = None) -> Ranked:
    """The `search.top_n` best films after `search.offset`, ties to the lower id (stable between pages)."""
    dense, people, era = query_vectors(films, ranking, search)
    pool = retrieve(films, dense, search, ranking.pool)
    engaged = None
    if engagement is not None and ranking.engagement_weight and (search.liked or search.disliked):
        pool, engaged = co_engaged(engagement, ranking, search, pool)
    people_scores = (films.people[pool] @ people.T).toarray().ravel() if people is not None else None
    scores = blend(
        ranking,
        films.vectors[pool] @ dense,
        people_scores,
        films.prior[pool],
        films.years[pool],
        era,
        people is not None,
        engaged,
    )
    wanted = search.offset + search.top_n
    if search.diversity > 0:
        order = diversify(films.vectors[pool], scores, wanted, search.diversity)
    else:
        order = np.lexsort((films.ids[pool], -scores))[:wanted]
    order = order[search.offset : wanted]
    return Ranked(pool[order].tolist(), scores[order].tolist())


def co_engaged(
    engagement: Engagement, ranking: Ranking, search: Search, pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The pool joined by the allowed, unbanned films the query is co-engaged with, and the query's co-engagement
    with each film of it."""
    liked = np.asarray(search.liked, dtype=np.int64)
    row = engagement.query_row(
        liked, recency_weights(len(liked), ranking.recency), search.disliked, ranking.engagement_shrink, DISLIKE_WEIGHT
    )
    extra = row.indices[~np.isin(row.indices, pool) & ~np.isin(row.indices, list(search.banned))]
    if search.allowed is not None:
        extra = extra[search.allowed[extra]]
    pool = np.concatenate([pool, np.sort(extra).astype(pool.dtype)])
    return pool, row[:, pool].toarray().ravel().astype(np.float64)


def recency_weights(n: int, recency: float) -> np.ndarray:
    """Weights of `n` query films in order, the last weighing most, summing to 1."""
    weights = recency ** np.arange(n - 1, -1, -1, dtype=np.float64)
    return weights / weights.sum() if n else weights


def query_vectors(films: Films, ranking: Ranking, search: Search) -> tuple[np.ndarray, sparse.csr_matrix | None, float]:
    """(query embedding (dim,), query people row (1, tokens) or None, query films' year or NaN)."""
    rows = np.asarray(search.liked, dtype=np.int64)
    dense = np.zeros(films.vectors.shape[1], dtype=np.float32)
    people, era = None, float("nan")
    if len(rows):
        weights = recency_weights(len(rows), ranking.recency)
        dense = _unit(weights @ films.vectors[rows])
        people = sparse.csr_matrix(weights) @ films.people[rows]
        years = films.years[rows]
        known = ~np.isnan(years)
        if known.any():
            era = float(weights[known] @ years[known] / weights[known].sum())
    if search.text is not None:
        dense = _unit(dense + search.text)
    if search.disliked:
        pushed = np.asarray(search.disliked, dtype=np.int64)
        dense = _unit(dense - DISLIKE_WEIGHT * films.vectors[pushed].mean(axis=0))
        if people is not None:
            people = people - DISLIKE_WEIGHT * sparse.csr_matrix(films.people[pushed].mean(axis=0))
    if people is not None:
        people = _unit_row(sparse.csr_matrix(people))
    return dense, (people if people is not None and people.nnz else None), era


def retrieve(films: Films, dense: np.ndarray, search: Search, pool: int) -> np.ndarray:
    """Rows of the `pool` films nearest to `dense` among the allowed, unbanned ones (fewer only when fewer are
    allowed). The pool does not depend on `top_n` or `offset`, so pages never reshuffle."""
    query = dense.reshape(1, -1).astype(np.float32)
    banned = list(search.banned)
    if search.allowed is None:
        _, ids = search_index(films.index, query, min(pool + len(banned), films.index.ntotal))
        rows = films.find(ids[0][ids[0] != MISSING_ID])
        return rows[~np.isin(rows, banned)][:pool]
    allowed = search.allowed.copy()
    allowed[banned] = False
    candidates = films.ids[allowed]
    wanted = min(pool, len(candidates))
    if wanted == 0:
        return np.empty(0, dtype=np.int64)
    _, ids = search_index(films.index, query, wanted, allowed=candidates)
    found = ids[0][ids[0] != MISSING_ID]
    if len(found) == wanted:
        return films.find(found)
    # An approximate index meets too few of the films a narrow filter allows: score those films exactly.
    rows = np.flatnonzero(allowed)
    similarity = films.vectors[rows] @ dense
    nearest = np.argpartition(-similarity, wanted - 1)[:wanted] if wanted < len(rows) else np.arange(len(rows))
    return rows[nearest[np.argsort(-similarity[nearest], kind="stable")]]


def diversify(vectors: np.ndarray, scores: np.ndarray, wanted: int, diversity: float) -> np.ndarray:
    """Maximal marginal relevance: each next film maximises (1 - diversity) x score - diversity x its highest
    cosine to the films already chosen. Returns positions into `scores`, in the chosen order."""
    closest = np.full(len(scores), -np.inf)
    chosen: list[int] = []
    available = np.ones(len(scores), dtype=bool)
    for _ in range(min(wanted, len(scores))):
        penalty = np.where(np.isinf(closest), 0.0, closest)
        value = np.where(available, (1 - diversity) * scores - diversity * penalty, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        available[pick] = False
        closest = np.maximum(closest, vectors @ vectors[pick])
    return np.asarray(chosen, dtype=np.int64)


def _unit_row(row: sparse.csr_matrix) -> sparse.csr_matrix:
    norm = float(np.sqrt(row.multiply(row).sum()))
    return row / norm if norm > 0 else row


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)
