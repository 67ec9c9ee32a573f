from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from model.index import (
    AUTO,
    EXACT,
    HNSW,
    IVFPQ,
    KINDS,
    MISSING_ID,
    build_index,
    choose_kind,
    index_contents,
    index_kind,
    index_params,
    load_index,
    save_index,
    search,
)

# Each kind's recall@10 against numpy on `clustered` data: HNSW must be all but exact at this size; IVF-PQ's four
# one-byte codes per 32-d vector (approximate scores) must still find half the true top 10, and the engine's exact
# re-ranking of a deeper pool (here 100) must win back the rest.
MIN_RECALL = {EXACT: 1.0, HNSW: 0.99, IVFPQ: 0.5}
MIN_RERANKED_RECALL = 0.98


def random_unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def clustered(n: int, d: int, seed: int, centres: int = 20) -> np.ndarray:
    """Unit vectors around `centres` random centres: neighbours that mean something, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(centres, d))[rng.integers(0, centres, n)] + 0.7 * rng.normal(size=(n, d))
    points = points.astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of `truth` found in the same row of `found`."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist(), strict=True)]))


@pytest.fixture(scope="module")
def catalog() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1,000 clustered 32-d vectors under scattered ids, and 50 held-out queries."""
    vectors = clustered(1050, 32, seed=1)
    ids = np.random.default_rng(2).permutation(1000).astype(np.int64) * 7 + 11
    return vectors[:1000], ids, vectors[1000:]


@pytest.fixture(scope="module")
def indexes(catalog: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, faiss.Index]:
    vectors, ids, _ = catalog
    return {kind: build_index(vectors, ids, kind) for kind in KINDS}


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


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_finds_the_numpy_top_10(
    kind: str, catalog: tuple[np.ndarray, np.ndarray, np.ndarray], indexes: dict[str, faiss.Index]
) -> None:
    vectors, ids, queries = catalog
    exact = queries @ vectors.T
    truth = ids[np.argsort(-exact, axis=1)[:, :10]]
    _, found = search(indexes[kind], queries, k=10)
    assert recall(found, truth) >= MIN_RECALL[kind]
    if kind == EXACT:
        np.testing.assert_array_equal(found, truth)
    # What the engine does with a pool: re-rank it by the exact inner products.
    _, pool = search(indexes[kind], queries, k=100)
    row_of = {film_id: row for row, film_id in enumerate(ids.tolist())}
    reranked = [
        [p[i] for i in np.argsort(-(vectors[[row_of[f] for f in p]] @ q))[:10]]
        for p, q in zip(pool.tolist(), queries, strict=True)
    ]
    assert recall(np.asarray(reranked), truth) >= MIN_RERANKED_RECALL


@pytest.mark.parametrize("kind", KINDS)
def test_a_search_limited_to_allowed_ids_returns_only_those(
    kind: str, catalog: tuple[np.ndarray, np.ndarray, np.ndarray], indexes: dict[str, faiss.Index]
) -> None:
    vectors, ids, queries = catalog
    allowed = ids[::3]
    _, found = search(indexes[kind], queries[:5], k=20, allowed=allowed)
    assert np.isin(found[found != MISSING_ID], allowed).all()
    if kind == EXACT:
        exact = queries[:5] @ vectors[::3].T
        np.testing.assert_array_equal(found, allowed[np.argsort(-exact, axis=1)[:, :20]])


def test_hnsw_returns_as_many_results_as_asked_beyond_its_ef_search(
    catalog: tuple[np.ndarray, np.ndarray, np.ndarray], indexes: dict[str, faiss.Index]
) -> None:
    """The engine asks for a pool of 1,000: far more than the walk keeps by default."""
    _, _, queries = catalog
    k = 4 * index_params(indexes[HNSW])["ef_search"]
    _, found = search(indexes[HNSW], queries[:3], k=k)
    assert (found != MISSING_ID).all()


@pytest.mark.parametrize("kind", KINDS)
def test_a_saved_index_keeps_its_kind_parameters_and_answers(
    kind: str, tmp_path: Path, catalog: tuple[np.ndarray, np.ndarray, np.ndarray], indexes: dict[str, faiss.Index]
) -> None:
    _, _, queries = catalog
    index = indexes[kind]
    save_index(index, tmp_path / "index.faiss")
    loaded = load_index(tmp_path / "index.faiss")
    assert index_kind(loaded) == kind
    assert index_params(loaded) == index_params(index)
    np.testing.assert_array_equal(search(loaded, queries, k=10)[1], search(index, queries, k=10)[1])


def test_search_parameters_set_on_the_index_survive_saving(tmp_path: Path, indexes: dict[str, faiss.Index]) -> None:
    hnsw, ivf = (faiss.deserialize_index(faiss.serialize_index(indexes[kind])) for kind in (HNSW, IVFPQ))
    faiss.downcast_index(hnsw.index).hnsw.efSearch = 77
    faiss.extract_index_ivf(ivf).nprobe = 5
    save_index(hnsw, tmp_path / "hnsw.faiss")
    save_index(ivf, tmp_path / "ivf.faiss")
    assert index_params(load_index(tmp_path / "hnsw.faiss"))["ef_search"] == 77
    assert index_params(load_index(tmp_path / "ivf.faiss"))["nprobe"] == 5


def test_hnsw_keeps_the_vectors_and_ivfpq_only_codes(
    catalog: tuple[np.ndarray, np.ndarray, np.ndarray], indexes: dict[str, faiss.Index]
) -> None:
    vectors, ids, _ = catalog
    stored_ids, stored = index_contents(indexes[HNSW])
    np.testing.assert_array_equal(stored_ids, ids)
    np.testing.assert_array_equal(stored, vectors)
    stored_ids, stored = index_contents(indexes[IVFPQ])
    np.testing.assert_array_equal(stored_ids, ids)
    assert stored is None


def test_auto_is_exact_up_to_the_threshold_and_hnsw_above() -> None:
    assert choose_kind(1000, AUTO, exact_max=1000) == EXACT
    assert choose_kind(1001, AUTO, exact_max=1000) == HNSW
    assert choose_kind(10, IVFPQ, exact_max=1000) == IVFPQ  # asked for: whatever the size
    assert choose_kind(10**6, EXACT) == EXACT
    with pytest.raises(ValueError, match="unknown index kind"):
        choose_kind(10, "annoy")


def test_an_index_of_another_kind_does_not_load(tmp_path: Path) -> None:
    faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatL2(4)), str(tmp_path / "l2.faiss"))
    with pytest.raises(ValueError, match="not an index this model makes"):
        load_index(tmp_path / "l2.faiss")
