from __future__ import annotations

import unicodedata

import pytest

from model.resolve import MAX_SUGGESTIONS, Resolution, TitleResolver, normalize_title, title_key

FILMS = [
    # title, year, notability
    ("Hamlet", 1948, 49),
    ("Hamlet", 1996, 56),
    ("Hamlet", 2000, 93),
    ("Hamlet 2", 2008, 146),
    ("The Matrix", 1999, 209),
    ("The Matrix Reloaded", 2003, 245),
    ("Amélie", 2001, 170),
    ("Spider-Man", 2002, 240),
    ("The Shawshank Redemption", 1994, 80),
    ("The Godfather", 1972, 90),
    ("The Godfather Part II", 1974, 70),
    ("Go", 1999, 60),
    ("X", 1963, 3),
    ("Fast & Furious", 2009, 150),
    ("Schindler's List", 1993, 120),
    ("Heat", 1995, 80),
    ("The Heat", 2013, 200),
]


@pytest.fixture(scope="module")
def resolver() -> TitleResolver:
    titles, years, reviews = zip(*FILMS, strict=True)
    return TitleResolver(list(titles), list(years), list(reviews))


def title_of(resolver: TitleResolver, query: str, year: int | None = None) -> tuple[str | None, int | None, str | None]:
    result = resolver.resolve(query, year)
    if result.position is None:
        return None, None, None
    title, film_year, _ = FILMS[result.position]
    return title, film_year, result.matched


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Matrix", "the matrix"),
        ("AMÉLIE!", "amelie"),
        ("Godfather, The", "the godfather"),
        ("Fast & Furious", "fast and furious"),
        ("Schindler's List", "schindlers list"),
        ("Spider-Man: Homecoming", "spider man homecoming"),
    ],
)
def test_normalize_title(raw: str, normalized: str) -> None:
    assert normalize_title(raw) == normalized


def test_title_key_drops_a_leading_article() -> None:
    assert title_key("The Matrix") == title_key("matrix") == title_key("Matrix, The")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("the matrix", ("The Matrix", 1999, "exact")),
        ("THE MATRIX", ("The Matrix", 1999, "exact")),
        ("Matrix", ("The Matrix", 1999, "exact")),
        ("amelie", ("Amélie", 2001, "exact")),
        ("spider man", ("Spider-Man", 2002, "exact")),
        ("fast and furious", ("Fast & Furious", 2009, "exact")),
        ("schindlers list", ("Schindler's List", 1993, "exact")),
        ("Godfather, The", ("The Godfather", 1972, "exact")),
    ],
)
def test_case_accents_and_punctuation_do_not_matter(resolver: TitleResolver, query: str, expected: tuple) -> None:
    assert title_of(resolver, query) == expected


def test_the_title_as_typed_wins_over_an_article_variant(resolver: TitleResolver) -> None:
    assert title_of(resolver, "Heat") == ("Heat", 1995, "exact")
    assert title_of(resolver, "the heat") == ("The Heat", 2013, "exact")


def test_shared_title_without_year_takes_the_most_reviewed(resolver: TitleResolver) -> None:
    assert title_of(resolver, "Hamlet") == ("Hamlet", 2000, "exact")


@pytest.mark.parametrize("year", [1948, 1996, 2000])
def test_shared_title_with_year_takes_that_film(resolver: TitleResolver, year: int) -> None:
    assert title_of(resolver, "hamlet", year) == ("Hamlet", year, "exact")


def test_year_in_parentheses_is_read_as_the_year(resolver: TitleResolver) -> None:
    assert title_of(resolver, "Hamlet (1948)") == ("Hamlet", 1948, "exact")


def test_year_that_matches_no_film_falls_back_to_the_most_reviewed(resolver: TitleResolver) -> None:
    assert title_of(resolver, "Hamlet", 1930) == ("Hamlet", 2000, "exact")


@pytest.mark.parametrize(
    ("typo", "title"),
    [
        ("matirx", "The Matrix"),
        ("teh matrix", "The Matrix"),
        ("teh matrx", "The Matrix"),
        ("godfahter", "The Godfather"),  # not "Go", although "go" opens the typo
        ("Spiderman", "Spider-Man"),
        ("shawshank", "The Shawshank Redemption"),
        ("matrix reloded", "The Matrix Reloaded"),
    ],
)
def test_typos_resolve_as_fuzzy(resolver: TitleResolver, typo: str, title: str) -> None:
    found, _, matched = title_of(resolver, typo)
    assert (found, matched) == (title, "fuzzy")
    assert resolver.resolve(typo).score < 100


def test_unknown_title_gives_suggestions(resolver: TitleResolver) -> None:
    result = resolver.resolve("The Matrox Rebooted")
    assert result.position is None or result.matched == "fuzzy"
    unknown = resolver.resolve("Hamster")
    assert unknown.position is None
    assert 0 < len(unknown.suggestions) <= MAX_SUGGESTIONS
    assert FILMS[unknown.suggestions[0]][0].startswith("Hamlet")


