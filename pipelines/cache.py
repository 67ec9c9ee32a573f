"""Build caches in a local folder (default `.cache/build`, git-ignored): nothing is recomputed that has not changed.

- Embeddings: each movie text's vector and token count, keyed by SHA-256 of the text, in one file per encoder
  digest (a hash of the encoder's files and settings): a changed encoder starts an empty cache.
- Neighbour lists: keyed by a digest of everything they depend on (vectors, people matrix, prior, years, ids,
  ranking weights, k, the `model` package's code); the newest few are kept.
- Dense pools (model/neighbours.py): the last build's nearest films per film, which the next build carries over
  for every film whose vector did not change. One file, replaced by each build that computes neighbours.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.encoder import MAX_TOKENS
from model.neighbours import DensePools, Neighbours
from model.neighbours import load_neighbours as read_neighbours

logger = logging.getLogger(__name__)

DEFAULT_FOLDER = Path(".cache/build")
KEEP_NEIGHBOUR_FILES = 3
POOLS_FILE = "dense-pools.npz"


def digest(*parts: Any) -> str:
    """SHA-256 over numpy arrays (their bytes, dtype and shape), bytes, and JSON-able values."""
    hasher = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            hasher.update(f"{part.dtype}{part.shape}".encode())
            hasher.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            hasher.update(part)
        else:
            hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
    return hasher.hexdigest()


def folder_digest(folder: Path) -> str:
    """Digest of every file under `folder` (names and contents)."""
    hasher = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        hasher.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    return hasher.hexdigest()


class EmbeddingCache:
    """Vectors and token counts of texts already encoded by one encoder."""

    @classmethod
    def of_encoder(cls, folder: Path | None, encoder_dir: Path) -> EmbeddingCache:
        """The cache of what the encoder saved in `encoder_dir` makes, as the build encodes (normalised vectors,
        texts cut at the encoder's token window): keyed by the encoder's files, so another encoder starts afresh."""
        return cls(folder, digest(folder_digest(encoder_dir), MAX_TOKENS, "normalized"))

    def __init__(self, folder: Path | None, encoder_digest: str) -> None:
        self.path = (folder / f"embeddings-{encoder_digest[:16]}.npz") if folder else None
        self._index: dict[bytes, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._tokens = np.zeros(0, dtype=np.int32)
        if self.path and self.path.is_file():
            with np.load(self.path) as data:
                # Raw digests as uint8 rows: numpy's bytes dtype would strip a digest's trailing zero bytes.
                keys = [row.tobytes() for row in data["keys"]]
                vectors, tokens = data["vectors"], data["tokens"]
            if len(keys) == len(vectors) == len(tokens) == len(set(keys)):
                self._vectors, self._tokens = vectors, tokens
                self._index = {key: i for i, key in enumerate(keys)}
                logger.info("embedding cache: %d texts from %s", len(self._index), self.path)
            else:
                logger.warning("embedding cache %s is inconsistent: ignored and rebuilt", self.path)

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(vectors, token counts, positions of the texts not in the cache); missing rows are zero."""
        keys = [_key(text) for text in texts]
        hits = [self._index.get(key, -1) for key in keys]
        missing = [i for i, hit in enumerate(hits) if hit < 0]
        dim = self._vectors.shape[1] if self._vectors.size else 0
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        tokens = np.zeros(len(texts), dtype=np.int32)
        found = np.asarray([i for i, hit in enumerate(hits) if hit >= 0], dtype=np.int64)
        if len(found):
            rows = np.asarray([hits[i] for i in found], dtype=np.int64)
            vectors[found], tokens[found] = self._vectors[rows], self._tokens[rows]
        return vectors, tokens, missing

    def add(self, texts: Sequence[str], vectors: np.ndarray, tokens: np.ndarray) -> None:
        new: dict[bytes, int] = {}  # key -> first position; identical texts share one entry
        for i, text in enumerate(texts):
            key = _key(text)
            if key not in self._index and key not in new:
                new[key] = i
        if not new:
            return
        start = len(self._index)
        rows = np.asarray(list(new.values()), dtype=np.int64)
        self._vectors = np.concatenate([self._vectors.reshape(-1, vectors.shape[1]), vectors[rows]])
        self._tokens = np.concatenate([self._tokens, tokens[rows].astype(np.int32)])
        self._index.update({key: start + n for n, key in enumerate(new)})

    def save(self) -> None:
        if not self.path:
            return
        keys = np.frombuffer(b"".join(self._index), dtype=np.uint8).reshape(-1, 32)
        _save_npz(self.path, keys=keys, vectors=self._vectors, tokens=self._tokens)


def load_neighbours(folder: Path | None, key: str) -> Neighbours | None:
    path = folder / f"neighbours-{key[:24]}.npz" if folder else None
    if path is None or not path.is_file():
        return None
    return read_neighbours(path)


def save_neighbours(folder: Path | None, key: str, neighbours: Neighbours) -> None:
    if not folder:
        return
    _save_npz(folder / f"neighbours-{key[:24]}.npz", **{k: v for k, v in neighbours._asdict().items() if v is not None})
    older = sorted(folder.glob("neighbours-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in older[KEEP_NEIGHBOUR_FILES:]:
        stale.unlink(missing_ok=True)


def load_pools(folder: Path | None) -> DensePools | None:
    """The last build's dense pools, or None (no cache, none yet, or unreadable)."""
    path = folder / POOLS_FILE if folder else None
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as data:
            pools = DensePools(data["ids"], data["keys"], data["rows"], data["sims"])
    except (OSError, ValueError, KeyError) as error:
        logger.warning("dense pools %s unreadable (%s): every film is searched again", path, error)
        return None
    n = len(pools.ids)
    if not (len(pools.keys) == n and pools.rows.shape == pools.sims.shape and len(pools.rows) == n):
        logger.warning("dense pools %s are inconsistent: every film is searched again", path)
        return None
    return pools


def save_pools(folder: Path | None, pools: DensePools) -> None:
    if folder:
        _save_npz(folder / POOLS_FILE, ids=pools.ids, keys=pools.keys, rows=pools.rows, sims=pools.sims)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays to `path` whole or not at all: to a temporary file first, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(path)


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()
