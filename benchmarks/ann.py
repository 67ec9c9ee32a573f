"""B7: exact, HNSW and IVF-PQ search (model/index.py) on a million synthetic film vectors and on the real catalog.

    python -m benchmarks.ann [--quick] [--n 1000000] [--queries 1000]

Every index is built by `model.index.build_index` with the model's defaults and searched by `model.index.search`,
one query at a time on one FAISS thread, as the scoring server searches (builds use every core). For each kind:
build seconds, serialised bytes (`index.faiss`; IVF-PQ's model also stores `vectors.npy`, counted apart), and two
searches:
- k = 10: recall@10 against exact search, p50/p99 per query;
- k = the model's pool (1,000, what a live recommendation asks for), re-ranked by exact inner products as the
  engine re-ranks it: recall@10 after that, p50/p99 of the search (on the first `POOL_QUERIES` queries).

(a) `synthetic`: `--n` seeded vectors (see `synthetic` for how they are clustered), `--queries` held out; with
    sweeps of HNSW efSearch and IVF nprobe.
(b) `crossover`: exact against HNSW on the first n of the same vectors, n growing: p50 of exact search, and of HNSW
    at the smallest efSearch reaching recall@10 >= 0.99 (k = 10) and at the pool; `auto`'s threshold
    (`EXACT_MAX`) is where exact stops being the faster one for the pool.
(c) `catalog`: the default catalog's vectors (the build's embedding cache, else encoded on the CPU), 1,000 films held
    out as queries, every kind forced.
`--quick`: 100,000 synthetic vectors, for trying it out.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.common import summary, write_result
from model.index import EXACT, EXACT_MAX, HNSW, IVFPQ, KINDS, build_index, index_params, save_index, search
from model.ranking import Ranking

DIM = 384
POOL = Ranking.pool
POOL_QUERIES = 200
TARGET_RECALL_1M, TARGET_P50_MS_1M = 0.95, 1.0
TARGET_CATALOG_RECALL = 0.99
EF_SEARCH = (16, 32, 64, 128, 256, 512)
NPROBE = (8, 16, 32, 64, 128, 256)
CROSSOVER_SIZES = (1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 50_000, 100_000)
CATALOG_QUERIES = 1_000


def synthetic(n: int, seed: int = 0, centres: int = 2000) -> np.ndarray:
    """`n` unit vectors (n, 384) float32 shaped like sentence embeddings of films: a direction all share (the catalog's
    vectors have a mean of norm 0.57), one of `centres` random centres drawn with log-normal weights (genres and
    kinds of film of unequal size), and Gaussian noise of a log-normal scale per vector (films typical and odd).
    Centres and noise are anisotropic, as learnt embeddings are: in a random basis, the variance of axis j falls as
    1/j. The constants are those under which a sample of the catalog's size has its nearest-neighbour cosines, its
    effective dimension and HNSW's recall on it at efSearch 64 and 128; `calibration` records the first two."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    spread = 1 / np.arange(1, DIM + 1)
    shape = (np.sqrt(spread / spread.mean())[:, None] * basis.T).astype(np.float32)  # white noise @ shape
    shared = _unit(rng.standard_normal(DIM))
    centre = _unit(rng.standard_normal((centres, DIM)).astype(np.float32) @ shape)
    weights = rng.lognormal(0.0, 1.0, centres)
    assignment = rng.choice(centres, n, p=weights / weights.sum())
    scale = 1.4 * rng.lognormal(0.0, 0.5, n) / np.sqrt(DIM)
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        part = slice(start, min(start + 100_000, n))
        noise = rng.standard_normal((part.stop - part.start, DIM), dtype=np.float32) @ shape
        vectors[part] = _unit(1.2 * shared + centre[assignment[part]] + scale[part, None] * noise)
    return vectors


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def calibration(vectors: np.ndarray, sample: int = 2000) -> dict[str, float]:
    """Mean cosine of a vector to its nearest and 10th-nearest other vector and of two random vectors; how many
    principal axes hold 90% of the variance."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    scores, _ = index.search(vectors[:sample], 11)
    pairs = np.einsum("ij,ij->i", vectors[:sample], vectors[sample : 2 * sample])
    centred = vectors[: 5 * sample] - vectors[: 5 * sample].mean(axis=0)
    variance = np.linalg.svd(centred, compute_uv=False) ** 2
    return {
        "top1_cosine": round(float(scores[:, 1].mean()), 3),
        "top10_cosine": round(float(scores[:, 10].mean()), 3),
        "random_pair_cosine": round(float(pairs.mean()), 3),
        "dims_for_90_percent_variance": int(np.searchsorted(np.cumsum(variance) / variance.sum(), 0.9)) + 1,
    }


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Positions (n_queries, k) of each query's exact top-k, on every core."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return index.search(queries, k)[1]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True)]
    return round(sum(hits) / truth.size, 4)


def one_at_a_time(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """(ids (n, k), milliseconds per query) of `model.index.search`, one query after the other, one thread."""
    faiss.omp_set_num_threads(1)
    found = np.empty((len(queries), k), dtype=np.int64)
    latencies = []
    for i, query in enumerate(queries):
        started = time.perf_counter()
        found[i] = search(index, query, k)[1][0]
        latencies.append((time.perf_counter() - started) * 1000)
    return found, latencies


def reranked(vectors: np.ndarray, queries: np.ndarray, pools: np.ndarray, k: int = 10) -> np.ndarray:
    """Each pool's `k` best by exact inner product, as the engine re-ranks the pool it retrieves."""
    best = np.empty((len(queries), k), dtype=np.int64)
    for i, (query, pool) in enumerate(zip(queries, pools, strict=True)):
        pool = pool[pool >= 0]
        best[i] = pool[np.argsort(-(vectors[pool] @ query))[:k]]
    return best