def test_gibberish_is_unknown(resolver: TitleResolver) -> None:
    result = resolver.resolve("qwzxv kjhgf")
    assert result.position is None


def test_very_short_queries_only_get_suggestions(resolver: TitleResolver) -> None:
    assert resolver.resolve("Xx").position is None
    assert title_of(resolver, "x") == ("X", 1963, "exact")


def test_empty_and_punctuation_only_queries_are_unknown(resolver: TitleResolver) -> None:
    assert resolver.resolve("").position is None
    assert resolver.resolve("?!…").position is None


def test_titles_typed_as_listed_resolve_as_any_other_spelling_would() -> None:
    # A leading space changes nothing; a catalog title that itself ends in a year in parentheses is still read as a
    # title and a year.
    titles = ["Heat", "The Heat", "Hamlet", "Hamlet", "1984 (1956)", "1984", "Godfather, The", "Amélie"]
    years = [1995, 2013, 1948, 1996, 1956, 1984, 1972, 2001]
    resolver = TitleResolver(titles, years, [10, 5, 40, 90, 3, 30, 50, 20])
    for title in titles:
        for year in (None, 1948, 1956, 1984):
            assert resolver.resolve(title, year) == resolver.resolve(f" {title}", year), (title, year)
    assert resolver.resolve("1984 (1956)").position == 5  # title "1984", year 1956 (no film): as it always was
    assert resolver.resolve("Hamlet").position == 3


def test_only_the_first_titles_that_match_nothing_exactly_are_matched_fuzzily(resolver: TitleResolver) -> None:
    typed = [("matirx", None), ("The Matrix", None), ("Hamster", None), ("godfahter", None), ("Hamlet", 1948)]
    found = resolver.resolve_many(typed, fuzzy_limit=2)
    titles = [(FILMS[f.position][:2] if f.position is not None else None, f.matched) for f in found]
    assert titles == [
        (("The Matrix", 1999), "fuzzy"),
        (("The Matrix", 1999), "exact"),  # exact matches do not count against the limit
        (None, None),
        (None, None),
        (("Hamlet", 1948), "exact"),
    ]
    assert found[2].suggestions  # the second fuzzy title: suggestions
    assert found[3] == Resolution(None, None, 0.0)  # past the limit: neither a fuzzy match nor suggestions
    assert resolver.resolve("godfahter").matched == "fuzzy"  # alone, it is within the limit


def test_a_title_far_longer_than_any_catalog_title_matches_nothing(resolver: TitleResolver) -> None:
    longest = max(len(title) for title, _, _ in FILMS)
    assert resolver.max_chars > longest
    padded = "The Matrix".ljust(resolver.max_chars, "!")
    assert title_of(resolver, padded) == ("The Matrix", 1999, "exact")
    assert resolver.resolve(padded + "!") == Resolution(None, None, 0.0)
    # Accents and ligatures count as the characters they decompose into: an ellipsis is three dots.
    assert title_of(resolver, "The Matrix…") == ("The Matrix", 1999, "exact")
    dotted = "The Matrix" + "…" * 14
    assert len(dotted) <= resolver.max_chars < len(unicodedata.normalize("NFKD", dotted))
    assert resolver.resolve(dotted) == Resolution(None, None, 0.0)


def searched(resolver: TitleResolver, text: str) -> list[tuple[str, int]]:
    return [FILMS[row][:2] for row, _ in resolver.search(text, 10)]


def test_search_lists_the_title_as_typed_first(resolver: TitleResolver) -> None:
    # The Heat is the better known, but "Heat" is what was typed; and the other way round
    assert searched(resolver, "Heat")[:2] == [("Heat", 1995), ("The Heat", 2013)]
    assert searched(resolver, "the heat")[:2] == [("The Heat", 2013), ("Heat", 1995)]


def test_search_lists_exact_titles_then_prefixes_then_fuzzy_matches(resolver: TitleResolver) -> None:
    # the three Hamlets (best known first), then the better-known Hamlet 2, which only opens with the text
    assert searched(resolver, "hamlet")[:4] == [
        ("Hamlet", 2000),
        ("Hamlet", 1996),
        ("Hamlet", 1948),
        ("Hamlet 2", 2008),
    ]
    # "Go" is the closest whole title to "the god" (article dropped), but the Godfathers open with it
    assert searched(resolver, "the god")[:3] == [("The Godfather", 1972), ("The Godfather Part II", 1974), ("Go", 1999)]
    assert searched(resolver, "matrx")[0] == ("The Matrix", 1999)


def test_search_orders_films_sharing_a_title_by_the_year_given(resolver: TitleResolver) -> None:
    assert searched(resolver, "Hamlet (1948)")[0] == ("Hamlet", 1948)
