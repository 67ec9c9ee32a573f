"""Inner-product search over normalised film vectors, addressed by catalog id.

Every index is an `IndexIDMap2` around one FAISS index, so search results are catalog ids by construction and never
depend on row order. Three kinds:

| kind    | inside          | search                                         | scores      | keeps the vectors  |
| ------- | --------------- | ---------------------------------------------- | ----------- | ------------------ |
| `exact` | `IndexFlatIP`   | every vector                                   | exact       | yes                |
| `hnsw`  | `IndexHNSWFlat` | a walk of a neighbour graph: approximate       | exact       | yes (flat storage) |
| `ivfpq` | `IndexIVFPQ`    | `nprobe` lists of PQ codes: approximate        | approximate | no: codes only     |

A build asks for `auto` unless told otherwise: `exact` up to `EXACT_MAX` films, `hnsw` above; `ivfpq` only when asked
for, trading recall for memory. The parameters below are the defaults benchmark B7 chose (docs/performance.md).
The search-time ones (HNSW `efSearch`, IVF `nprobe`) are fields of the index: `save_index` writes them and
`load_index` reads them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

MISSING_ID = -1
EXACT, HNSW, IVFPQ = "exact", "hnsw", "ivfpq"
KINDS = (EXACT, HNSW, IVFPQ)
AUTO = "auto"
EXACT_MAX = 20_000  # films: about where HNSW's search for the model's pool becomes the faster (B7)
HNSW_M = 32  # graph neighbours per vector (twice that on the bottom layer)
HNSW_EF_CONSTRUCTION = 256
HNSW_EF_SEARCH = 128  # candidates kept during a search; a search for more results keeps that many
PQ_DIMS = 8  # vector dimensions per PQ code: 48 codes for a 384-d vector
PQ_BITS = 8  # bits per code
IVF_NPROBE = 64  # inverted lists searched per query


def choose_kind(n_films: int, kind: str = AUTO, exact_max: int = EXACT_MAX) -> str:
    """The kind of index a build makes: `kind` itself, or for `auto` exact up to `exact_max` films and hnsw above."""
    if kind == AUTO:
        return EXACT if n_films <= exact_max else HNSW
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}: one of {', '.join((AUTO, *KINDS))}")
    return kind


def build_index(vectors: np.ndarray, ids: np.ndarray, kind: str = EXACT) -> faiss.IndexIDMap2:
    """Index `vectors` (n, d), float32, rows L2-normalised, under the int64 catalog `ids` (n,)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"need one id per vector: vectors {vectors.shape}, ids {ids.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("vector ids must be unique")
    index = faiss.IndexIDMap2(_empty_index(kind, vectors))
    index.add_with_ids(vectors, ids)
    return index


def _empty_index(kind: str, vectors: np.ndarray) -> faiss.Index:
    """An index of `kind` for vectors like these, trained on them where the kind needs training."""
    n, d = vectors.shape
    if kind == EXACT:
        return faiss.IndexFlatIP(d)
    if kind == HNSW:
        hnsw = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        return hnsw
    if kind == IVFPQ:
        nlist = ivf_lists(n)
        codes = max(m for m in range(1, max(1, d // PQ_DIMS) + 1) if d % m == 0)
        bits = min(PQ_BITS, max(1, int(np.log2(max(n, 2)))))  # k-means needs a point per centroid
        ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, codes, bits, faiss.METRIC_INNER_PRODUCT)
        ivf.nprobe = min(IVF_NPROBE, nlist)
        ivf.train(vectors)
        return ivf
    raise ValueError(f"unknown index kind {kind!r}: one of {', '.join(KINDS)}")


def ivf_lists(n_films: int) -> int:
    """Inverted lists of an IVF index over `n_films` vectors: about the square root, so lists hold as many."""
    return max(1, round(np.sqrt(n_films)))


def search(
    index: faiss.Index, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` by inner product for each query row: (scores, ids), each (n_queries, k), best first; `allowed`: the
    catalog ids results may have (None: any).

    Fewer than `k` results are padded with score -inf and id `MISSING_ID`: when the index holds fewer, and with an
    approximate index also when few films are allowed (a graph walk or the lists searched meet too few of them).
    An `ivfpq` index's scores are approximate."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(inner.hnsw.efSearch, k)  # the walk keeps at least as many candidates as it returns
    elif isinstance(inner, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = inner.nprobe
    else:
        params = faiss.SearchParameters()
    selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)) if allowed is not None else None
    params.sel = selector
    scores, ids = index.search(queries, k, params=params)
    scores[ids == MISSING_ID] = -np.inf
    return scores, ids


def index_kind(index: faiss.Index) -> str:
    """`exact`, `hnsw` or `ivfpq`: what the `IndexIDMap2` holds."""
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSWFlat):
        return HNSW
    if isinstance(inner, faiss.IndexIVFPQ):
        return IVFPQ
    if isinstance(inner, faiss.IndexFlat) and inner.metric_type == faiss.METRIC_INNER_PRODUCT:
        return EXACT
    raise ValueError(f"not an index this model makes: {type(inner).__name__}")


def index_params(index: faiss.Index) -> dict[str, Any]:
    """The kind and parameters of an index, as the model's `info` shows them and the build logs them."""
    kind = index_kind(index)
    inner = faiss.downcast_index(index.index)
    if kind == HNSW:
        graph = inner.hnsw
        return {"type": kind, "M": graph.nb_neighbors(1), "ef_construction": graph.efConstruction,
                "ef_search": graph.efSearch}  # fmt: skip
    if kind == IVFPQ:
        return {"type": kind, "nlist": inner.nlist, "pq_m": inner.pq.M, "pq_bits": inner.pq.nbits,
                "nprobe": inner.nprobe}  # fmt: skip
    return {"type": kind}


def stores_vectors(index: faiss.Index) -> bool:
    """Whether the index keeps the vectors whole (and so scores exactly): exact and hnsw do, ivfpq keeps codes."""
    return index_kind(index) != IVFPQ


def index_contents(index: faiss.Index) -> tuple[np.ndarray, np.ndarray | None]:
    """(ids (n,), vectors (n, d)) in the order stored; the vectors are a view of the index's memory, valid while the
    index lives, and None for an index that keeps only codes (`stores_vectors`)."""
    ids = faiss.vector_to_array(index.id_map).astype(np.int64, copy=False)
    if not stores_vectors(index):
        return ids, None
    inner = faiss.downcast_index(index.index)
    flat = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else inner
    n, d = flat.ntotal, flat.d
    return ids, faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)


def save_index(index: faiss.Index, path: str | Path) -> None:
    faiss.write_index(index, str(path))


def load_index(path: str | Path) -> faiss.IndexIDMap2:
    # read_index already returns the concrete class; wrapping it again in downcast_index would leave a proxy
    # whose owner is garbage-collected under it.
    index = faiss.read_index(str(path))
    if not isinstance(index, faiss.IndexIDMap2):
        raise ValueError(f"{path}: expected an IndexIDMap2, found {type(index).__name__}")
    index_kind(index)  # one of the kinds this model makes, or ValueError
    return index
