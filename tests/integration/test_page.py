"""The page at `/`, in a real browser (Debian's Chromium under Playwright) against the real gateway and scoring server.

The module runs its own scoring server and gateway: its last test stops that scoring server. Every test checks, when
its page closes, that no request left the gateway's origin but for cover images the API returned, and that no script
error happened. Each state is saved as a screenshot under tests/artifacts/. The feedback the page sends, and "Forget
me", are tested in test_page_feedback.py with these fixtures.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Browser, Error, Locator, Page, Request, Response, Route, expect

from tests import processes
from tests.conftest import BuiltModel
from tests.integration.browser import chromium

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).parents[2] / "tests" / "artifacts"
UNAVAILABLE = "The recommendation service is unavailable right now. Try again in a moment."
FAILED = "The recommendation service failed on this request. Try again, or change the request."
TIMEOUT = "The recommendation service took too long to answer. Try again in a moment."
TOO_LARGE = "This request is too large for the gateway. Remove some liked or disliked films and try again."
MATCH_WORDS = re.compile(r"^(Very close match|Close match|Related|Loosely related)$")
RECOMMENDATIONS = "**/movies/recommendations/"
FEEDBACK = "/movies/feedback"

T = TypeVar("T")
UNKNOWN = "Matrix Rebooted Forever Extended Cut"
API_KEY = "page-test-key"


@dataclass
class Stack:
    url: str
    scoring: processes.Process
    scoring_url: str
    tracking_uri: str


@dataclass
class Visit:
    """A browser page and what it did: every request URL, the cover URLs the API returned, the recommendation
    answers it got, script errors."""

    page: Page
    origins: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    covers: set[str] = field(default_factory=set)
    answers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, base: str, query: str = "") -> Page:
        self.origins.add(origin(base))
        self.page.goto(f"{base}/{query}")
        return self.page

    def foreign_requests(self) -> list[str]:
        return [
            url
            for url in self.requests
            if origin(url) not in self.origins and url not in self.covers and not url.startswith("data:")
        ]


@pytest.fixture(scope="module")
def stack(built_model: BuiltModel, work_dir: Path) -> Iterator[Stack]:
    model = f"models:/{built_model.name}@champion"
    server, scoring_url = processes.model_server(work_dir, built_model.tracking_uri, model)
    try:
        gateway, url = processes.gateway(work_dir, scoring_url, built_model.tracking_uri, experiment="page-requests")
    except BaseException:
        server.stop()
        raise
    yield Stack(url, server, scoring_url, built_model.tracking_uri)
    gateway.stop()
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as launched:
        yield launched


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    seen = Visit(page)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("response", lambda response: collect_answer(response, seen))
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on("console", lambda message: blocked(message.text, seen.errors))
    yield seen
    context.close()
    assert not seen.foreign_requests(), f"requests left the gateway's origin: {seen.foreign_requests()}"
    assert not seen.errors, f"script errors: {seen.errors}"


def blocked(message: str, errors: list[str]) -> None:
    """What the page's Content-Security-Policy refused (the browser logs it to the console), as an error."""
    if "Content Security Policy" in message:
        errors.append(message)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def collect_answer(response: Response, seen: Visit) -> None:
    """A recommendations answer, and its cover URLs: the only URLs the page may load from elsewhere."""
    if not response.url.endswith("/movies/recommendations/") or response.status != 200:
        return
    with contextlib.suppress(Error):  # a body the page stopped reading (a newer request cancelled it) is no answer
        body = response.json()
        seen.answers.append(body)
        for film in [body.get("query"), *body.get("recommendations", [])]:
            if film and film.get("cover_url"):
                seen.covers.add(film["cover_url"])


def shot(page: Page, name: str, full_page: bool = False) -> None:
    covers_loaded(page)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=full_page)


def covers_loaded(page: Page) -> None:
    """Every cover in view has loaded (those further down load lazily, when scrolled to). Polled from here: the
    page's Content-Security-Policy refuses the string evaluation `page.wait_for_function` injects."""
    loaded = (
        "[...document.querySelectorAll('.cover img')]"
        ".filter((img) => img.getBoundingClientRect().top < innerHeight).every((img) => img.complete)"
    )
    assert processes.wait_until(lambda: page.evaluate(loaded), timeout=20, step=0.1), "covers did not load"


