"""Metric functions and protocols on tiny cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines import quality


def test_hit_at_k() -> None:
    assert quality.hit_at_k([4, 2, 9], 2, k=2) == 1.0
    assert quality.hit_at_k([4, 2, 9], 9, k=2) == 0.0


def test_ndcg_at_k_discounts_by_rank() -> None:
    assert quality.ndcg_at_k([7, 1, 2], 7) == 1.0
    assert quality.ndcg_at_k([7, 1, 2], 1) == pytest.approx(1 / math.log2(3))
    assert quality.ndcg_at_k([7, 1, 2], 2) == pytest.approx(0.5)
    assert quality.ndcg_at_k([7, 1, 2], 5) == 0.0
    assert quality.ndcg_at_k(list(range(20)), 10) == 0.0  # rank 11 is outside k = 10


def test_overlap_at_k() -> None:
    assert quality.overlap_at_k([1, 2, 3, 4], [4, 3, 9, 8], k=4) == 0.5


def test_bootstrap_interval() -> None:
    flat = quality.bootstrap([0.25] * 50)
    assert (flat.mean, flat.low, flat.high) == (0.25, 0.25, 0.25)
    mixed = quality.bootstrap([0.0, 1.0] * 200)
    assert mixed.mean == 0.5 and 0.4 < mixed.low < 0.5 < mixed.high < 0.6


def test_top_k_excludes_query_films_and_breaks_ties_by_position() -> None:
    scores = np.array([[0.9, 0.5, 0.5, 0.1, 0.8]])
    assert quality.top_k(scores, [[0]], k=3) == [[4, 1, 2]]


def likes_table(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "film", "timestamp"])


def test_next_liked_and_history_follow_time_order() -> None:
    likes = likes_table([(1, 100, 30), (1, 101, 10), (1, 102, 20), (2, 100, 5), (2, 101, 6)])
    sequences = quality.liked_sequences(likes, [100, 101, 102])
    assert sequences == [[1, 2, 0], [0, 1]]
    p1 = quality.next_liked_task(sequences)
    assert (p1.queries, p1.targets) == ([[2]], [0])  # user 2 has fewer than 3 likes
    p3 = quality.history_task(sequences)
    assert (p3.queries, p3.targets) == ([[1, 2]], [0])


def test_co_liked_truth_is_the_nearest_by_cosine_of_liker_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quality, "MIN_LIKERS", 2)
    monkeypatch.setattr(quality, "K", 2)
    # film 0 liked by users 0,1,2; film 1 by 0,1 (cos 0.816); film 2 by 2 (cos 0.577); film 3 by nobody
    sequences = [[0, 1], [0, 1], [0, 2]]
    task = quality.co_liked_task(sequences, 4)
    assert task.queries[0] == [0] and task.truths[0] == [1, 2]
    assert task.queries[1] == [1] and task.truths[1] == [0, 2]


def test_popularity_leaves_out_the_target_like() -> None:
    scorer = quality.popularity_scorer(np.array([5, 5, 1]))
    scores = scorer([[2], [2]], [0, 1])
    assert scores.tolist() == [[4, 5, 1], [5, 4, 1]]


def test_vector_scorer_uses_the_mean_of_query_films() -> None:
    vectors = np.eye(3, dtype=np.float32)
    scores = quality.vector_scorer(vectors)([[0, 1]], None)
    np.testing.assert_allclose(scores, [[0.7071, 0.7071, 0.0]], atol=1e-4)
    prior = quality.vector_scorer(vectors, np.array([0.0, 0.0, 10.0]), 1.0)([[0]], None)
    assert prior.argmax() == 2


def test_evaluate_ranker_on_a_perfect_ranker() -> None:
    task = quality.Task("p1", [[0], [1]], targets=[5, 6])
    perfect = quality.evaluate_ranker([task], lambda queries, targets: [[t] for t in targets])
    assert perfect["p1_hr10"].mean == 1.0 and perfect["p1_ndcg10"].mean == 1.0
