from __future__ import annotations

import numpy as np
import pandas as pd

from model.catalog import count_awards, load_catalog
from model.prior import notability_prior
from tests.conftest import tiny_catalog


def test_prior_is_standardised_and_orders_by_notability() -> None:
    movies = tiny_catalog(
        [
            {"title": "Famous", "reviews": 300, "rating": 8.5, "awards": 5, "metacritic": 90, "box_office": 3e8},
            {"title": "Known", "reviews": 60, "rating": 6.5, "metacritic": 60},
            {"title": "Obscure", "reviews": 5, "rating": 4.0},
        ]
    )
    prior = notability_prior(movies)
    assert prior.dtype == np.float32
    assert abs(float(prior.mean())) < 1e-6 and abs(float(prior.std()) - 1) < 1e-5
    assert prior[0] > prior[1] > prior[2]


def test_a_catalog_without_signals_gets_a_flat_prior() -> None:
    prior = notability_prior(tiny_catalog([{"title": "A"}, {"title": "B"}]))
    assert (prior == 0).all()


def test_default_catalog_prior_ranks_blockbusters_above_obscure_films() -> None:
    movies = load_catalog().movies
    prior = pd.Series(notability_prior(movies), index=movies["title"])
    assert prior["The Matrix"] > 1.5
    assert prior["The Matrix Revisited"] < prior["The Matrix"] - 1.5


def test_count_awards() -> None:
    assert count_awards("Won 1 Oscar. Nominated for 3 Oscars.") == 4
    assert count_awards(None) == 0
