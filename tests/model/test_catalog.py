from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from model.catalog import (
    CatalogError,
    limit_catalog,
    load_catalog,
    split_names,
    validate_catalog,
)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_default_catalog_is_the_full_movies_db() -> None:
    loaded = load_catalog()
    movies = loaded.movies
    assert len(movies) == 17_472
    assert loaded.skipped_empty_title == 0
    assert movies["id"].is_unique
    matrix = movies[movies["title"] == "The Matrix"].iloc[0]
    assert matrix["year"] == 1999
    assert "Sci-Fi" in matrix["genres"]
    assert matrix["directors"] == ["Lana Wachowski", "Lilly Wachowski"]
    assert "Keanu Reeves" in matrix["cast"]
    assert matrix["cover_url"] is None  # movies.db has no images
    assert matrix["imdb_id"] == "tt0133093"
    assert movies["imdb_id"].notna().all()
    assert matrix["reviews"] > 100


def test_csv_with_only_titles_gets_ids_and_empty_fields(tmp_path: Path) -> None:
    loaded = load_catalog(write_csv(tmp_path / "films.csv", "title\nAlien\nAliens\n"))
    assert loaded.movies["id"].tolist() == [0, 1]
    assert loaded.movies["genres"].tolist() == [[], []]
    assert loaded.movies["year"].isna().all()


def test_comma_separated_lists_are_split_and_trimmed(tmp_path: Path) -> None:
    csv = 'id,title,year,genres,cast\n7,Heat,1995,"Crime,  Drama ,","Al Pacino,  Robert De Niro"\n'
    movie = load_catalog(write_csv(tmp_path / "films.csv", csv)).movies.iloc[0]
    assert movie["genres"] == ["Crime", "Drama"]
    assert movie["cast"] == ["Al Pacino", "Robert De Niro"]
    assert movie["year"] == 1995 and movie["id"] == 7


def test_parquet_list_columns_are_read_as_lists(tmp_path: Path) -> None:
    path = tmp_path / "films.parquet"
    pd.DataFrame(
        {"id": [1, 2], "title": ["Up", "Cars"], "genres": [["Animation"], ["Animation", "Family"]]}
    ).to_parquet(path)
    movies = load_catalog(path).movies
    assert movies["genres"].tolist() == [["Animation"], ["Animation", "Family"]]


def test_missing_title_column_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"no .title. column.*name, year"):
        load_catalog(write_csv(tmp_path / "films.csv", "name,year\nAlien,1979\n"))


def test_duplicate_ids_are_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"1 duplicate id\(s\), for example \[3\]"):
        load_catalog(write_csv(tmp_path / "films.csv", "id,title\n3,Alien\n3,Aliens\n4,Alien 3\n"))


def test_empty_titles_are_skipped_and_counted(tmp_path: Path) -> None:
    loaded = load_catalog(write_csv(tmp_path / "films.csv", "id,title\n1,Alien\n2,\n3,   \n4,Aliens\n"))
    assert loaded.skipped_empty_title == 2
    assert loaded.rows_read == 4
    assert loaded.movies["title"].tolist() == ["Alien", "Aliens"]


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("id,title,year\n1,Alien,nineteen\n", "'year' must hold whole numbers"),
        ("id,title,year\n1,Alien,1979.5\n", "'year' must hold whole numbers"),
        ("id,title\nx1,Alien\n", "'id' must hold whole numbers"),
        ("id,title\n1,\n2,\n", "no row with a non-empty title"),
        ("title,reviews\nAlien,many\n", "'reviews' must be numeric"),
        ("title,imdb_id\nAlien,0078748\nAliens,tt0090605\n", "'imdb_id' holds IMDb title ids"),
    ],
)
def test_bad_values_are_errors_not_silent_drops(tmp_path: Path, csv: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_catalog(write_csv(tmp_path / "films.csv", csv))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("films.csv", b"", "is an empty file"),
        ("films.csv", b"title\n\xff\xfeAlien\n", "could not be read"),
        ("films.parquet", b"not parquet", "could not be read"),
        ("films.json", b"[]", "unsupported format"),
    ],
)
def test_unreadable_files_fail_clearly(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.csv")


def test_limit_keeps_the_most_reviewed_films() -> None:
    movies = validate_catalog(
        pd.DataFrame({"id": [1, 2, 3, 4], "title": list("abcd"), "reviews": [5, 50, None, 20]})
    ).movies
    assert limit_catalog(movies, 2)["id"].tolist() == [2, 4]
    assert limit_catalog(movies, 0) is movies


def test_split_names() -> None:
    assert split_names("a, b,,a , c") == ["a", "b", "c"]
    assert split_names(None) == []
    assert split_names(float("nan")) == []
    assert split_names(["x", " y ", ""]) == ["x", "y"]
