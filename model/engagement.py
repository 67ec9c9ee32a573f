"""Co-engagement: which films the same people engaged with, learned at build time from the event store.

One sparse matrix, one row and one column per catalog row: `similarity[q, f]` is the cosine between the engagement
columns of films q and f over users (like 1, click 0.5, dismiss -0.5, one value per user and film, heavy users
bounded; pipelines/engagement.py learns it with `implicit`), kept for each film's `k` most similar films. Beside it,
`together[q, f]` counts the people who liked or clicked both, and `support[q]` the people who liked or clicked q.

The ranking (model/ranking.py) adds `engagement_weight x co-engagement` to the blend, where a query's co-engagement
with a film is the query films' rows of `similarity`, each shrunk by how much engagement its film has:

    confidence(q) = support(q) / (support(q) + engagement_shrink)

so a film nobody engaged with has an empty row and ranks exactly as without engagement, and a film ten people liked
counts for less than one ten thousand did. The films a query film's row names join the retrieved pool: a film
people engage with together is a candidate even when its text is far from the query's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

EMPTY_SOURCE = "none"


@dataclass(frozen=True)
class Engagement:
    """What a build learned from engagement, in catalog row order; see the module docstring."""

    similarity: sparse.csr_matrix  # float32 (n, n), no diagonal
    together: sparse.csr_matrix  # int32 (n, n), same pattern as `similarity`
    support: np.ndarray  # int32 (n,)

    @classmethod
    def empty(cls, n: int) -> Engagement:
        """No engagement at all: every query ranks as the content model alone."""
        zero = sparse.csr_matrix((n, n), dtype=np.float32)
        return cls(zero, sparse.csr_matrix((n, n), dtype=np.int32), np.zeros(n, dtype=np.int32))

    def __len__(self) -> int:
        return self.similarity.shape[0]

    @property
    def films_engaged(self) -> int:
        """Films with any co-engagement to offer."""
        return int((np.diff(self.similarity.indptr) > 0).sum())

    def confidence(self, rows: np.ndarray, shrink: float) -> np.ndarray:
        """support / (support + shrink) of each film of `rows`: 0 for a film nobody engaged with."""
        support = self.support[rows].astype(np.float64)
        return support / (support + shrink) if shrink > 0 else (support > 0).astype(np.float64)

    def query_row(
        self, liked: np.ndarray, weights: np.ndarray, disliked: Sequence[int], shrink: float, dislike_weight: float
    ) -> sparse.csr_matrix:
        """(1, n): a query's co-engagement with every film: the liked films' rows by `weights` (the query's recency
        weights, summing to 1) and confidence, minus `dislike_weight` x the mean of the disliked films' rows."""
        scale = np.asarray(weights, dtype=np.float64) * self.confidence(liked, shrink)
        row = sparse.csr_matrix(scale.reshape(1, -1)) @ self.similarity[liked]
        if len(disliked):
            pushed = np.asarray(disliked, dtype=np.int64)
            push = self.confidence(pushed, shrink) / len(pushed)
            row = row - dislike_weight * (sparse.csr_matrix(push.reshape(1, -1)) @ self.similarity[pushed])
        return sparse.csr_matrix(row)

    def pairs(self, queries: np.ndarray, rows: np.ndarray, shrink: float) -> np.ndarray:
        """(len(queries), width) float64: similarity of query film i with film `rows[i, j]` times the query film's
        confidence; 0 where unknown or where `rows` is -1. Pair by pair, so it grows with the pools only."""
        width = rows.shape[1]
        safe = np.maximum(rows, 0)
        values = np.asarray(self.similarity[np.repeat(queries, width), safe.ravel()], dtype=np.float64)
        values = values.reshape(len(queries), width) * self.confidence(queries, shrink)[:, None]
        return np.where(rows >= 0, values, 0.0)

    def together_counts(self, query_rows: Sequence[int], rows: Sequence[int]) -> list[tuple[int, int]]:
        """For each film of `rows`: (the query film with the most people who liked both, how many), or (-1, 0)."""
        if not query_rows or not len(rows):
            return [(-1, 0)] * len(rows)
        queries = np.asarray(query_rows, dtype=np.int64)
        counts = self.together[queries][:, np.asarray(rows, dtype=np.int64)].toarray()  # (queries, rows)
        best = counts.argmax(axis=0)
        found = counts[best, np.arange(counts.shape[1])]
        return [(int(queries[b]), int(c)) if c > 0 else (-1, 0) for b, c in zip(best, found, strict=True)]


def save_engagement(path: str | os.PathLike[str], engagement: Engagement) -> None:
    similarity, together = engagement.similarity.tocsr(), engagement.together.tocsr()
    np.savez_compressed(
        path,
        shape=np.asarray(similarity.shape, dtype=np.int64),
        indptr=similarity.indptr,
        indices=similarity.indices,
        similarity=similarity.data.astype(np.float32),
        together=_aligned(together, similarity).astype(np.int32),
        support=engagement.support.astype(np.int32),
    )


def load_engagement(path: str | os.PathLike[str]) -> Engagement:
    with np.load(path) as data:
        shape = tuple(int(v) for v in data["shape"])
        pattern = (data["indices"], data["indptr"])
        similarity = sparse.csr_matrix((data["similarity"], *pattern), shape=shape)
        together = sparse.csr_matrix((data["together"], *pattern), shape=shape)
        return Engagement(similarity, together, data["support"])


def _aligned(values: sparse.csr_matrix, pattern: sparse.csr_matrix) -> np.ndarray:
    """`values` at the entries of `pattern`, in its order (0 where `values` has none)."""
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    return np.asarray(values[rows, pattern.indices]).ravel()