def settled(page: Page) -> None:
    """Cards (or a message) shown for the current URL: no request in flight."""
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true")


def cards(page: Page) -> list[str]:
    """The recommended films' titles, in order, once the list is shown."""
    expect(page.locator(".cards .card").first).to_be_visible()
    settled(page)
    return page.locator(".cards .card h3 .title").all_inner_texts()


def card_genres(page: Page) -> list[list[str]]:
    return [text.split(", ") for text in page.locator(".cards .card .genres").all_inner_texts()]


def page_until(page: Page, condition: Callable[[], T], timeout: float = 15.0) -> T:
    """`condition()` once truthy (its last value after `timeout` seconds), polled while the page's events reach their
    listeners: sync Playwright delivers them only during its own calls."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return value


def follow_title_link(page: Page, card: Locator) -> None:
    """Follows a card's IMDb link as a person does; the new tab gets a stand-in page (nothing leaves the machine) and
    is closed."""
    page.context.route("https://www.imdb.com/**", lambda route: route.fulfill(body="IMDb", content_type="text/html"))
    with page.context.expect_page() as opened:
        card.locator("h3 a").click()
    opened.value.close()


def url_params(page: Page) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(page.url).query).items()}


def test_search_autocomplete_and_keyboard_pick(visit: Visit, stack: Stack) -> None:
    page = visit.open(stack.url)
    search = page.get_by_role("combobox", name="Find a film you like")
    listbox = page.get_by_role("listbox")

    search.press_sequentially("heet", delay=40)  # misspelled: Heat
    expect(listbox).to_be_visible()
    expect(search).to_have_attribute("aria-expanded", "true")
    expect(listbox.get_by_role("option").first).to_contain_text("1995")
    search.press("Escape")
    expect(listbox).to_be_hidden()
    expect(search).to_have_attribute("aria-expanded", "false")

    search.fill("")
    search.press_sequentially("matirx", delay=40)
    options = listbox.get_by_role("option")
    expect(options.first).to_contain_text("The Matrix")
    expect(options.first).to_contain_text("1999")
    expect(options.first).to_contain_text("Sci-Fi")  # genres, to tell films sharing a title apart
    expect(listbox).to_contain_text("The Matrix Reloaded")
    shot(page, "search")

    search.press("ArrowDown")
    search.press("ArrowDown")
    search.press("ArrowUp")  # back on the first suggestion
    first = options.first
    expect(first).to_have_attribute("aria-selected", "true")
    expect(search).to_have_attribute("aria-activedescendant", first.get_attribute("id") or "")
    search.press("Enter")

    expect(page).to_have_url(re.compile(r"\?title=The\+Matrix&year=1999"))
    titles = cards(page)
    assert {"The Matrix Reloaded", "The Matrix Revolutions"} <= set(titles), titles
    query = page.locator("#query-card .card.query")
    expect(query).to_contain_text("Your pick")
    expect(query.locator("h3")).to_have_text("The Matrix (1999)")
    assert_scores(page, visit.answers[-1])
    expect(page.locator(".cards .because").filter(has_text="Same director").first).to_be_visible()
    assert_covers(page)
    covers_loaded(page)
    cover = page.locator(".cards .card").first.locator(".cover img")
    if visit.covers:  # the API gave covers (older versions give none: placeholder boxes then); a broken one is removed
        expect(cover).to_have_count(1)
        assert cover.evaluate("(img) => img.naturalWidth") > 0
    shot(page, "recommendations", full_page=True)


def assert_scores(page: Page, answer: dict[str, Any]) -> None:
    """Each recommendation's score reads as words and a bar as long as its score in `answer` (0 to 1, the number
    on hover)."""
    scores = {film["id"]: film["score"] for film in answer["recommendations"]}
    for card in page.locator(".cards .card").all():
        value = scores[int(card.get_attribute("data-id") or "")]
        score = card.locator(".score")
        expect(score).to_have_text(MATCH_WORDS)
        assert score.get_attribute("title") == f"Score {value:.2f} of 1"
        bar, fill = card.locator(".score-bar").bounding_box(), card.locator(".score-fill").bounding_box()
        assert bar and fill and abs(fill["width"] / bar["width"] - min(1.0, max(0.0, value))) < 0.02, (value, fill)


def assert_covers(page: Page) -> None:
    """Every card has a 2:3 cover box, image or placeholder, so nothing moves when covers load."""
    boxes = page.locator(".card .cover")
    assert boxes.count() == page.locator(".card").count()
    for index in range(boxes.count()):
        box = boxes.nth(index).bounding_box()
        assert box is not None and abs(box["height"] / box["width"] - 1.5) < 0.02, box
    for image in page.locator(".card .cover img").all():
        assert image.get_attribute("width") and image.get_attribute("height")
        assert image.get_attribute("loading") == "lazy" and image.get_attribute("alt")
    links = page.locator(".card h3 a")
    for link in links.all():
        assert link.get_attribute("target") == "_blank" and "noopener" in (link.get_attribute("rel") or "")


def test_filters_requery(visit: Visit, stack: Stack) -> None:
    page = visit.open(stack.url, "?title=Heat&year=1995")
    before = cards(page)
    assert not all("Comedy" in genres for genres in card_genres(page))  # the filter below has something to do
    entries = page.evaluate("history.length")

    page.get_by_role("checkbox", name=re.compile(r"^Comedy\b")).check()
    expect(page).to_have_url(re.compile(r"genres=Comedy"))
    after = cards(page)
    assert after != before
    assert all("Comedy" in genres for genres in card_genres(page)), card_genres(page)

    page.get_by_label("From").fill("1990")
    page.get_by_label("to", exact=True).fill("1994")
    page.get_by_label("to", exact=True).press("Tab")  # a number input changes when it loses focus
    expect(page).to_have_url(re.compile(r"year_min=1990&year_max=1994"))
    cards(page)
    years = [int(text.strip("()")) for text in page.locator(".cards .card h3 .year").all_inner_texts()]
    assert years and all(1990 <= year <= 1994 for year in years), years
    assert all("Comedy" in genres for genres in card_genres(page))

    page.get_by_label("How many").select_option("5")
    expect(page).to_have_url(re.compile(r"n=5"))
    expect(page.locator(".cards .card")).to_have_count(5)
    assert page.evaluate("history.length") == entries  # filters replace the history entry: Back leaves the list
    shot(page, "filter", full_page=True)


def posted(request: Request) -> dict[str, Any] | None:
    """The body of a recommendation request, else None."""
    if not request.url.endswith("/movies/recommendations/"):
        return None
    return request.post_data_json


def test_a_newer_request_cancels_the_one_in_flight(visit: Visit, stack: Stack) -> None:
    page = visit.page
    held: list[Route] = []  # the first recommendation request, never answered
    page.route(RECOMMENDATIONS, lambda route: held.append(route) if not held else route.continue_())
    failed: list[tuple[str, str | None]] = []
    page.on("requestfailed", lambda request: failed.append((request.url, request.failure)))
    visit.open(stack.url, "?title=Heat&year=1995")
    expect(page.locator("#status")).to_have_text("Loading…")
    assert len(held) == 1

    page.get_by_label("How many").select_option("5")
    expect(page.locator(".cards .card")).to_have_count(5)
    assert page_until(page, lambda: failed), "the first request was not cancelled"
    assert failed[0][0].endswith("/movies/recommendations/") and "ABORTED" in (failed[0][1] or ""), failed
    with contextlib.suppress(Error):  # the browser dropped it: there is nothing to answer any more
        held[0].continue_()


def test_more_like_this_reload_and_history(visit: Visit, stack: Stack) -> None:
    page = visit.open(stack.url, "?title=Heat&year=1995")
    before = cards(page)

    liked = page.locator(".cards .card").nth(2)
    liked_title, liked_id = before[2], liked.get_attribute("data-id")
    liked.get_by_role("button", name=re.compile(r"^More like this")).click()
    expect(page).to_have_url(re.compile(rf"liked={liked_id}(&|$)"))
    after = cards(page)
    assert after != before and liked_title not in after
    expect(page.locator("#liked-chips")).to_contain_text(liked_title)
    shot(page, "more-like-this", full_page=True)

    page.reload()
    assert cards(page) == after  # the URL alone gives the same list
    expect(page.locator("#liked-chips")).to_contain_text(liked_title)
    shot(page, "reload", full_page=True)

    page.go_back()
    expect(page).not_to_have_url(re.compile("liked="))
    assert cards(page) == before
    page.go_forward()
    expect(page).to_have_url(re.compile("liked="))
    assert cards(page) == after

    disliked = page.locator(".cards .card").first
    disliked_title, disliked_id = after[0], disliked.get_attribute("data-id")
    disliked.get_by_role("button", name=re.compile(r"^Not this")).click()
    expect(page).to_have_url(re.compile(rf"disliked={disliked_id}(&|$)"))
    assert disliked_title not in cards(page)
    expect(page.locator("#disliked-chips")).to_contain_text(disliked_title)

    page.get_by_role("button", name=f"Remove {disliked_title}", exact=False).click()
    expect(page).not_to_have_url(re.compile("disliked="))
    assert cards(page) == after
    assert url_params(page)["liked"] == liked_id


def test_unknown_title_offers_suggestions(visit: Visit, stack: Stack) -> None:
    page = visit.open(stack.url)
    search = page.get_by_role("combobox", name="Find a film you like")
    search.fill(UNKNOWN)
    page.wait_for_timeout(400)  # let the autocomplete answer, then close it: Enter asks for the text as typed
    search.press("Escape")
    search.press("Enter")

    message = page.locator("#message")
    expect(message).to_contain_text(f"No film matches “{UNKNOWN}”.")
    links = message.get_by_role("link")
    expect(links.first).to_be_visible()
    shot(page, "unknown-title")

    suggested = parse_qs(urlsplit(links.first.get_attribute("href") or "").query)
    title, year = suggested["title"][0], suggested["year"][0]
    links.first.click()
    expect(page).to_have_url(re.compile(rf"year={year}"))
    cards(page)
    expect(page.locator("#query-card h3")).to_have_text(f"{title} ({year})")
    expect(message).to_be_empty()


def test_text_from_the_api_is_never_markup(visit: Visit, stack: Stack) -> None:
    markup = "<img src=x onerror=window.injected=1>"
    page = visit.open(stack.url, f"?title={quote(markup)}")
    message = page.locator("#message")
    expect(message).to_contain_text(f"No film matches “{markup}”.")
    expect(message.locator("img")).to_have_count(0)
    assert page.evaluate("window.injected") is None


def test_phone_width_has_no_horizontal_scroll(visit: Visit, stack: Stack) -> None:
    page = visit.page
    page.set_viewport_size({"width": 360, "height": 780})
    visit.open(stack.url, "?title=The+Matrix&year=1999&liked=42198")
    cards(page)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360
    left = {round(box["x"]) for box in (c.bounding_box() for c in page.locator(".cards .card").all()) if box}
    assert len(left) == 1, left  # one column
    assert_covers(page)
    shot(page, "phone", full_page=True)

    search = page.get_by_role("combobox", name="Find a film you like")
    search.fill("the")
    expect(page.get_by_role("listbox")).to_be_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360
    shot(page, "phone-search")


def test_api_key_is_asked_for_and_sent_as_header(visit: Visit, stack: Stack, work_dir: Path) -> None:
    gateway, url = processes.gateway(
        work_dir, stack.scoring_url, stack.tracking_uri, experiment="page-requests", api_key=API_KEY
    )
    try:
        sent: list[tuple[str, str | None]] = []  # (URL, X-API-Key) of each request, in order
        visit.page.on("request", lambda request: sent.append((request.url, request.headers.get("x-api-key"))))
        page = visit.open(url, "?title=Heat&year=1995")
        key_input = page.get_by_label(re.compile("API key"))
        expect(key_input).to_be_visible()
        expect(page.locator(".cards .card")).to_have_count(0)
        shot(page, "api-key")

        key_input.fill(API_KEY)
        key_input.press("Enter")
        cards(page)
        expect(key_input).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('recommender-api-key')") == API_KEY
        api_calls = [key for url, key in sent if "/movies/" in url and not url.endswith(".svg")]
        assert api_calls[0] is None and api_calls[-1] == API_KEY  # asked without a key, then with it
        assert not any(API_KEY in u for u in visit.requests), "the key must never travel in a URL"

        # feedback follows the same rule: `shown` for the cards in view, and a followed link's `click`, which must
        # outlive the page: a beacon cannot carry the header, so the page sends it with fetch's keepalive instead
        assert page_until(page, lambda: [key for url, key in sent if url.endswith(FEEDBACK)])
        with page.expect_request(lambda r: r.url.endswith(FEEDBACK) and '"click"' in (r.post_data or "")) as click:
            follow_title_link(page, page.locator(".cards .card").first)
        assert click.value.headers.get("x-api-key") == API_KEY
        response = click.value.response()
        assert response is not None and response.status == 202 and response.json()["accepted"] == 1
        assert all(key == API_KEY for url, key in sent if url.endswith(FEEDBACK)), sent
    finally:
        gateway.stop()


def test_limits_come_from_the_openapi_document(visit: Visit, stack: Stack) -> None:
    """The page keeps no copy of the API's limits: served a document with smaller ones, it offers no more."""

    def smaller_limits(route: Route) -> None:
        doc = route.fetch().json()
        request = doc["components"]["schemas"]["RecommendationRequest"]["properties"]
        request["top_n"]["maximum"] = 10
        search = next(p for p in doc["paths"]["/movies/search"]["get"]["parameters"] if p["name"] == "limit")
        search["schema"]["maximum"] = 3
        route.fulfill(json=doc)

    visit.page.route("**/openapi.json", smaller_limits)
    page = visit.open(stack.url)
    top_n = page.get_by_label("How many").locator("option")
    expect(top_n).to_have_count(2)  # 5 and 10 of 5, 10, 20, 50: the document has answered
    assert top_n.all_inner_texts() == ["5", "10"]

    with page.expect_request(lambda request: "/movies/search?" in request.url) as searched:
        page.get_by_role("combobox", name="Find a film you like").press_sequentially("matrix", delay=40)
    expect(page.get_by_role("listbox").get_by_role("option").first).to_contain_text("The Matrix")
    assert parse_qs(urlsplit(searched.value.url).query)["limit"] == ["3"]
    assert page.get_by_role("listbox").get_by_role("option").count() <= 3


