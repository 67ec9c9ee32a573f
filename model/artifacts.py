"""The model's artifacts on disk: names, layout, writing and reading.

| artifact         | content                                                                  |
| ---------------- | ------------------------------------------------------------------------ |
| `encoder/`       | the SentenceTransformer, saved whole (weights, tokenizer, pooling)       |
| `index.faiss`    | FAISS `IndexIDMap2` (exact, hnsw or ivfpq, model/index.py), one entry per catalog id |
| `vectors.npy`    | float32 (n, dim), row order: only beside an index that keeps no vectors (ivfpq) |
| `movies.parquet` | the catalog (catalog.COLUMNS) plus `prior`, cast ranked by catalog frequency |
| `people.npz`     | shared-people TF-IDF matrix (scipy CSR), one row per catalog row         |
| `neighbours.npz` | each film's 100 best recommendations (rows, scores, shared fields), model/neighbours.py |
| `engagement.npz` | co-engagement learned from events (model/engagement.py): only in a model built from some |
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import sparse

from model.catalog import LIST_COLUMNS
from model.engagement import Engagement, load_engagement, save_engagement
from model.index import load_index, save_index, stores_vectors
from model.neighbours import Neighbours, load_neighbours, save_neighbours

ENCODER = "encoder"
INDEX = "index"
MOVIES = "movies"
PEOPLE = "people"
NEIGHBOURS = "neighbours"
VECTORS = "vectors"
ENGAGEMENT = "engagement"
FILES = {
    ENCODER: "encoder",
    INDEX: "index.faiss",
    MOVIES: "movies.parquet",
    PEOPLE: "people.npz",
    NEIGHBOURS: "neighbours.npz",
    VECTORS: "vectors.npy",
    ENGAGEMENT: "engagement.npz",
}


def save_artifacts(
    folder: str | Path,
    encoder: Path,
    index: faiss.Index,
    movies: pd.DataFrame,
    people: sparse.csr_matrix,
    neighbours: Neighbours,
    vectors: np.ndarray,
    engagement: Engagement | None = None,
) -> dict[str, str]:
    """Write the artifacts under `folder` (`encoder`: a saved SentenceTransformer folder, copied whole; `vectors`:
    the films', row order, written only when the index keeps none; `engagement`: only when learned); returns
    {artifact name: path} for `mlflow.pyfunc.log_model`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: str(folder / file) for name, file in FILES.items()}
    if stores_vectors(index):
        del paths[VECTORS]
    else:
        np.save(paths[VECTORS], np.ascontiguousarray(vectors, dtype=np.float32))
    if engagement is None:
        del paths[ENGAGEMENT]
    else:
        save_engagement(paths[ENGAGEMENT], engagement)
    shutil.copytree(encoder, paths[ENCODER], copy_function=_link_or_copy)  # MLflow copies the folder again
    save_index(index, paths[INDEX])
    movies.to_parquet(paths[MOVIES], index=False)
    sparse.save_npz(paths[PEOPLE], people.tocsr(), compressed=True)
    save_neighbours(paths[NEIGHBOURS], neighbours)
    return paths


def _link_or_copy(source: str, destination: str) -> None:
    """A hard link where the file system allows one (the encoder's 88 MB are only read from here), else a copy."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def code_digest(package: Path | None = None) -> str:
    """Short SHA-256 of the `model` package's source: which code a build shipped, and which code evaluates it."""
    package = package or Path(__file__).parent
    digest = hashlib.sha256()
    for source in sorted(package.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def read_movies(path: str | Path) -> pd.DataFrame:
    """The catalog as written by `save_artifacts`, list columns as Python lists."""
    table = pq.read_table(path)
    # Arrow makes the lists directly (pandas would make an array per cell, each then copied into a list).
    lists = {column: [value or [] for value in table.column(column).to_pylist()] for column in LIST_COLUMNS}
    movies = table.drop_columns(list(lists)).to_pandas()
    for column, values in lists.items():
        movies[column] = values
    movies = movies[table.column_names]
    if "imdb_id" not in movies:  # a model built before catalogs carried IMDb ids (evaluated by this code)
        movies["imdb_id"] = None
    return movies


def read_artifacts(
    paths: Mapping[str, str],
) -> tuple[pd.DataFrame, faiss.IndexIDMap2, sparse.csr_matrix, Neighbours | None, str]:
    """(movies, index, people matrix, neighbour lists, encoder folder) from the paths MLflow hands to
    `load_context`; no neighbour lists in a model logged without them."""
    people = sparse.load_npz(paths[PEOPLE]).tocsr()
    neighbours = load_neighbours(paths[NEIGHBOURS]) if NEIGHBOURS in paths else None
    return read_movies(paths[MOVIES]), load_index(paths[INDEX]), people, neighbours, paths[ENCODER]


def read_engagement(paths: Mapping[str, str]) -> Engagement | None:
    """What the model learned from engagement, or None for a model built from content only."""
    return load_engagement(paths[ENGAGEMENT]) if ENGAGEMENT in paths else None


def read_vectors(paths: Mapping[str, str]) -> np.ndarray | None:
    """The films' vectors of a model whose index keeps none (memory-mapped: the pages a query touches are read),
    else None: they are in the index."""
    return np.load(paths[VECTORS], mmap_mode="r") if VECTORS in paths else None
