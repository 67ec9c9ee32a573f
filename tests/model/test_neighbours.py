"""Precomputed neighbours and the dense pools they are ranked from: a rebuild that carries pools over must give
exactly the lists a cold build gives (random vectors and people, so ties are rare unless a test makes them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.engine import Engine
from model.explain import shared_fields
from model.films import Films
from model.index import EXACT, HNSW, IVFPQ, build_index
from model.neighbours import (
    MAX_FRESH_SHARE,
    POOL_MARGIN,
    Neighbours,
    _nearest,
    _top,
    dense_pools,
    load_neighbours,
    precompute_neighbours,
    save_neighbours,
    shared_people,
)
from model.people import people_matrix
from model.ranking import Ranking
from model.schema import Query
from tests.conftest import tiny_catalog
from tests.model.conftest import ROWS, hashing_encoder

POOL = 40
K = 12
DIM = 16


def catalog(n: int, seed: int = 0, first_id: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """`n` films with random genres and people (so the blend's people term matters) and random unit vectors."""
    rng = np.random.default_rng(seed)
    genres = ["Drama", "Comedy", "Western", "Horror", "Sci-Fi", "Crime"]
    rows = [
        {
            "id": first_id + i,
            "title": f"Film {first_id + i}",
            "year": int(rng.integers(1940, 2015)),
            "genres": ", ".join(rng.choice(genres, 2, replace=False)),
            "directors": f"Director {rng.integers(30)}",
            "cast": ", ".join(f"Actor {a}" for a in rng.choice(120, 3, replace=False)),
            "reviews": int(rng.integers(0, 500)),
        }
        for i in range(n)
    ]
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return tiny_catalog(rows), vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


RANKING = Ranking(pool=POOL)


def films_of(movies: pd.DataFrame, vectors: np.ndarray, kind: str = EXACT) -> Films:
    movies = movies.assign(prior=np.log1p(movies["reviews"].to_numpy(dtype=np.float64)) / 10)
    index = build_index(vectors, movies["id"].to_numpy(), kind)
    return Films(movies, index, people_matrix(movies), vectors)


def pools(films: Films, previous: object = None) -> tuple:
    return dense_pools(films, RANKING, previous=previous)


def lists(films: Films, pooled: object = None) -> Neighbours:
    return precompute_neighbours(films, RANKING, K, pooled)


def edited(movies: pd.DataFrame, vectors: np.ndarray, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """The catalog with 4 films removed, 5 films' vectors changed and 6 films added."""
    rng = np.random.default_rng(seed)
    keep = np.setdiff1d(np.arange(len(movies)), rng.choice(len(movies), 4, replace=False))
    movies, vectors = movies.iloc[keep].reset_index(drop=True), vectors[keep].copy()
    changed = rng.choice(len(movies), 5, replace=False)
    fresh = rng.standard_normal((5, DIM)).astype(np.float32)
    vectors[changed] = fresh / np.linalg.norm(fresh, axis=1, keepdims=True)
    added, added_vectors = catalog(6, seed=seed + 100, first_id=10_000)
    return pd.concat([movies, added], ignore_index=True), np.concatenate([vectors, added_vectors])


def assert_same_lists(got: Neighbours, want: Neighbours) -> None:
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-5)


def test_a_rebuild_carries_unchanged_pools_over_and_ranks_exactly_as_a_cold_build() -> None:
    movies, vectors = catalog(400)
    before, _ = pools(films_of(movies, vectors))
    after = films_of(*edited(movies, vectors))
    pooled, carried = pools(after, before)
    # Unchanged films keep their pools unless removals thinned them; changed and added ones are searched.
    assert 380 <= carried <= 400 - 4 - 5
    cold, _ = pools(after)
    for row in range(len(after)):
        ours = dict(zip(pooled.rows[row].tolist(), pooled.sims[row].tolist(), strict=True))
        ours.pop(-1, None)
        nearest = dict(zip(cold.rows[row, : len(ours)].tolist(), cold.sims[row, : len(ours)].tolist(), strict=True))
        assert ours.keys() == nearest.keys(), row  # exactly the nearest films, however deep the pool is now
        assert np.allclose([ours[f] for f in nearest], list(nearest.values()), atol=1e-6)
    assert_same_lists(lists(after, pooled), lists(after))


def test_the_lists_are_those_of_live_ranking() -> None:
    movies, vectors = catalog(300)
    films = films_of(movies, vectors)
    rows, scores, _ = lists(films, pools(films)[0])
    live = Engine(films, RANKING)
    for row in (0, 17, 299):
        answer = live.recommend([Query(liked=[{"id": int(films.ids[row])}], top_n=K)])[0]["recommendations"]
        assert [film["id"] for film in answer] == films.ids[rows[row]].tolist()
        np.testing.assert_allclose([film["score"] for film in answer], scores[row], atol=1e-4)


@pytest.mark.parametrize(("kind", "agreement"), [(HNSW, 1.0), (IVFPQ, 0.99)])
def test_an_approximate_index_gives_pools_with_exact_similarities_and_nearly_the_exact_lists(
    kind: str, agreement: float
) -> None:
    """IVF-PQ's approximate scores are replaced by the exact inner products the blend needs; on a small catalog
    HNSW finds every pool whole, and IVF-PQ (two one-byte codes per 16-d vector here) all but a few films."""
    movies, vectors = catalog(300)
    films = films_of(movies, vectors, kind)
    pooled, _ = pools(films)
    found = pooled.rows >= 0
    exact = np.einsum("id,ijd->ij", vectors, vectors[np.maximum(pooled.rows, 0)])
    np.testing.assert_allclose(pooled.sims[found], exact[found], atol=1e-5)
    got, want = lists(films, pooled), lists(films_of(movies, vectors))
    assert np.mean(got.rows == want.rows) >= agreement


def test_a_pool_that_lost_too_many_films_is_searched_again() -> None:
    movies, vectors = catalog(400)
    films = films_of(movies, vectors)
    before, _ = pools(films)
    # Remove more of the film-0 pool's nearest films than the margin: its carried pool would be too shallow.
    gone = set(films.ids[before.rows[0][np.argsort(-before.sims[0])[1 : POOL_MARGIN + 7]]].tolist())
    keep = ~movies["id"].isin(gone).to_numpy()
    after = films_of(movies[keep].reset_index(drop=True), vectors[keep])
    pooled, carried = pools(after, before)
    assert carried < keep.sum()
    assert_same_lists(lists(after, pooled), lists(after))


def test_a_large_change_searches_every_film_again() -> None:
    movies, vectors = catalog(200)
    before, _ = pools(films_of(movies, vectors))
    changed = vectors.copy()
    changed[: int(MAX_FRESH_SHARE * 200) + 1] = np.roll(changed[: int(MAX_FRESH_SHARE * 200) + 1], 1, axis=1)
    assert pools(films_of(movies, changed), previous=before)[1] == 0


def test_a_catalog_smaller_than_a_pool_carries_every_pool_over() -> None:
    movies, vectors = catalog(60)  # every pool holds every film
    before, _ = pools(films_of(movies, vectors))
    after = films_of(*edited(movies, vectors))
    pooled, carried = pools(after, before)
    assert carried == 60 - 4 - 5
    assert_same_lists(lists(after, pooled), lists(after))


def test_films_with_equal_vectors_tie_the_same_way_in_a_rebuild() -> None:
    movies, vectors = catalog(400)
    vectors[100:140] = vectors[100]  # forty copies: the pool's edge cuts through equal similarities
    before, _ = pools(films_of(movies, vectors))
    after = films_of(*edited(movies, vectors, seed=3))
    pooled, carried = pools(after, before)
    assert carried > 0
    cold, _ = pools(after)
    assert_same_lists(lists(after, pooled), lists(after, cold))


def test_top_breaks_ties_by_id_like_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    score = rng.integers(0, 5, (50, 300)).astype(np.float64)  # many ties, also across the short list's end
    score[3, :] = 1.0
    score[4, 10:] = -np.inf
    ids = np.tile(rng.permutation(300), (50, 1))
    np.testing.assert_array_equal(_top(score, ids, 20), np.lexsort((ids, -score), axis=-1)[:, :20])


def test_nearest_takes_the_lower_row_at_a_tie() -> None:
    similarity = np.array([[0.9, 0.5, 0.5, 0.5, 0.1]], dtype=np.float32)
    rows = np.array([[7, 30, 4, 12, 1]])
    assert sorted(rows[0, _nearest(similarity, rows, 3)[0]].tolist()) == [4, 7, 12]


def test_shared_people_equals_the_dense_product() -> None:
    movies, _ = catalog(300)
    people = people_matrix(movies)
    queries = np.array([0, 5, 299])
    pool = np.random.default_rng(0).integers(0, 300, (3, 50))
    want = np.take_along_axis((people[queries] @ people.T).toarray(), pool, axis=1)
    np.testing.assert_allclose(shared_people(people, queries, pool), want, atol=1e-6)


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_catalogs(n: int) -> None:
    movies, vectors = catalog(n)
    films = films_of(movies, vectors)
    rows, *_ = lists(films, pools(films)[0])
    assert rows.shape == (n, min(K, n - 1))


def test_neighbours_files_load(tmp_path: Path) -> None:
    rows = np.array([[1, 2], [0, -1], [0, 1]], dtype=np.int32)
    scores = np.array([[0.9, 0.5], [0.8, -np.inf], [0.7, 0.6]], dtype=np.float32)
    shared = np.array([[1, 5], [1, 0], [0, 15]], dtype=np.uint8)
    save_neighbours(tmp_path / "lists.npz", Neighbours(rows, scores, shared))
    loaded = load_neighbours(tmp_path / "lists.npz")
    np.testing.assert_array_equal(loaded.rows, rows)
    np.testing.assert_array_equal(loaded.scores, scores)
    np.testing.assert_array_equal(loaded.shared, shared)
    save_neighbours(tmp_path / "without.npz", Neighbours(rows, scores))  # lists without masks: explained live
    assert load_neighbours(tmp_path / "without.npz").shared is None


def test_stored_masks_are_those_of_shared_fields(films: Films, stored: Engine) -> None:
    assert stored.neighbours is not None and stored.neighbours.shared is not None
    for row in range(len(films)):
        found = [r for r in stored.neighbours.rows[row].tolist() if r >= 0]
        assert stored.neighbours.shared[row, : len(found)].tolist() == shared_fields(films, [row], found)


# --- the engine answers from the lists exactly as it ranks live ------------------------------------------------

NEIGHBOUR_QUERIES = [
    {"title": "Space Saga 3", "top_n": 5},
    {"title": "Hamlet", "year": 1948, "top_n": 6},
    {"liked": [{"id": 503}], "top_n": 3},
    {"title": "Space Saga 0", "top_n": 2, "offset": 3},
    {"title": "Space Saga 0", "top_n": 5, "offset": 3},  # beyond the 6 stored: ranked live
    {"title": "Hamlet", "liked": [{"title": "Hamlet"}]},
    {"title": "Hamlet", "exclude": [{"title": "Hamlet", "year": 1996}], "disliked": [{"title": "Nothing Like It"}]},
    {"title": "Hamster"},
    {"liked": [{"id": 999}]},
]


@pytest.fixture(scope="module")
def live(films: Films) -> Engine:
    return Engine(films, load_encoder=hashing_encoder)


@pytest.fixture(scope="module")
def stored(films: Films) -> Engine:
    neighbours = precompute_neighbours(films, Ranking(), k=6, chunk=4)  # small chunks: several batches
    return Engine(films, neighbours=neighbours, load_encoder=hashing_encoder)


@pytest.mark.parametrize("query", NEIGHBOUR_QUERIES)
def test_neighbour_lists_answer_exactly_as_live_ranking(live: Engine, stored: Engine, query: dict) -> None:
    assert stored.neighbours is not None
    assert stored.recommend([Query.model_validate(query)]) == live.recommend([Query.model_validate(query)])


def test_every_film_answers_the_same_from_the_lists(films: Films, live: Engine, stored: Engine) -> None:
    for film_id in films.ids.tolist():
        query = [Query(liked=[{"id": film_id}], top_n=6)]
        assert stored.recommend(query) == live.recommend(query)


def test_lists_of_another_catalog_are_not_used(films: Films, stored: Engine) -> None:
    assert stored.neighbours is not None
    shorter = Neighbours(stored.neighbours.rows[:-1], stored.neighbours.scores[:-1])
    assert Engine(films, neighbours=shorter).neighbours is None
    assert len(ROWS) == len(films)