@pytest.mark.parametrize(
    ("status", "where", "message"),
    [(413, "#message", TOO_LARGE), (502, "[role=alert]", FAILED), (504, "[role=alert]", TIMEOUT)],
)
def test_each_failure_has_its_own_message(visit: Visit, stack: Stack, status: int, where: str, message: str) -> None:
    """What the gateway's own limits and the scoring server's failures look like to a person."""
    visit.page.route(
        RECOMMENDATIONS,
        lambda route: route.fulfill(status=status, json={"detail": "from the test", "code": "test"}),
    )
    page = visit.open(stack.url, "?title=Heat&year=1995")
    expect(page.locator(where)).to_have_text(message)
    expect(page.locator(".cards .card")).to_have_count(0)
    shot(page, f"failure-{status}")


def test_scoring_server_down_shows_an_alert(visit: Visit, stack: Stack) -> None:
    """Last: it stops the module's scoring server."""
    page = visit.open(stack.url, "?title=Heat&year=1995")
    cards(page)
    stack.scoring.stop()

    page.get_by_label("How many").select_option("20")
    expect(page.get_by_role("alert")).to_have_text(UNAVAILABLE)
    expect(page.locator(".cards .card")).to_have_count(0)
    page.reload()
    expect(page.get_by_role("alert")).to_have_text(UNAVAILABLE)
    shot(page, "unavailable")
