from __future__ import annotations

from transformers import AutoTokenizer

from model.catalog import load_catalog
from model.encoder import MAX_TOKENS, default_encoder_path
from model.text import TextConfig, movie_text, movie_texts, rank_cast


def test_cast_is_ranked_by_catalog_frequency_then_name() -> None:
    ranked = rank_cast([["Zed", "Amy", "Keanu"], ["Keanu", "Bob"], ["Keanu", "Bob", "Amy"]])
    assert ranked[0] == ["Keanu", "Amy", "Zed"]
    assert ranked[1] == ["Keanu", "Bob"]


def test_movie_text_layout() -> None:
    text = movie_text(
        "The Matrix",
        1999,
        ["Sci-Fi", "Action"],
        ["Lana Wachowski", "Lilly Wachowski"],
        ["Keanu Reeves", "Laurence Fishburne"],
        ["the Wachowskis"],
    )
    assert text == (
        "The Matrix (1999). Genres: Sci-Fi, Action. Directed by Lana Wachowski, Lilly Wachowski. "
        "Starring Keanu Reeves, Laurence Fishburne. Written by the Wachowskis."
    )


def test_empty_fields_and_missing_year_are_left_out() -> None:
    assert movie_text("Untitled", None, [], [], [], []) == "Untitled."


def test_field_limits_apply() -> None:
    cast = [f"Actor {i}" for i in range(20)]
    text = movie_text("X", 2000, [], [], cast, [], TextConfig(cast_per_film=3, include_writers=False))
    assert "Actor 2." in text and "Actor 3" not in text


def test_matrix_text_names_its_stars_not_alphabetical_extras() -> None:
    movies = load_catalog().movies
    movies = movies.assign(cast=rank_cast(movies["cast"].tolist()))
    matrix = movies[movies["title"] == "The Matrix"]
    text = movie_texts(matrix)[0]
    assert "Keanu Reeves" in text
    assert "Ada Nicodemou" not in text  # first alphabetically, in no other catalog film


def test_every_catalog_text_fits_the_encoder_window() -> None:
    movies = load_catalog().movies
    movies = movies.assign(cast=rank_cast(movies["cast"].tolist()))
    tokenizer = AutoTokenizer.from_pretrained(str(default_encoder_path()), local_files_only=True)
    lengths = [len(ids) for ids in tokenizer(movie_texts(movies), truncation=False)["input_ids"]]
    assert max(lengths) <= MAX_TOKENS
