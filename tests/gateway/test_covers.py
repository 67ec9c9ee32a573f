"""Covers: which URL each answered film gets, and the cover the gateway draws (against the stand-in scoring server)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gateway.app import create_app
from gateway.covers import Covers, draw_cover, genre_colours, template_fields
from gateway.settings import Settings
from tests.gateway.scoring_stub import FILM, Stub, scoring_stub

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def stub() -> Iterator[Stub]:
    with scoring_stub() as running:
        yield running


def client_of(stub: Stub, tmp_path_factory: pytest.TempPathFactory, **settings: str) -> TestClient:
    tracking = f"sqlite:///{tmp_path_factory.mktemp('covers') / 'mlflow.db'}"
    return TestClient(create_app(Settings(scoring_url=stub.url, tracking_uri=tracking, request_log=False, **settings)))


def test_each_film_gets_its_catalog_image_else_the_generated_cover(
    stub: Stub, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with client_of(stub, tmp_path_factory) as client:
        body = client.post("/movies/recommendations/", json={"title": "Heat"}).json()
        assert body["query"]["cover_url"] == "http://testserver/movies/7/cover.svg"  # no image in the catalog
        assert body["query"]["imdb_url"] == "https://www.imdb.com/title/tt0113277/"
        assert body["recommendations"][0]["cover_url"] == "https://img.example/ronin.jpg"  # the catalog's own
        details = client.get("/movies/7").json()
        assert details["cover_url"] == "http://testserver/movies/7/cover.svg"


def test_the_template_fills_in_the_films_fields_and_falls_back_without_them(
    stub: Stub, tmp_path_factory: pytest.TempPathFactory
) -> None:
    template = "https://posters.example/{imdb_id}/{title}-{year}.jpg?film={id}"
    liked = [{**FILM, "id": 9, "title": "Für & wider", "imdb_id": None}]
    stub.records["recommend"] = {**stub.records["recommend"], "liked": liked}
    with client_of(stub, tmp_path_factory, cover_url_template=template) as client:
        body = client.post("/movies/recommendations/", json={"title": "Heat"}).json()
    assert body["query"]["cover_url"] == "https://posters.example/tt0113277/Heat-1995.jpg?film=7"
    assert body["liked"][0]["cover_url"] == "http://testserver/movies/9/cover.svg"  # no IMDb id to fill in
    assert body["recommendations"][0]["cover_url"] == "https://img.example/ronin.jpg"


def test_template_values_are_url_encoded() -> None:
    covers = Covers("https://posters.example/?t={title}")
    assert (
        covers.url({"id": 1, "title": "Köln 75 / A&B?"}, "http://gw/")
        == "https://posters.example/?t=K%C3%B6ln%2075%20%2F%20A%26B%3F"
    )


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://x/{imdb}.jpg", "unknown placeholder"),
        ("https://x/{title", "expected '}'"),
        ("https://x/{}", "unknown"),
    ],
)
def test_a_bad_template_is_refused_at_start(template: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(cover_url_template=template)
    assert template_fields("https://x/{imdb_id}?y={year}") == {"imdb_id", "year"}


def test_the_generated_cover_is_cacheable_svg(stub: Stub, tmp_path_factory: pytest.TempPathFactory) -> None:
    with client_of(stub, tmp_path_factory) as client:
        first = client.get("/movies/7/cover.svg")
        assert first.status_code == 200 and first.headers["content-type"] == "image/svg+xml"
        assert "max-age" in first.headers["cache-control"] and first.headers["etag"]
        texts = [node.text for node in ET.fromstring(first.text).iter() if node.text]
        assert {"Heat", "1995", "Michael Mann"} <= set(texts)
        again = client.get("/movies/7/cover.svg", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert client.get("/movies/7/cover.svg", headers={"If-None-Match": '"other"'}).status_code == 200
        stub.records["film"] = {"status": "not_found"}
        missing = client.get("/movies/8/cover.svg")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_covers_need_no_api_key_the_api_does(stub: Stub, tmp_path_factory: pytest.TempPathFactory) -> None:
    with client_of(stub, tmp_path_factory, api_key="secret") as client:
        assert client.get("/movies/7").status_code == 401
        assert client.get("/movies/7/cover.svg").status_code == 200  # an <img> sends no header


@pytest.mark.parametrize(
    "title",
    ['<script>alert("x")</script> & Co', "A\x00B\x1fC\ufffe", "W" * 300, "Les Misérables: 「レ・ミゼラブル」", " ", ""],
)
def test_any_title_draws_well_formed_svg(title: str) -> None:
    svg = draw_cover({"id": 1, "title": title, "year": None, "directors": ['"Q" <Dir>'], "genres": []})
    root = ET.fromstring(svg)  # well-formed: nothing of the title became markup
    assert root.tag == f"{SVG}svg" and not list(root.iter(f"{SVG}script"))
    assert svg == draw_cover({"id": 1, "title": title, "year": None, "directors": ['"Q" <Dir>'], "genres": []})


def test_colours_follow_the_genres() -> None:
    assert genre_colours(["Crime", "Drama"]) == genre_colours(["crime", "Drama"])
    assert genre_colours(["Crime"]) != genre_colours(["Comedy"])
    assert genre_colours([]) != genre_colours(["Crime"])


def test_genres_lists_the_served_catalogs_genres(stub: Stub, tmp_path_factory: pytest.TempPathFactory) -> None:
    with client_of(stub, tmp_path_factory) as client:
        body = client.get("/movies/genres").json()
        assert body["genres"] == [{"name": "Crime", "films": 2}, {"name": "Drama", "films": 1}]
        stub.records["info"] = {"status": "ok", "model_name": "movie-recommender", "build_run_id": "run-1"}
        assert client.get("/movies/genres").json()["genres"] == []  # a model version built before genres in info
