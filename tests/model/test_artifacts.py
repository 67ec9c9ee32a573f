from __future__ import annotations

from pathlib import Path

import pytest

from model.artifacts import ENGAGEMENT, FILES, VECTORS, read_movies, save_artifacts
from model.engine import Engine
from model.films import Films, film_records
from model.index import EXACT, IVFPQ, KINDS, build_index, index_params
from model.neighbours import precompute_neighbours
from model.ranking import Ranking
from model.schema import Query
from tests.conftest import tiny_catalog


def test_a_catalog_saved_before_imdb_ids_reads_without_them(tmp_path: Path) -> None:
    movies = tiny_catalog([{"id": 1, "title": "Alien", "cast": "Sigourney Weaver, John Hurt"}])
    movies.drop(columns=["imdb_id"]).to_parquet(tmp_path / "movies.parquet", index=False)  # as older builds wrote it
    read = read_movies(tmp_path / "movies.parquet")
    assert read["cast"].tolist() == [["Sigourney Weaver", "John Hurt"]]
    [record] = film_records(read)
    assert record["imdb_id"] is None and record["imdb_url"] is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_saved_model_loads_with_its_index_and_answers_as_built(tmp_path: Path, films: Films, kind: str) -> None:
    """Every kind round-trips with its parameters; only an index that keeps no vectors gets `vectors.npy` beside it,
    so a model built before it existed (an exact index, no such file) loads as it always did."""
    encoder = tmp_path / "encoder-source"
    encoder.mkdir()
    (encoder / "config.json").write_text("{}")
    index = build_index(films.vectors, films.ids, kind)
    built = Films(films.movies, index, films.people, films.vectors)
    neighbours = precompute_neighbours(built, Ranking(), k=5)
    paths = save_artifacts(tmp_path / "model", encoder, index, films.movies, films.people, neighbours, films.vectors)
    assert (VECTORS in paths) == (kind == IVFPQ)
    assert sorted(Path(path).name for path in paths.values()) == sorted(
        file for name, file in FILES.items() if (name != VECTORS or kind == IVFPQ) and name != ENGAGEMENT
    )  # a model built from content only has no engagement part
    loaded = Engine.from_artifacts(paths)
    assert index_params(loaded.films.index) == index_params(index)
    queries = [Query(title="Space Saga 3", top_n=5), Query(liked=[{"id": 500}, {"id": 11}], genres=["Drama"])]
    assert loaded.recommend(queries) == Engine(built, neighbours=neighbours).recommend(queries)
    if kind == EXACT:
        assert not (tmp_path / "model" / FILES[VECTORS]).exists()
