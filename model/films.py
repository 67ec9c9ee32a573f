"""The loaded catalog: every per-film array and record the ranking, the explanations and the answers read.

Rows are catalog rows (positions in `movies`); ids are catalog ids. The FAISS index holds one entry per id; `vectors`
holds the films' vectors in row order, so `vectors[row]` is the film of `movies.iloc[row]`. They are read out of the
index where it keeps them whole (exact, hnsw: no second copy in memory), else given (an ivfpq index keeps only codes;
its model stores `vectors.npy` beside it, model/artifacts.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faiss
import numpy as np
import pandas as pd
from scipy import sparse

from model.contract import EXPLAINED_FIELDS, RESPONSE_CAST
from model.index import index_contents
from model.resolve import TitleResolver

IMDB_URL = "https://www.imdb.com/title/{imdb_id}/"


class Films:
    """One catalog with its vectors, shared-people matrix, notability prior and response records."""

    def __init__(
        self,
        movies: pd.DataFrame,
        index: faiss.IndexIDMap2,
        people: sparse.csr_matrix,
        vectors: np.ndarray | None = None,
    ) -> None:
        """`vectors`: (n, dim) float32 in row order; None reads them out of the index, which must keep them."""
        self.movies = movies.reset_index(drop=True)
        self.index = index
        self.ids = self.movies["id"].to_numpy(dtype=np.int64)
        self._sorter = np.argsort(self.ids, kind="stable")
        self._sorted_ids = self.ids[self._sorter]
        vector_ids, stored = index_contents(index)
        if len(vector_ids) != len(self.ids) or not np.array_equal(np.sort(vector_ids), self._sorted_ids):
            raise ValueError("the index must hold exactly one vector per catalog id")
        if vectors is None and stored is None:
            raise ValueError("this index keeps no vectors: pass them in row order")
        if vectors is None:
            # the build adds vectors in row order, and then this is the index's memory
            in_order = np.array_equal(vector_ids, self.ids)
            vectors = stored if in_order else stored[np.argsort(self.find(vector_ids))]
        if vectors.shape != (len(self.ids), index.d):
            raise ValueError(f"vectors {vectors.shape} for {len(self.ids)} films of dimension {index.d}")
        self.vectors = vectors  # (n, dim) float32 in row order
        if people.shape[0] != len(self.ids):
            raise ValueError(f"people matrix has {people.shape[0]} rows for {len(self.ids)} films")
        self.people = people.tocsr()
        self.prior = self._column("prior", np.float32, 0.0)
        self.years = self._column("year", np.float64, np.nan)  # NaN where unknown
        self.records = film_records(self.movies)
        self.lists = {name: self.movies[name].tolist() for name in EXPLAINED_FIELDS}
        self.sets = {name: [frozenset(values) for values in lists] for name, lists in self.lists.items()}
        self.genres = genre_index(self.movies["genres"])
        self.resolver = TitleResolver(self.movies["title"].tolist(), self.movies["year"].tolist(), self.prior)

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, ids: np.ndarray) -> np.ndarray:
        """Rows of catalog `ids`, -1 where an id is not in the catalog."""
        ids = np.asarray(ids, dtype=np.int64)
        slots = np.clip(np.searchsorted(self._sorted_ids, ids), 0, len(self._sorted_ids) - 1)
        return np.where(self._sorted_ids[slots] == ids, self._sorter[slots], -1)

    def rows_of(self, ids: Iterable[int]) -> np.ndarray:
        """Rows of catalog ids that must all exist (KeyError naming the first unknown ones otherwise)."""
        wanted = np.asarray(list(ids), dtype=np.int64)
        found = self.find(wanted)
        if (found < 0).any():
            raise KeyError(f"unknown catalog id(s) among {wanted[found < 0][:5].tolist()}")
        return found

    def row(self, film_id: int) -> int | None:
        """The row of one catalog id, or None."""
        found = int(self.find(np.asarray([film_id]))[0])
        return found if found >= 0 else None

    def brief(self, row: int) -> dict[str, Any]:
        """What a suggestion or a search result shows of a film."""
        film = self.records[row]
        return {"id": film["id"], "title": film["title"], "year": film["year"], "genres": film["genres"]}

    def _column(self, name: str, dtype: type, missing: float) -> np.ndarray:
        if name not in self.movies:
            return np.full(len(self.movies), missing, dtype=dtype)
        return self.movies[name].to_numpy(dtype=dtype, na_value=missing)


def film_records(movies: pd.DataFrame) -> list[dict[str, Any]]:
    """Each film's response fields (`model.contract.FILM`, in its order), one dict per row."""
    columns = ("id", "title", "year", "genres", "directors", "cast", "imdb_id", "cover_url")
    return [
        {
            "id": int(film_id),
            "title": title,
            "year": None if pd.isna(year) else int(year),
            "genres": list(genres),
            "directors": list(directors),
            "cast": list(cast)[:RESPONSE_CAST],
            "imdb_id": imdb_id if isinstance(imdb_id, str) else None,
            "imdb_url": IMDB_URL.format(imdb_id=imdb_id) if isinstance(imdb_id, str) else None,
            "cover_url": cover if isinstance(cover, str) and cover else None,
        }
        for film_id, title, year, genres, directors, cast, imdb_id, cover in zip(
            *(movies[column].tolist() for column in columns), strict=True
        )
    ]


def genre_key(genre: str) -> str:
    """A genre name as compared: "sci fi", "SciFi" and "sci-fi" are one genre."""
    return "".join(ch for ch in genre.casefold() if ch.isalnum())


def genre_index(genres: pd.Series) -> dict[str, tuple[str, np.ndarray]]:
    """`genre_key` → (the catalog's spelling, bool mask of the films that have it)."""
    index: dict[str, tuple[str, np.ndarray]] = {}
    for row, names in enumerate(genres):
        for name in names:
            key = genre_key(name)
            if key not in index:
                index[key] = (name, np.zeros(len(genres), dtype=bool))
            index[key][1][row] = True
    return index
