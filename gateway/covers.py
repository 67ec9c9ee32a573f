"""Cover images: every film in an answer gets a `cover_url`, and a film without one gets a generated cover.

Which cover a film gets, first that applies:
1. the catalog's own image (`cover_url` in the catalog);
2. `GATEWAY_COVER_URL_TEMPLATE` filled in with the film's `{imdb_id}`, `{id}`, `{title}` or `{year}` (URL-encoded),
   for instance a poster service the operator has a key for; a film lacking a field the template names skips it;
3. the cover this gateway draws, `GET /movies/{id}/cover.svg`: title, year and director on a colour of its genres.
"""

from __future__ import annotations

import hashlib
import html
import re
import string
import textwrap
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

PLACEHOLDERS = ("imdb_id", "id", "title", "year")
COVER_ROUTE = "/movies/{film_id}/cover.svg"  # the route that serves a drawn cover (gateway/routes.py)
WIDTH, HEIGHT = 200, 300  # 2:3, a poster's shape
TITLE_CHARS, TITLE_LINES = 16, 5  # a line of the title holds about this many characters at the font size used

# Characters XML 1.0 does not allow, even escaped: a title holding one is drawn without it.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def template_fields(template: str) -> set[str]:
    """The placeholders a cover URL template names; ValueError when it is malformed or names others."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"cover URL template {template!r}: {error}") from None
    unknown = fields - set(PLACEHOLDERS)
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        raise ValueError(f"cover URL template {template!r}: unknown placeholder(s) {sorted(unknown)}; use {known}")
    return fields


class Covers:
    """Fills in the `cover_url` of answered films: the catalog's, else the template's, else the generated one."""

    def __init__(self, template: str | None = None) -> None:
        self.template = template or None
        self._needs = template_fields(template) if template else set()

    def fill(self, films: Iterable[dict[str, Any]], base_url: str) -> None:
        """Set the `cover_url` of each film record that has none; `base_url` is the gateway's, ending in "/"."""
        for film in films:
            if not film.get("cover_url"):
                film["cover_url"] = self.url(film, base_url)

    def url(self, film: dict[str, Any], base_url: str) -> str:
        """The cover of a film that has no image of its own."""
        if self.template and all(film.get(name) is not None for name in self._needs):
            return self.template.format(**{name: quote(str(film.get(name)), safe="") for name in self._needs})
        return base_url.rstrip("/") + COVER_ROUTE.format(film_id=film["id"])


def draw_cover(film: dict[str, Any]) -> str:
    """An SVG poster for a film record (title, year, directors, genres): the same film gives the same bytes."""
    top, bottom = genre_colours(film.get("genres") or [])
    lines = textwrap.wrap(_text(film.get("title")), TITLE_CHARS, max_lines=TITLE_LINES, placeholder=" …") or ["?"]
    first = 132 - 13 * len(lines)  # the title block is centred a little above the middle
    title = "".join(f'<tspan x="100" y="{first + 26 * i}">{html.escape(line)}</tspan>' for i, line in enumerate(lines))
    year = html.escape(str(film["year"])) if film.get("year") else ""
    directors = film.get("directors") or []
    director = html.escape(textwrap.shorten(_text(directors[0]), 28, placeholder="…")) if directors else ""
    label = html.escape(f"{_text(film.get('title'))} ({year})" if year else _text(film.get("title")))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/></linearGradient></defs>'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#g)"/>'
        '<g fill="#fff" font-family="sans-serif" text-anchor="middle">'
        f'<text font-size="20" font-weight="bold">{title}</text>'
        f'<text x="100" y="{first + 26 * len(lines) + 14}" font-size="16" opacity="0.85">{year}</text>'
        f'<text x="100" y="280" font-size="12" opacity="0.85">{director}</text>'
        "</g></svg>"
    )


def etag(svg: str) -> str:
    """A strong validator of a drawn cover."""
    return '"' + hashlib.sha256(svg.encode()).hexdigest()[:20] + '"'


def genre_colours(genres: list[str]) -> tuple[str, str]:
    """Two dark colours (top, bottom of the gradient) derived from the first two genres: films of the same genres
    share their colours. Without genres, a grey."""
    if not genres:
        return "hsl(220,10%,38%)", "hsl(220,10%,18%)"
    first, second = genres[0], genres[1] if len(genres) > 1 else genres[0]
    return f"hsl({_hue(first)},55%,40%)", f"hsl({_hue(second)},60%,{18 if second == first else 24}%)"


def _hue(genre: str) -> int:
    return int.from_bytes(hashlib.sha256(genre.casefold().encode()).digest()[:4], "big") % 360


def _text(value: object) -> str:
    return " ".join(_NOT_XML.sub("", str(value or "")).split())
