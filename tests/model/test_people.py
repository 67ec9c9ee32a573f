from __future__ import annotations

import numpy as np

from model.people import film_tokens, people_matrix
from tests.conftest import tiny_catalog


def test_rows_are_unit_vectors_and_a_film_without_people_is_zero() -> None:
    movies = tiny_catalog([{"title": "Heat", "directors": "Michael Mann"}, {"title": "Nothing Known"}])
    matrix = people_matrix(movies)
    np.testing.assert_allclose(np.sqrt(matrix.multiply(matrix).sum(axis=1)).A.ravel(), [1.0, 0.0], atol=1e-6)
    assert people_matrix(tiny_catalog([{"title": "A"}, {"title": "B"}])).nnz == 0


def test_tokens_are_role_prefixed_and_cast_is_capped() -> None:
    movie = tiny_catalog(
        [{"title": "Heat", "directors": "Michael Mann", "cast": "Al Pacino, Robert De Niro, Val Kilmer"}]
    )
    tokens = film_tokens(movie.iloc[0], cast_per_film=2)
    assert tokens == ["d:Michael Mann", "c:Al Pacino", "c:Robert De Niro"]


def test_shared_director_beats_shared_genre() -> None:
    movies = tiny_catalog(
        [
            {"title": "Heat", "directors": "Michael Mann", "genres": "Crime"},
            {"title": "Collateral", "directors": "Michael Mann", "genres": "Thriller"},
            {"title": "Se7en", "directors": "David Fincher", "genres": "Crime"},
            {"title": "Fargo", "directors": "Joel Coen", "genres": "Crime"},
        ]
    )
    matrix = people_matrix(movies)
    similarity = (matrix @ matrix.T).toarray()
    np.testing.assert_allclose(np.diag(similarity), 1.0, rtol=1e-5)
    assert similarity[0, 1] > similarity[0, 2] > 0
