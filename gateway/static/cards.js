// The cards of the page: a film's cover, title (its IMDb link), year, genres, people; for a recommendation also why it
// was chosen, its score in words and a bar, and "More like this" / "Not this".

import { el, safeUrl } from "./dom.js";
import { sendEvent } from "./feedback.js";

// Words for a score, best first: the score is a similarity, about 0 to 1, and a close sequel scores far above a film
// that merely shares a genre or an era.
const MATCH_WORDS = [[0.6, "Very close match"], [0.35, "Close match"], [0.2, "Related"], [-Infinity, "Loosely related"]];
const FIELD_WORDS = { title: "title", genres: "genre", directors: "director", cast: "cast", writers: "writer" };

// A film's card: the query film's ("Your pick"), or a recommendation's, with why, its score and its two buttons;
// `onMark(film, "liked" | "disliked")` is called by "More like this" / "Not this", `onFollow(film)` when its IMDb
// link is followed (by default a `click` on the answer on screen).
export function card(film, isQuery, onMark, onFollow = (followed) => sendEvent(followed.id, "click", true)) {
  const body = el("div", { class: "card-body" },
    isQuery ? el("p", { class: "badge" }, "Your pick") : null,
    el("h3", {}, titleLink(film, isQuery, onFollow), " ", el("span", { class: "year" }, film.year ? `(${film.year})` : "")),
    el("p", { class: "genres" }, film.genres.join(", ")),
    film.directors.length ? el("p", {}, `Directed by ${film.directors.join(", ")}`) : null,
    film.cast.length ? el("p", {}, `With ${film.cast.slice(0, 3).join(", ")}`) : null);
  if (!isQuery) {
    const why = explain(film.because);
    if (why) body.append(el("p", { class: "because" }, why));
    body.append(score(film.score), actions(film, onMark));
  }
  return el("article", { class: isQuery ? "card query" : "card", "data-id": film.id }, cover(film), body);
}

// The film's IMDb page, in a new tab; following it from a recommendation is a `click`.
function titleLink(film, isQuery, onFollow) {
  const href = safeUrl(film.imdb_url);
  if (!href) return el("span", { class: "title" }, film.title);
  const link = el("a", { class: "title", href, target: "_blank", rel: "noopener" }, film.title);
  if (isQuery) return link;
  const followed = () => onFollow(film);
  link.addEventListener("click", followed); // also Enter on the link
  link.addEventListener("auxclick", (event) => event.button === 1 && followed()); // the middle button: a new tab
  return link;
}

// The score as a person reads it: words and a bar (its length the score, 0 to 1); the number itself on hover.
function score(value) {
  const words = MATCH_WORDS.find(([least]) => value >= least)[1];
  const fill = el("span", { class: "score-fill" });
  fill.style.width = `${Math.round(Math.min(1, Math.max(0, value)) * 100)}%`; // CSSOM: allowed by the page's CSP
  return el("p", { class: "score", title: `Score ${value.toFixed(2)} of 1` },
    el("span", { class: "score-bar", "aria-hidden": "true" }, fill), el("span", { class: "score-words" }, words));
}

// A fixed 2:3 box: the cover fills it when it loads; with no cover (or a broken one) the box stays as a placeholder.
function cover(film) {
  const box = el("div", { class: "cover" });
  const src = safeUrl(film.cover_url);
  if (!src) return box;
  const img = el("img", { src, alt: film.title, width: 200, height: 300, loading: "lazy", decoding: "async" });
  img.addEventListener("error", () => img.remove(), { once: true });
  box.append(img);
  return box;
}

function explain(because) {
  if (!because) return "";
  const plural = (list) => (list.length > 1 ? "s" : "");
  const match = because.query_match;
  return [
    because.directors?.length && `Same director${plural(because.directors)}: ${because.directors.join(", ")}`,
    because.cast?.length && `Also with ${someNames(because.cast, 4)}`,
    because.writers?.length && `Same writer${plural(because.writers)}: ${because.writers.join(", ")}`,
    because.genres?.length && `Also ${because.genres.join(", ")}`,
    match && `Its ${FIELD_WORDS[match.field] ?? match.field} matches: “${match.text}”`,
    because.also_liked && `${people(because.also_liked.people)} who liked ${because.also_liked.film} liked it too`,
  ].filter(Boolean).join(" · ");
}

function people(count) {
  return count === 1 ? "1 person" : `${count.toLocaleString("en")} people`;
}

function someNames(list, most) {
  const more = list.length - most;
  return more > 1 ? `${list.slice(0, most).join(", ")} and ${more} more` : list.join(", ");
}

function actions(film, onMark) {
  const button = (text, key) => {
    const node = el("button", { type: "button" }, text, el("span", { class: "visually-hidden" }, ` (${film.title})`));
    node.addEventListener("click", () => onMark(film, key));
    return node;
  };
  return el("div", { class: "actions" }, button("More like this", "liked"), button("Not this", "disliked"));
}
