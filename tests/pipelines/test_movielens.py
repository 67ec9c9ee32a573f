"""The MovieLens join, on tricky titles and on the real data read in place from the recbole package."""

from __future__ import annotations

import pandas as pd
import pytest

from model.catalog import load_catalog
from pipelines.movielens import load_behaviour, match_items, movielens_folder, title_variants


@pytest.mark.parametrize(
    ("title", "variants"),
    [
        ("Usual Suspects, The", ["the usual suspects"]),
        ("Seven (Se7en)", ["seven", "se7en"]),
        ("Horseman on the Roof, The (Hussard sur le toit, Le)", ["the horseman on the roof", "le hussard sur le toit"]),
        ("Shanghai Triad (Yao a yao yao dao waipo qiao)", ["shanghai triad", "yao a yao yao dao waipo qiao"]),
        ("Amélie & Co.", ["amelie and co"]),
        ("Nikita (La Femme Nikita)", ["nikita", "la femme nikita"]),
    ],
)
def test_title_variants(title: str, variants: list[str]) -> None:
    assert title_variants(title) == variants


def test_match_needs_title_and_year_and_skips_ambiguity() -> None:
    movies = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "title": ["The Usual Suspects", "Se7en", "Hamlet", "Hamlet", "Fargo"],
            "year": pd.array([1995, 1995, 1996, 1996, 1996], dtype="Int64"),
        }
    )
    items = pd.DataFrame(
        {
            "item": [10, 11, 12, 13, 14],
            "title": ["Usual Suspects, The", "Seven (Se7en)", "Hamlet", "Fargo", "Fargo"],
            "year": pd.array([1995, 1995, 1996, 1996, 1990], dtype="Int64"),
        }
    )
    assert match_items(items, movies) == {10: 1, 11: 2, 13: 5}


def test_data_is_read_in_place_from_the_installed_package() -> None:
    folder = movielens_folder()
    assert "site-packages" in str(folder) and folder.name == "ml-100k"


def test_the_real_join_matches_about_1300_films_and_90_percent_of_ratings() -> None:
    behaviour = load_behaviour(load_catalog().movies)
    stats = behaviour.stats
    assert 1250 <= stats["catalog_films_matched"] <= 1350
    assert 0.88 <= stats["movielens_ratings_matched_share"] <= 0.93
    assert behaviour.likes.duplicated(["user", "film"]).sum() == 0
    assert set(behaviour.likes["film"]) <= set(behaviour.candidates)
