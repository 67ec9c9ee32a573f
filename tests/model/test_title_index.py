"""The trigram index that finds fuzzy candidates (model/title_index.py), and that a title search or a fuzzy match
scores only those candidates, at any catalog size."""

from __future__ import annotations

import numpy as np
import pytest

from model import resolve, title_index
from model.resolve import TitleResolver, normalize_title, title_key
from model.title_index import CANDIDATES, TitleGrams


def grams_of(titles: list[str], notability: list[float]) -> TitleGrams:
    return TitleGrams([title_key(t) for t in titles], np.asarray(notability, dtype=np.float64))


def test_candidates_are_the_titles_sharing_the_most_trigrams(monkeypatch: pytest.MonkeyPatch) -> None:
    titles = ["The Matrix", "Matrix Reloaded", "Mat", "Heat", "The Heat", "Metro", "Zzyzx Road"]
    grams = grams_of(titles, [5, 9, 1, 3, 7, 2, 4])
    found = {titles[row] for row in grams.candidates(title_key("matrx"))}
    assert {"The Matrix", "Matrix Reloaded", "Mat"} <= found  # " ma", "mat" (and "atr" for both Matrix titles)
    assert "Zzyzx Road" not in found and "Heat" not in found  # no trigram in common
    monkeypatch.setattr(title_index, "CANDIDATES", 2)
    # two from each reading: the two Matrix titles share three trigrams, "Mat" two
    assert [titles[row] for row in grams.candidates(title_key("matrx"))] == ["The Matrix", "Matrix Reloaded"]
    assert [titles[row] for row in grams.candidates("heat")] == ["Heat", "The Heat"]  # the same key, all trigrams


def test_an_obscure_title_is_found_by_its_rarest_trigrams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(title_index, "READ", 3)
    monkeypatch.setattr(title_index, "HEAD", 2)
    titles = [f"Star {word}" for word in ("Wars", "Trek", "Dust", "Gate", "Man")]
    grams = grams_of(titles, [1, 5, 2, 4, 3])
    # every title shares " st" and "sta": the rarest list is read up to READ titles (Trek, Gate, Man) and the head of
    # each list holds the two best known (Trek, Gate); one candidate of each reading
    monkeypatch.setattr(title_index, "CANDIDATES", 1)
    assert [titles[row] for row in grams.candidates("sta")] == ["Star Trek"]
    monkeypatch.setattr(title_index, "CANDIDATES", 5)  # room for all five: only the three read come back
    assert [titles[row] for row in grams.candidates("sta")] == ["Star Trek", "Star Gate", "Star Man"]
    # the least known of them, found by its own trigrams ("war", "ars", ...) though every common list misses it
    assert "Star Wars" in [titles[row] for row in grams.candidates("star wasr")]


def test_one_and_two_letter_queries_draw_the_best_known_short_titles() -> None:
    titles = ["X", "Go", "Up", "Heat", "Alien", "Zodiac", "Ghostbusters"]
    grams = grams_of(titles, [1, 6, 5, 4, 3, 2, 9])
    assert [titles[row] for row in grams.candidates("x")] == ["X", "Go", "Up"]  # keys of up to 3 characters
    assert [titles[row] for row in grams.candidates("gx")] == ["X", "Go", "Up", "Heat", "Alien", "Zodiac"]


def test_keys_beyond_the_basic_plane_and_empty_keys_are_indexed() -> None:
    keys = ["", "𝔞𝔟𝔠 𝔡", "abc d"]  # keys as given: mathematical letters past the 16-bit plane
    grams = TitleGrams(keys, np.asarray([1.0, 2.0, 3.0]))
    assert next(keys[row] for row in grams.candidates("𝔞𝔟𝔠")) == "𝔞𝔟𝔠 𝔡"
    assert next(keys[row] for row in grams.candidates("abc")) == "abc d"
    assert grams.candidates("qqq").size == 0


@pytest.fixture(scope="module")
def large() -> tuple[TitleResolver, list[str]]:
    """20,000 titles made of a few common words: every query opens or shares trigrams with thousands of them."""
    rng = np.random.default_rng(3)
    words = ["star", "love", "night", "the", "dark", "man", "city", "blue", "last", "return", "of", "house"]
    titles = [" ".join(rng.choice(words, rng.integers(1, 4))).title() for _ in range(20_000)]
    return TitleResolver(titles, list(rng.integers(1940, 2014, len(titles))), rng.random(len(titles))), titles


@pytest.mark.parametrize("text", ["s", "st", "star", "The", "nigth of the", "Blue House Retrun", "zzz"])
def test_a_search_scores_a_bounded_number_of_titles(
    large: tuple[TitleResolver, list[str]], text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver, _ = large
    scored: list[int] = []
    ratios = resolve._ratios
    monkeypatch.setattr(
        resolve, "_ratios", lambda query, choices: scored.append(len(choices)) or ratios(query, choices)
    )
    found = resolver.search(text, 8)
    assert sum(scored) <= 3 * (2 * CANDIDATES + 8), scored  # key, name and openings of the candidates at most
    assert len(found) == 8 or text == "zzz"


def test_a_search_lists_the_best_known_of_many_titles_opening_with_the_text(
    large: tuple[TitleResolver, list[str]],
) -> None:
    resolver, titles = large
    found = [row for row, _ in resolver.search("star", 8)]
    names = [normalize_title(t) for t in titles]
    keys = [title_key(t) for t in titles]
    tiers = [  # strongest first: the title as typed, up to its article, opening as typed, opening without article
        [row for row, name in enumerate(names) if name == "star"],
        [row for row, key in enumerate(keys) if key == "star"],
        [row for row, name in enumerate(names) if name.startswith("star")],
        [row for row, key in enumerate(keys) if key.startswith("star")],
    ]
    expected: list[int] = []
    for tier in tiers:
        expected += sorted(set(tier) - set(expected), key=lambda row: -resolver._notability[row])
    assert len(tiers[2]) > 1000  # thousands open with it: only the best known are ranked
    assert found == expected[:8]
