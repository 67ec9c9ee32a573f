from __future__ import annotations

from pathlib import Path

from model.artifacts import read_movies
from model.films import film_records
from tests.conftest import tiny_catalog


def test_a_catalog_saved_before_imdb_ids_reads_without_them(tmp_path: Path) -> None:
    movies = tiny_catalog([{"id": 1, "title": "Alien", "cast": "Sigourney Weaver, John Hurt"}])
    movies.drop(columns=["imdb_id"]).to_parquet(tmp_path / "movies.parquet", index=False)  # as older builds wrote it
    read = read_movies(tmp_path / "movies.parquet")
    assert read["cast"].tolist() == [["Sigourney Weaver", "John Hurt"]]
    [record] = film_records(read)
    assert record["imdb_id"] is None and record["imdb_url"] is None
