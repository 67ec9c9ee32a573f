"""`build -P engine=spark` learns the same co-engagement as the local engine: `spark_learn` against `learn` on seeded
synthetic events (likes, clicks and dismisses, repeats, films outside the catalog, one user over MAX_USER_FILMS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from model.engagement import Engagement
from pipelines.engagement import MAX_USER_FILMS, Events, learn
from pipelines.spark_engagement import spark_learn

pytestmark = pytest.mark.integration

FILMS = 240
USERS = 300
TOLERANCE = 1e-5


def synthetic_events(seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """(events, catalog ids): users of 1 to 30 films drawn by a long-tailed popularity, a few events each (so some
    repeat, some disagree), a heavy user of every film, and some events on films the catalog lacks."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(np.arange(1, 100_000), FILMS, replace=False))
    popularity = 1.0 / np.arange(1, FILMS + 1) ** 0.8
    popularity /= popularity.sum()
    users, films = [], []
    for user in range(USERS):
        chosen = rng.choice(ids, rng.integers(1, 31), replace=False, p=popularity)
        repeats = rng.integers(1, 4, len(chosen))  # a film seen one to three times
        users += [f"user-{user}"] * int(repeats.sum())
        films += list(np.repeat(chosen, repeats))
    heavy = np.repeat(ids, 2)  # more films than MAX_USER_FILMS, each twice
    users += ["heavy"] * len(heavy)
    films += list(heavy)
    strangers = rng.integers(200_000, 300_000, 40)  # films outside the catalog
    users += [f"user-{u}" for u in rng.integers(0, USERS, len(strangers))]
    films += list(strangers)
    events = rng.choice(["like", "click", "dismiss"], len(films), p=[0.4, 0.4, 0.2])
    frame = pd.DataFrame(
        {
            "user": users,
            "film_id": np.asarray(films, dtype=np.int64),
            "event": events,
            "timestamp": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(len(films)), unit="s"),
        }
    )
    assert FILMS > MAX_USER_FILMS
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True), ids


@pytest.fixture(scope="module")
def events() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic_events()


@pytest.mark.parametrize("k", [12, 400])
def test_spark_learns_the_local_engines_co_engagement(
    events: tuple[pd.DataFrame, np.ndarray], java: None, k: int
) -> None:
    frame, ids = events
    local = learn(frame, ids, k)
    spark = spark_learn(Events(frame, "synthetic"), ids, k, master="local[2]")
    np.testing.assert_array_equal(spark.support, local.support)
    assert spark.support.dtype == np.int32
    assert spark.similarity.dtype == np.float32 and spark.together.dtype == np.int32
    assert spark.similarity.has_sorted_indices
    np.testing.assert_array_equal(spark.similarity.indptr, spark.together.indptr)
    np.testing.assert_array_equal(spark.similarity.indices, spark.together.indices)
    cut = _assert_same_neighbours(spark, local, k)
    if k < FILMS:
        assert cut > FILMS // 2  # most films had more than k candidates: the cut was exercised
    else:
        assert (local.similarity.data < 0).any()  # dismisses gave negative similarities, kept by both


def _assert_same_neighbours(spark: Engagement, local: Engagement, k: int) -> int:
    """Row by row: the same similarities rank by rank (within TOLERANCE), the same films except where equal
    similarities straddle the cut, and the same co-like counts for the films both keep. How many rows were cut."""
    cut = 0
    for row in range(len(local)):
        ours, theirs = _row(spark.similarity, row), _row(local.similarity, row)
        assert len(ours) == len(theirs), row
        assert len(ours) <= k
        np.testing.assert_allclose(np.sort(list(ours.values())), np.sort(list(theirs.values())), atol=TOLERANCE)
        if not ours:
            continue
        cut += len(ours) == k
        edge = min(theirs.values())
        for film in set(ours) ^ set(theirs):  # a film only one side keeps ties with the last one kept
            assert abs(ours.get(film, theirs.get(film, np.inf)) - edge) <= TOLERANCE, (row, film)
        for film in set(ours) & set(theirs):
            assert abs(ours[film] - theirs[film]) <= TOLERANCE, (row, film)
            assert spark.together[row, film] == local.together[row, film], (row, film)
    return cut


def _row(matrix: sparse.csr_matrix, row: int) -> dict[int, float]:
    lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
    return dict(zip(matrix.indices[lo:hi].tolist(), matrix.data[lo:hi].tolist(), strict=True))
