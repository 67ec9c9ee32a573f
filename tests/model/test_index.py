from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.index import MISSING_ID, build_index, index_contents, load_index, save_index, search


def random_unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    vectors = random_unit_vectors(300, 32, seed=7)
    ids = np.random.default_rng(8).permutation(np.arange(1_000_000, 1_000_300) * 3).astype(np.int64)
    return vectors, ids


def test_search_returns_catalog_ids_of_numpy_exact_top_k(data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, ids = data
    index = build_index(vectors, ids)
    queries = random_unit_vectors(20, 32, seed=9)
    scores, found = search(index, queries, k=10)
    exact = queries @ vectors.T
    expected_rows = np.argsort(-exact, axis=1)[:, :10]
    np.testing.assert_array_equal(found, ids[expected_rows])
    np.testing.assert_allclose(scores, np.take_along_axis(exact, expected_rows, axis=1), rtol=1e-5)


def test_a_stored_vector_finds_itself_first(data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, ids = data
    scores, found = search(build_index(vectors, ids), vectors[:5], k=1)
    np.testing.assert_array_equal(found[:, 0], ids[:5])
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)


def test_asking_for_more_than_the_index_holds_pads(data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, ids = data
    scores, found = search(build_index(vectors[:3], ids[:3]), vectors[:1], k=5)
    assert (found[0, 3:] == MISSING_ID).all()
    assert np.isneginf(scores[0, 3:]).all()


def test_saved_index_keeps_ids_and_vectors(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, ids = data
    save_index(build_index(vectors, ids), tmp_path / "index.faiss")
    loaded = load_index(tmp_path / "index.faiss")
    stored_ids, stored = index_contents(loaded)
    np.testing.assert_array_equal(stored_ids, ids)
    np.testing.assert_array_equal(stored, vectors)


def test_ids_must_be_unique_and_aligned(data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, ids = data
    with pytest.raises(ValueError, match="unique"):
        build_index(vectors[:2], np.array([5, 5]))
    with pytest.raises(ValueError, match="one id per vector"):
        build_index(vectors[:3], ids[:2])
