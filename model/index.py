"""Exact inner-product search over normalised film vectors, addressed by catalog id.

The FAISS index is an `IndexIDMap2` around an `IndexFlatIP`: every vector carries its catalog id, so search results
are catalog ids by construction and never depend on row order.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

MISSING_ID = -1


def build_index(vectors: np.ndarray, ids: np.ndarray) -> faiss.IndexIDMap2:
    """Index `vectors` (n, d), float32, rows L2-normalised, under the int64 catalog `ids` (n,)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"need one id per vector: vectors {vectors.shape}, ids {ids.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("vector ids must be unique")
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    index.add_with_ids(vectors, ids)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` by inner product for each query row: (scores, ids), each (n_queries, k), best first.

    When the index holds fewer than `k` vectors the tail is padded with score -inf and id `MISSING_ID`.
    """
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    scores, ids = index.search(queries, k)
    scores[ids == MISSING_ID] = -np.inf
    return scores, ids


def index_contents(index: faiss.IndexIDMap2) -> tuple[np.ndarray, np.ndarray]:
    """(ids (n,), vectors (n, d)) as stored: a view of the index's memory, valid while the index lives."""
    flat = faiss.downcast_index(index.index)
    n, d = flat.ntotal, flat.d
    vectors = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)
    ids = faiss.vector_to_array(index.id_map).astype(np.int64, copy=False)
    return ids, vectors


def save_index(index: faiss.Index, path: str | Path) -> None:
    faiss.write_index(index, str(path))


def load_index(path: str | Path) -> faiss.IndexIDMap2:
    # read_index already returns the concrete class; wrapping it again in downcast_index would leave a proxy
    # whose owner is garbage-collected under it.
    index = faiss.read_index(str(path))
    if not isinstance(index, faiss.IndexIDMap2):
        raise ValueError(f"{path}: expected an IndexIDMap2, found {type(index).__name__}")
    return index
