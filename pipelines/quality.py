"""Offline quality protocols and their metrics: does a scorer recommend what MovieLens users went on to like?

Everything works on candidate positions 0..n-1 (the catalog films matched to MovieLens). A scorer maps query films
(a list of candidate positions per query) to a score for every candidate, shape (n_queries, n_candidates); higher is
better. Three protocols, all at k = 10:

- P1 next liked: per user with ≥ 3 liked films in time order, query = the second-to-last, target = the last;
- P2 co-liked neighbours: per film with ≥ 20 likers, truth = its 10 nearest films by cosine of liker sets;
- P3 history: per user with ≥ 3 liked films, query = every liked film but the last, target = the last.

Query films are never candidates for their own query. Each figure comes with a bootstrap 95% interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

K = 10
MIN_LIKED = 3
MIN_LIKERS = 20
BOOTSTRAP_SAMPLES = 1000

Scorer = Callable[[Sequence[Sequence[int]], Sequence[int] | None], np.ndarray]
Ranker = Callable[[Sequence[Sequence[int]], Sequence[int] | None], list[list[int]]]


@dataclass(frozen=True)
class Task:
    """One protocol's queries: query films per query, and a target (P1, P3) or a truth set (P2)."""

    name: str
    queries: list[list[int]]
    targets: list[int] | None = None
    truths: list[list[int]] | None = None


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float


# --- metrics on one ranked list --------------------------------------------------------------------------------


def hit_at_k(ranked: Sequence[int], target: int, k: int = K) -> float:
    """1 when `target` is among the first `k` of `ranked`, else 0."""
    return float(target in ranked[:k])


def ndcg_at_k(ranked: Sequence[int], target: int, k: int = K) -> float:
    """Discounted gain of the one relevant item: 1/log2(rank + 1) for a 1-based rank ≤ k, else 0 (ideal DCG is 1)."""
    top = list(ranked[:k])
    return 1.0 / float(np.log2(top.index(target) + 2)) if target in top else 0.0


def overlap_at_k(ranked: Sequence[int], truth: Sequence[int], k: int = K) -> float:
    """Share of the first `k` of `ranked` that are in `truth` (truth holds k items)."""
    return len(set(ranked[:k]) & set(truth)) / k


def bootstrap(values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> Estimate:
    """Mean with a percentile bootstrap 95% interval over the per-query values."""
    data = np.asarray(values, dtype=np.float64)
    if len(data) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(data.mean()), float(low), float(high))


# --- tasks from behaviour ----------------------------------------------------------------------------------------


def liked_sequences(likes: pd.DataFrame, candidates: Sequence[int]) -> list[list[int]]:
    """Each user's liked films as candidate positions in time order (ties by film id), users by id."""
    position = {film: i for i, film in enumerate(candidates)}
    ordered = likes.sort_values(["user", "timestamp", "film"], kind="stable")
    return [[position[f] for f in films] for _, films in ordered.groupby("user", sort=True)["film"]]


def next_liked_task(sequences: list[list[int]]) -> Task:
    usable = [s for s in sequences if len(s) >= MIN_LIKED]
    return Task("p1", [[s[-2]] for s in usable], [s[-1] for s in usable])


def history_task(sequences: list[list[int]]) -> Task:
    usable = [s for s in sequences if len(s) >= MIN_LIKED]
    return Task("p3", [s[:-1] for s in usable], [s[-1] for s in usable])


def liker_matrix(sequences: list[list[int]], n_candidates: int) -> np.ndarray:
    """Binary (n_candidates, n_users): which users liked which film."""
    matrix = np.zeros((n_candidates, len(sequences)), dtype=np.float32)
    for user, films in enumerate(sequences):
        matrix[films, user] = 1.0
    return matrix


def co_liked_task(sequences: list[list[int]], n_candidates: int) -> Task:
    likers = liker_matrix(sequences, n_candidates)
    counts = likers.sum(axis=1)
    norms = np.sqrt(counts)
    similarity = (likers @ likers.T) / np.maximum(np.outer(norms, norms), 1e-12)
    queries, truths = [], []
    for film in np.flatnonzero(counts >= MIN_LIKERS):
        row = similarity[film].copy()
        row[film] = -np.inf
        order = np.lexsort((np.arange(n_candidates), -row))  # ties by position, for a stable truth
        queries.append([int(film)])
        truths.append([int(i) for i in order[:K]])
    return Task("p2", queries, truths=truths)


