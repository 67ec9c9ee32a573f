from __future__ import annotations

from pathlib import Path

import numpy as np

from model.neighbours import DensePools, Neighbours
from pipelines.cache import (
    POOLS_FILE,
    EmbeddingCache,
    digest,
    load_neighbours,
    load_pools,
    save_neighbours,
    save_pools,
)


def test_embedding_cache_round_trip_with_repeated_texts(tmp_path: Path) -> None:
    texts = ["a", "b", "a", "c"]
    vectors = np.arange(8, dtype=np.float32).reshape(4, 2)
    cache = EmbeddingCache(tmp_path, "enc")
    assert cache.lookup(texts)[2] == [0, 1, 2, 3]
    cache.add(texts, vectors, np.array([1, 2, 1, 3]))
    cache.save()
    reloaded = EmbeddingCache(tmp_path, "enc")
    found, tokens, missing = reloaded.lookup(["c", "a", "z", "b"])
    assert missing == [2]
    np.testing.assert_array_equal(found[[0, 1, 3]], vectors[[3, 0, 1]])
    assert tokens.tolist() == [3, 1, 0, 2]


def test_a_changed_encoder_starts_empty(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "encoder-one")
    cache.add(["a"], np.ones((1, 2), dtype=np.float32), np.ones(1))
    cache.save()
    assert EmbeddingCache(tmp_path, "encoder-two").lookup(["a"])[2] == [0]


def test_neighbour_cache_by_key(tmp_path: Path) -> None:
    key = digest(np.arange(3), {"w": 1})
    assert key != digest(np.arange(3), {"w": 2})
    assert load_neighbours(tmp_path, key) is None
    save_neighbours(tmp_path, key, Neighbours(np.ones((2, 2), dtype=np.int32), np.zeros((2, 2), dtype=np.float32)))
    rows = load_neighbours(tmp_path, key).rows
    assert rows.tolist() == [[1, 1], [1, 1]]


def test_keys_ending_in_zero_bytes_survive(tmp_path: Path) -> None:
    import hashlib

    texts = [f"text {i}" for i in range(2000)]
    assert any(hashlib.sha256(t.encode()).digest().endswith(b"\x00") for t in texts)
    cache = EmbeddingCache(tmp_path, "enc")
    cache.add(texts, np.random.default_rng(0).random((2000, 3), dtype=np.float32), np.ones(2000))
    cache.save()
    assert EmbeddingCache(tmp_path, "enc").lookup(texts)[2] == []


def test_dense_pools_round_trip_and_a_damaged_file_is_ignored(tmp_path: Path) -> None:
    assert load_pools(tmp_path) is None and load_pools(None) is None
    pools = DensePools(
        np.array([5, 9]), np.array([1, 2], dtype=np.uint64), np.array([[0, 1], [1, -1]], dtype=np.int32),
        np.array([[1.0, 0.5], [1.0, -np.inf]], dtype=np.float32),
    )  # fmt: skip
    save_pools(tmp_path, pools)
    again = load_pools(tmp_path)
    assert again is not None
    for name in ("ids", "keys", "rows", "sims"):
        np.testing.assert_array_equal(getattr(again, name), getattr(pools, name))
    (tmp_path / POOLS_FILE).write_bytes(b"not a numpy file")
    assert load_pools(tmp_path) is None
    np.savez(tmp_path / POOLS_FILE, ids=pools.ids, keys=pools.keys[:1], rows=pools.rows, sims=pools.sims)
    assert load_pools(tmp_path) is None