def timed_build(vectors: np.ndarray, kind: str) -> tuple[faiss.Index, float]:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index = build_index(vectors, np.arange(len(vectors), dtype=np.int64), kind)
    return index, round(time.perf_counter() - started, 2)


def index_bytes(index: faiss.Index) -> int:
    """Size of the index as the model saves it (`index.faiss`)."""
    with tempfile.TemporaryDirectory(prefix="b7-") as folder:
        path = Path(folder) / "index.faiss"
        save_index(index, path)
        return path.stat().st_size


def measure(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """recall@10 and latency at k = 10, and for the pool re-ranked exactly (the first POOL_QUERIES queries)."""
    found, latencies = one_at_a_time(index, queries, 10)
    few = slice(0, min(POOL_QUERIES, len(queries)))
    pools, pool_latencies = one_at_a_time(index, queries[few], min(POOL, len(vectors)))
    return {
        "recall_at_10": recall(found, truth),
        "search": summary(latencies),
        "pool_recall_at_10": recall(reranked(vectors, queries[few], pools), truth[few]),
        "pool_search": summary(pool_latencies),
    }


def compare_kinds(vectors: np.ndarray, queries: np.ndarray, sweeps: bool) -> dict[str, Any]:
    """Every kind with the model's defaults on `vectors`; with `sweeps`, HNSW efSearch and IVF nprobe too."""
    truth = exact_top(vectors, queries, 10)
    figures: dict[str, Any] = {}
    for kind in KINDS:
        index, seconds = timed_build(vectors, kind)
        figures[kind] = {
            "params": index_params(index),
            "build_seconds": seconds,
            "index_bytes": index_bytes(index),
            "vectors_bytes": 0 if kind != IVFPQ else vectors.nbytes,  # vectors.npy beside an IVF-PQ index
            **measure(index, vectors, queries, truth),
        }
        if sweeps and kind == HNSW:
            figures[kind]["ef_search_sweep"] = sweep(index, vectors, queries, truth, "ef_search", EF_SEARCH)
        if sweeps and kind == IVFPQ:
            figures[kind]["nprobe_sweep"] = sweep(index, vectors, queries, truth, "nprobe", NPROBE)
        print(kind, figures[kind], flush=True)
        del index
    return figures


def sweep(
    index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, name: str, values: tuple
) -> list[dict[str, Any]]:
    """`measure` at each value of one search-time parameter, set on the index as a model would store it."""
    inner = faiss.downcast_index(index.index)
    holder, field = (inner.hnsw, "efSearch") if name == "ef_search" else (inner, "nprobe")
    default = getattr(holder, field)
    rows = []
    for value in values:
        setattr(holder, field, value)
        rows.append({name: value, **measure(index, vectors, queries, truth)})
    setattr(holder, field, default)
    return rows


def crossover(vectors: np.ndarray, queries: np.ndarray, sizes: tuple[int, ...]) -> dict[str, Any]:
    """Exact against HNSW p50 per query at growing catalog sizes (the first n vectors), at k = 10 and for the pool."""
    rows = []
    for n in sizes:
        part = vectors[:n]
        truth = exact_top(part, queries, 10)
        exact, _ = timed_build(part, EXACT)
        hnsw, _ = timed_build(part, HNSW)
        pool = min(POOL, n)
        row: dict[str, Any] = {"films": n}
        row["exact_p50_ms"] = summary(one_at_a_time(exact, queries, 10)[1])["p50_ms"]
        row["exact_pool_p50_ms"] = summary(one_at_a_time(exact, queries, pool)[1])["p50_ms"]
        row.update(_hnsw_at_recall(hnsw, queries, truth, 0.99))
        found, latencies = one_at_a_time(hnsw, queries, pool)
        row["hnsw_pool_p50_ms"] = summary(latencies)["p50_ms"]
        row["hnsw_pool_recall_at_10"] = recall(reranked(part, queries, found), truth)
        print("crossover", row, flush=True)
        rows.append(row)
    return {
        "queries": len(queries),
        "rows": rows,
        "k10_exact_slower_from": _first(rows, "exact_p50_ms", "hnsw_p50_ms"),
        "pool_exact_slower_from": _first(rows, "exact_pool_p50_ms", "hnsw_pool_p50_ms"),
        "exact_max": EXACT_MAX,
    }


def _hnsw_at_recall(index: faiss.Index, queries: np.ndarray, truth: np.ndarray, target: float) -> dict[str, Any]:
    """HNSW at k = 10 with the smallest efSearch of EF_SEARCH reaching `target` recall@10 (else the largest)."""
    inner = faiss.downcast_index(index.index)
    for ef in EF_SEARCH:
        inner.hnsw.efSearch = ef
        found, latencies = one_at_a_time(index, queries, 10)
        if recall(found, truth) >= target or ef == EF_SEARCH[-1]:
            return {"hnsw_ef_search": ef, "hnsw_recall_at_10": recall(found, truth),
                    "hnsw_p50_ms": summary(latencies)["p50_ms"]}  # fmt: skip
    raise AssertionError("unreachable")


def _first(rows: list[dict[str, Any]], exact: str, hnsw: str) -> int | None:
    """The smallest size from which exact search is slower than HNSW at every larger size measured."""
    slower = [row[exact] > row[hnsw] for row in rows]
    for i in range(len(rows)):
        if all(slower[i:]):
            return rows[i]["films"]
    return None


def catalog_vectors() -> np.ndarray:
    """The default catalog's film vectors as the build makes them: from its embedding cache, the rest encoded."""
    from model.catalog import load_catalog
    from model.encoder import default_encoder_path, encode, load_encoder
    from model.text import TextConfig, movie_texts, rank_cast
    from pipelines.cache import DEFAULT_FOLDER, EmbeddingCache

    movies = load_catalog().movies
    texts = movie_texts(movies.assign(cast=rank_cast(movies["cast"].tolist())), TextConfig())
    encoder_dir = default_encoder_path()
    cache = EmbeddingCache.of_encoder(DEFAULT_FOLDER, encoder_dir)
    vectors, _, missing = cache.lookup(texts)
    if missing:
        print(f"encoding {len(missing)} of {len(texts)} films on the CPU", flush=True)
        fresh = encode(load_encoder(encoder_dir, device="cpu"), [texts[i] for i in missing])
        if not vectors.size:
            vectors = np.zeros((len(texts), fresh.shape[1]), dtype=np.float32)
        vectors[missing] = fresh
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 synthetic vectors")
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic vectors")
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    n = 100_000 if args.quick else args.n
    load_before = os.getloadavg()
    everything = synthetic(n + args.queries)
    vectors, queries = everything[:n], everything[n:]
    real = catalog_vectors()
    held_out = np.random.default_rng(0).permutation(len(real))
    real_queries, real_indexed = real[held_out[:CATALOG_QUERIES]], real[held_out[CATALOG_QUERIES:]]
    figures: dict[str, Any] = {
        "calibration": {"synthetic_sample": calibration(vectors[: len(real)]), "catalog": calibration(real)},
        "synthetic": {"films": n, "queries": len(queries), **compare_kinds(vectors, queries, sweeps=True)},
        "crossover": crossover(vectors, queries[:POOL_QUERIES], tuple(s for s in CROSSOVER_SIZES if s <= n)),
        "catalog": {"films": len(real_indexed), "queries": len(real_queries),
                    **compare_kinds(real_indexed, real_queries, sweeps=False)},
        "targets": {"synthetic_hnsw_recall_at_10": TARGET_RECALL_1M, "synthetic_hnsw_p50_ms": TARGET_P50_MS_1M,
                    "catalog_recall_at_10": TARGET_CATALOG_RECALL},
        "load_average": {"start": [round(v, 2) for v in load_before],
                         "end": [round(v, 2) for v in os.getloadavg()]},
    }  # fmt: skip
    write_result("b7_ann", figures)


if __name__ == "__main__":
    main()