def build_tasks(likes: pd.DataFrame, candidates: Sequence[int]) -> list[Task]:
    sequences = liked_sequences(likes, candidates)
    return [next_liked_task(sequences), co_liked_task(sequences, len(candidates)), history_task(sequences)]


# --- running a scorer --------------------------------------------------------------------------------------------


def top_k(scores: np.ndarray, queries: Sequence[Sequence[int]], k: int = K) -> list[list[int]]:
    """Best `k` candidates per query, its own query films excluded, best first (ties by position)."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    ranked: list[list[int]] = []
    for row, query in zip(scores, queries, strict=True):
        row[list(query)] = -np.inf
        pool = np.argpartition(-row, k)[: k + 1] if len(row) > k + 1 else np.arange(len(row))
        order = pool[np.lexsort((pool, -row[pool]))]
        ranked.append([int(i) for i in order[:k]])
    return ranked


def ranker_of(scorer: Scorer) -> Ranker:
    """Rank by a scorer's scores: best `K` per query, its own query films excluded."""

    def rank(queries: Sequence[Sequence[int]], targets: Sequence[int] | None) -> list[list[int]]:
        return top_k(scorer(queries, targets), queries)

    return rank


def evaluate_task(task: Task, ranker: Ranker, batch: int = 512) -> dict[str, Estimate]:
    """The task's metrics for one ranker, each with its bootstrap interval."""
    ranked: list[list[int]] = []
    for start in range(0, len(task.queries), batch):
        queries = task.queries[start : start + batch]
        targets = task.targets[start : start + batch] if task.targets else None
        ranked += ranker(queries, targets)
    if task.truths is not None:
        return {"overlap10": bootstrap([overlap_at_k(r, t) for r, t in zip(ranked, task.truths, strict=True)])}
    assert task.targets is not None
    return {
        "hr10": bootstrap([hit_at_k(r, t) for r, t in zip(ranked, task.targets, strict=True)]),
        "ndcg10": bootstrap([ndcg_at_k(r, t) for r, t in zip(ranked, task.targets, strict=True)]),
    }


def evaluate_ranker(tasks: Sequence[Task], ranker: Ranker) -> dict[str, Estimate]:
    """Every task's metrics, named like `p1_hr10`."""
    return {f"{task.name}_{metric}": value for task in tasks for metric, value in evaluate_task(task, ranker).items()}


# --- baselines ---------------------------------------------------------------------------------------------------


def random_scorer(n_candidates: int, seed: int = 0) -> Scorer:
    rng = np.random.default_rng(seed)

    def score(queries: Sequence[Sequence[int]], targets: Sequence[int] | None) -> np.ndarray:
        return rng.random((len(queries), n_candidates))

    return score


def popularity_scorer(likes_per_candidate: np.ndarray) -> Scorer:
    """Rank by number of likes; a query's own target like is left out of the count (it is what we predict)."""

    def score(queries: Sequence[Sequence[int]], targets: Sequence[int] | None) -> np.ndarray:
        scores = np.tile(likes_per_candidate.astype(np.float64), (len(queries), 1))
        if targets is not None:
            scores[np.arange(len(queries)), list(targets)] -= 1
        return scores

    return score


def vector_scorer(vectors: Any, prior: np.ndarray | None = None, weight: float = 0.0) -> Scorer:
    """Cosine to the mean of the query films' vectors (dense or sparse rows, L2-normalised), plus `weight` × prior."""

    def score(queries: Sequence[Sequence[int]], targets: Sequence[int] | None) -> np.ndarray:
        query = np.stack([np.asarray(vectors[list(q)].mean(axis=0)).ravel() for q in queries])
        norms = np.linalg.norm(query, axis=1, keepdims=True)
        query = query / np.where(norms == 0, 1, norms)
        scores = np.asarray(vectors @ query.T).T
        return scores + weight * prior if prior is not None and weight else scores

    return score


def tfidf_vectors(texts: Sequence[str]) -> Any:
    """TF-IDF (scikit-learn defaults, rows L2-normalised) of the movie texts, as a sparse matrix."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer().fit_transform(list(texts))
