"""The MovieLens join, on tricky titles and on the real data read in place from the recbole package."""

from __future__ import annotations

import pandas as pd
import pytest

from model.catalog import load_catalog
from pipelines.movielens import (
    TEST,
    VALIDATION,
    Behaviour,
    load_behaviour,
    match_items,
    movielens_folder,
    title_variants,
)


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


def test_users_split_into_two_fixed_disjoint_halves() -> None:
    likes = pd.DataFrame({"user": [1, 1, 2, 3, 4, 4], "film": [10, 11, 10, 12, 11, 12], "timestamp": range(6)})
    behaviour = Behaviour(likes, [10, 11, 12], {"likes": 6.0})
    validation, test = behaviour.half(VALIDATION), behaviour.half(TEST)
    assert set(validation.likes["user"]) == {1, 3} and set(test.likes["user"]) == {2, 4}
    assert len(validation.likes) + len(test.likes) == len(likes)
    assert validation.candidates == test.candidates == [10, 11, 12]
    assert (validation.stats["likes"], test.stats["users_with_likes"]) == (3.0, 2.0)
    with pytest.raises(ValueError, match="validation"):
        behaviour.half("train")
