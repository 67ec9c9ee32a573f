"""What the page tells the gateway, and the person's own history: `shown`, `click`, `like` and `dismiss` on the answer
on screen with the browser's anonymous id, "Forget me", and once the person liked a film ("More like this") a "For
you" row of films from their history, asked with their id alone. Uses test_page.py's stack, browser and visit
fixtures."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.integration.test_page import (  # noqa: F401 - the fixtures
    Stack,
    Visit,
    browser,
    cards,
    follow_title_link,
    page_until,
    stack,
    visit,
)

pytestmark = pytest.mark.integration


def test_the_page_reports_what_the_person_saw_and_did_and_forgets_them(visit: Visit, stack: Stack) -> None:  # noqa: F811
    page = visit.open(stack.url, "?title=Heat&year=1995")
    sent: list[tuple[dict, int]] = []
    page.on("requestfinished", lambda r: _feedback(r, sent))
    cards(page)
    shown = page.locator(".cards .card").evaluate_all("nodes => nodes.map((n) => Number(n.dataset.id))")
    request_id = visit.answers[-1]["request_id"]
    user = page.evaluate("() => Object.values(localStorage).find((v) => v) ?? null")
    assert user, "the page keeps an anonymous id"

    def events(kind: str) -> list[dict]:
        return [e for body, _ in sent for e in body["events"] if e["event"] == kind]

    page_until(page, lambda: len(events("shown")) >= 3)  # the cards in view, gathered into a batch
    followed = int(page.locator(".cards .card").first.get_attribute("data-id") or 0)
    follow_title_link(page, page.locator(".cards .card").first)
    page_until(page, lambda: events("click"))
    page.locator(".cards .card").nth(1).get_by_role("button", name=re.compile(r"^Not this")).click()
    page_until(page, lambda: events("dismiss"))
    for event in events("shown") + events("click") + events("dismiss"):
        assert event["request_id"] == request_id and event.get("user", user) == user, event
    assert events("click")[0]["film_id"] == followed and {e["film_id"] for e in events("shown")} <= set(shown)
    assert all(status == 202 for _, status in sent), sent

    page.get_by_role("button", name="Forget me").click()
    status = page.locator("#forget-status")
    expect(status).to_contain_text("Forgotten:")
    deleted = int(re.search(r"Forgotten: (\d+) event", status.inner_text()).group(1))  # type: ignore[union-attr]
    assert deleted >= 3  # the shown, click and dismiss events stored under the id
    assert page.evaluate("() => Object.values(localStorage).find((v) => v) ?? null") != user


def _feedback(request: object, sent: list[tuple[dict, int]]) -> None:
    """Each feedback POST the page made, with the status it got."""
    if request.url.endswith("/movies/feedback") and request.method == "POST":  # type: ignore[attr-defined]
        response = request.response()  # type: ignore[attr-defined]
        sent.append((request.post_data_json or {}, response.status if response else 0))  # type: ignore[attr-defined]


def test_a_like_brings_a_for_you_row(visit: Visit, stack: Stack) -> None:  # noqa: F811
    page = visit.open(stack.url, "?title=Heat&year=1995")
    cards(page)
    expect(page.locator("#for-you")).to_be_hidden()  # a new id: no history, no row (404 unknown_user)
    liked = page.locator(".cards .card").nth(1)
    liked_id = liked.get_attribute("data-id")
    with page.expect_response(lambda r: r.request.method == "POST" and _alone(r)) as asked:
        liked.get_by_role("button", name=re.compile(r"^More like this")).click()
    request_id = asked.value.json()["request_id"]
    row = page.locator("#for-you")
    expect(row).to_be_visible()
    expect(row.get_by_role("heading", name="For you")).to_be_visible()
    expect(row.locator(".card")).to_have_count(5)
    assert liked_id not in row.locator(".card").evaluate_all("n => n.map(c => c.dataset.id)")

    # Its cards in view are `shown`, and following a card's link is a click, each on the "For you" answer.
    sent: list[tuple[dict, int]] = []
    page.on("requestfinished", lambda r: _feedback(r, sent))
    row.scroll_into_view_if_needed()
    ids = {int(i) for i in row.locator(".card").evaluate_all("n => n.map(c => c.dataset.id)")}
    followed = int(row.locator(".card").first.get_attribute("data-id") or 0)
    follow_title_link(page, row.locator(".card").first)

    def of_row(kind: str) -> list[dict]:
        return [e for body, _ in sent for e in body["events"] if e["event"] == kind and e["request_id"] == request_id]

    page_until(page, lambda: of_row("click") and len(of_row("shown")) >= 2)
    assert [e["film_id"] for e in of_row("click")] == [followed]
    assert {e["film_id"] for e in of_row("shown")} <= ids and followed in {e["film_id"] for e in of_row("shown")}
    assert all(status == 202 for _, status in sent), sent


def _alone(response: object) -> bool:
    """A recommendation request of the user alone: the "For you" row's."""
    request = response.request  # type: ignore[attr-defined]
    if not request.url.endswith("/movies/recommendations/"):
        return False
    body = request.post_data_json or {}
    return set(body) == {"user", "top_n"}
