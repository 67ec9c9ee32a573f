"""A tiny catalog with a hashing stand-in encoder: the engine's logic without model weights."""

from __future__ import annotations

import numpy as np
import pytest

from model.engine import Engine
from model.explain import Encode
from model.films import Films
from model.index import build_index
from model.people import people_matrix
from model.prior import notability_prior
from model.text import movie_texts
from tests.conftest import hashing_vectors, tiny_catalog

ROWS = [
    {"id": 10 + i, "title": f"Space Saga {i}", "year": 1990 + i, "genres": "Sci-Fi", "directors": "Ann Lee"}
    for i in range(8)
] + [
    {"id": 500, "title": "Hamlet", "year": 1948, "genres": "Drama", "reviews": 40, "cast": "Laurence Olivier"},
    {"id": 501, "title": "Hamlet", "year": 1996, "genres": "Drama", "reviews": 90, "cast": "Kate Winslet"},
    {
        "id": 502,
        "title": "Kitchen Comedy",
        "year": 2001,
        "genres": "Comedy",
        "cover_url": "https://img/k.jpg",
        "imdb_id": "tt0000502",
    },
    {"id": 503, "title": "Galaxy Cook-Off", "year": 2002, "genres": "Comedy, Sci-Fi", "directors": "Ann Lee"},
    {"id": 504, "title": "Denmark Docs", "year": 1999, "genres": "Documentary, Drama", "cast": "Kate Winslet"},
]
SAGA = list(range(10, 18))
# what every film record of an answer holds
FILM_FIELDS = {"id", "title", "year", "genres", "directors", "cast", "imdb_id", "imdb_url", "cover_url"}


def hashing_encoder() -> Encode:
    return lambda texts: hashing_vectors(texts)


@pytest.fixture(scope="session")
def films() -> Films:
    movies = tiny_catalog(ROWS)
    movies = movies.assign(prior=notability_prior(movies))  # as the build adds it
    # Vectors added in reverse order, so that index positions and catalog rows differ: ids must carry the mapping.
    vectors = hashing_vectors(movie_texts(movies))
    index = build_index(vectors[::-1].copy(), movies["id"].to_numpy()[::-1].copy())
    return Films(movies, index, people_matrix(movies))


@pytest.fixture(scope="session")
def engine(films: Films) -> Engine:
    return Engine(films, info={"model_name": "test"}, load_encoder=hashing_encoder)


def vector_of(films: Films, film_id: int) -> np.ndarray:
    return films.vectors[films.rows_of([film_id])[0]]
