// The recommender's page: find a film with a typo-tolerant autocomplete, see films like it as cards, refine the list
// with filters, "More like this" and "Not this". The whole state lives in the URL, so a list can be reloaded, shared,
// and walked back and forth with the browser's history.
// It uses the gateway's API on its own origin only: GET /movies/search (autocomplete), GET /movies/genres (the genre
// filter), POST /movies/recommendations/ (the cards), POST /movies/feedback (what the person saw and did: feedback.js),
// POST /movies/recommendations/ with the id alone ("For you": films from what the person liked, once they have),
// DELETE /movies/users/{id} ("Forget me"), and /openapi.json for the API's limits (limits.js); with the X-API-Key
// header, kept in sessionStorage, once the gateway asks for a key (401). Every string from the API reaches the page
// through textContent or setAttribute.

import { call, latest, saveKey } from "./api.js";
import { card } from "./cards.js";
import { describe, el, label } from "./dom.js";
import { FOR_YOU, MAIN, flushOnLeave, sendEvent, stopWatching, unlinkUser, watchAnswer } from "./feedback.js";
import { limits, loadLimits } from "./limits.js";
import { dropUser, storedUser, userId } from "./user.js";

const $ = (id) => document.getElementById(id);
const TOP_NS = [5, 10, 20, 50]; // the choices offered, up to the API's top_n limit
const DEFAULT_N = 10;
const SUGGESTIONS = 8; // autocomplete options, up to the API's search limit
const DEBOUNCE_MS = 150;
const FOR_YOU_N = 5; // films in the "For you" row
const UNAVAILABLE = "The recommendation service is unavailable right now. Try again in a moment.";
const FAILED = "The recommendation service failed on this request. Try again, or change the request.";
const TIMEOUT = "The recommendation service took too long to answer. Try again in a moment.";
const TOO_LARGE = "This request is too large for the gateway. Remove some liked or disliked films and try again.";

const input = $("search");
const listbox = $("suggestions");
const names = new Map(); // film id -> "Title (year)", for the chips
let state = readState(location.search);
let loadSeq = 0; // only the latest recommendation answer is shown
const recommendationSignal = latest(); // a newer recommendation request cancels the one in flight
const searchSignal = latest(); // likewise for the autocomplete
const forYouSignal = latest(); // likewise for the "For you" row
let forYouSeq = 0;
let lastLike = Promise.resolve(); // the latest "More like this" sent: "For you" asks once the gateway has it
const search = { timer: 0, seq: 0, results: [], text: "", active: -1 };

// ---------- state and URL

function readState(query) {
  const p = new URLSearchParams(query);
  const n = toInt(p.get("n"));
  return {
    title: p.get("title")?.trim() || "",
    year: toInt(p.get("year")),
    liked: ids(p.get("liked")),
    disliked: ids(p.get("disliked")),
    genres: (p.get("genres") || "").split(",").filter(Boolean),
    yearMin: toInt(p.get("year_min")),
    yearMax: toInt(p.get("year_max")),
    diversity: Math.min(1, Math.max(0, Number(p.get("diversity")) || 0)),
    n: topNs().includes(n) ? n : defaultN(),
  };
}

// How-many choices within the API's limit (its limit alone if it is below every choice).
function topNs() {
  const within = TOP_NS.filter((n) => n <= limits.topN);
  return within.length ? within : [limits.topN];
}

function defaultN() {
  const choices = topNs();
  return choices.includes(DEFAULT_N) ? DEFAULT_N : choices[choices.length - 1];
}

function toQuery(s) {
  const p = new URLSearchParams();
  const put = (key, value) => value !== null && value !== "" && value !== 0 && p.set(key, value);
  put("title", s.title);
  put("year", s.title ? s.year : null);
  put("liked", s.liked.join(","));
  put("disliked", s.disliked.join(","));
  put("genres", s.genres.join(","));
  put("year_min", s.yearMin);
  put("year_max", s.yearMax);
  put("diversity", s.diversity);
  put("n", s.n === DEFAULT_N ? null : s.n);
  return p.toString().replace(/%2C/g, ",");
}

// The request for a state. It carries no user id, so that the URL alone makes the list (a shared link shows what its
// sender saw): the person's history shapes the "For you" row only, and their id goes with the feedback.
function requestBody(s) {
  const body = { top_n: s.n };
  if (s.title) body.title = s.title;
  if (s.title && s.year) body.year = s.year;
  for (const key of ["liked", "disliked", "genres"]) if (s[key].length) body[key] = s[key];
  if (s.yearMin !== null) body.year_min = s.yearMin;
  if (s.yearMax !== null) body.year_max = s.yearMax;
  if (s.diversity) body.diversity = s.diversity;
  return body;
}

function toInt(text) {
  const value = Number.parseInt(text ?? "", 10);
  return Number.isInteger(value) ? value : null;
}

function ids(text) {
  return (text || "").split(",").map(toInt).filter((id) => id !== null && id >= 0).slice(-limits.films);
}

// Moves to a new state, then asks for it. Choosing a film (`push`) is a step Back returns from; a filter change
// replaces the current entry, so that a slider or a few checkboxes do not flood the history.
function navigate(next, { push = false } = {}) {
  state = next;
  writeUrl(push);
  return load();
}

function writeUrl(push) {
  const url = `${location.pathname}${toQuery(state) ? `?${toQuery(state)}` : ""}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

// ---------- the API

// A call to /movies/*; a 401 asks the person for the key.
async function api(path, options = {}) {
  const answer = await call(path, options);
  if (answer.status === 401) askForKey(Boolean(answer.sentKey));
  return answer;
}

// ---------- autocomplete (ARIA combobox)

function suggestSoon() {
  clearTimeout(search.timer);
  search.timer = setTimeout(suggest, DEBOUNCE_MS);
}

async function suggest() {
  const text = input.value.trim();
  const seq = ++search.seq;
  if (!text) return closeList();
  const limit = Math.min(SUGGESTIONS, limits.search);
  const path = `/movies/search?q=${encodeURIComponent(text)}&limit=${limit}`;
  const { status, data } = await api(path, { signal: searchSignal() });
  if (seq !== search.seq) return; // a later keystroke's answer wins (also when its request was cancelled)
  search.results = status === 200 ? data.results : [];
  search.text = text;
  search.active = -1;
  listbox.replaceChildren(...search.results.map(option));
  setExpanded(search.results.length > 0);
}

function option(film, index) {
  const item = el("li", { id: `suggestion-${index}`, role: "option", "aria-selected": "false" },
    el("span", { class: "s-title" }, film.title), el("span", { class: "s-meta" }, describe(film)));
  item.addEventListener("mousedown", (event) => event.preventDefault()); // keep focus in the input
  item.addEventListener("click", () => pick(film));
  return item;
}

function setExpanded(open) {
  listbox.hidden = !open;
  input.setAttribute("aria-expanded", String(open));
  if (!open) input.removeAttribute("aria-activedescendant");
}

function closeList() {
  clearTimeout(search.timer);
  searchSignal(); // a search still in flight is of no use now
  search.seq++;
  search.active = -1;
  setExpanded(false);
}

function move(step) {
  const count = search.results.length;
  if (!count) return;
  setExpanded(true);
  search.active = (search.active + step + count + (search.active < 0 && step < 0 ? 1 : 0)) % count;
  [...listbox.children].forEach((item, i) => item.setAttribute("aria-selected", String(i === search.active)));
  const current = listbox.children[search.active];
  input.setAttribute("aria-activedescendant", current.id);
  current.scrollIntoView({ block: "nearest" });
}

function onSearchKey(event) {
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    move(event.key === "ArrowDown" ? 1 : -1);
  } else if (event.key === "Enter") {
    event.preventDefault();
    const text = input.value.trim();
    const fresh = !listbox.hidden && search.text === text;
    if (!listbox.hidden && search.active >= 0) pick(search.results[search.active]);
    else if (fresh && search.results.length) pick(search.results[0]);
    else if (text) pick({ title: text, year: null });
  } else if (event.key === "Escape" && !listbox.hidden) {
    event.preventDefault();
    closeList();
  }
}

function pick(film) {
  closeList();
  input.value = film.title;
  navigate({ ...state, title: film.title, year: film.year ?? null, liked: [], disliked: [] }, { push: true });
}

// ---------- recommendations

async function load() {
  syncControls();
  renderChips();
  loadForYou();
  if (!state.title && !state.liked.length) return showIntro();
  const seq = ++loadSeq;
  $("results").setAttribute("aria-busy", "true");
  $("status").textContent = "Loading…";
  const body = requestBody(state);
  const user = userId(); // the id the answer's feedback is sent for (made now, on the first request)
  renderUser();
  const { status, data } = await api("/movies/recommendations/", { body, signal: recommendationSignal() });
  // A newer request was made meanwhile (it cancelled this one, or this answer came first): that one is shown.
  if (seq !== loadSeq) return;
  $("results").removeAttribute("aria-busy");
  clearResults();
  if (status === 200) showResults(data, user);
  else showError(status, data);
}

// `user`: the id the answer's feedback is for; it goes without it if the person was forgotten meanwhile.
function showResults(data, user) {
  for (const film of [data.query, ...data.liked, ...data.disliked, ...data.recommendations]) {
    if (film) names.set(film.id, label(film));
  }
  const heading = $("results-title");
  heading.textContent = data.query ? `Films like ${label(data.query)}` : "Films like your choices";
  heading.hidden = false;
  if (data.query) $("query-card").append(card(data.query, true));
  const cards = data.recommendations.map((film) => card(film, false, choose));
  $("cards").append(...cards.map((node) => el("li", {}, node)));
  watchAnswer(data.request_id, storedUser() === user ? user : null, cards);
  const count = data.recommendations.length;
  $("status").textContent = count ? `${count} film${count === 1 ? "" : "s"}.` : "";
  if (!count) $("message").append(el("p", {}, "No film fits these filters."));
  renderChips();
}

// "More like this" (`key` liked) or "Not this" (disliked) on a card of `row`: the event, which names that row's
// answer, then the list for the new choice.
function choose(film, key, row = MAIN) {
  const sent = sendEvent(film.id, key === "liked" ? "like" : "dismiss", false, row);
  if (key === "liked") lastLike = sent;
  navigate(mark(state, film.id, key), { push: true }).then(focusResults);
}

// ---------- "For you": films from the person's own history, once the gateway has one (404 unknown_user: no row)

async function loadForYou() {
  const seq = ++forYouSeq;
  const signal = forYouSignal();
  await lastLike.catch(() => {});
  const user = storedUser(); // asking makes no id: a person who never asked for films has no history
  const answer = user && seq === forYouSeq
    ? await api("/movies/recommendations/", { body: { user, top_n: FOR_YOU_N }, signal })
    : { status: 404, data: {} };
  if (seq !== forYouSeq || answer.aborted) return;
  const films = answer.status === 200 ? answer.data.recommendations : [];
  for (const film of films) names.set(film.id, label(film));
  const follow = (film) => sendEvent(film.id, "click", true, FOR_YOU);
  const cards = films.map((film) => card(film, false, (marked, key) => choose(marked, key, FOR_YOU), follow));
  $("for-you-cards").replaceChildren(...cards.map((node) => el("li", {}, node)));
  $("for-you").hidden = !films.length;
  watchAnswer(films.length ? answer.data.request_id : null, user, cards, FOR_YOU);
}

// `id` moved to the end of `key` (liked or disliked) and out of the other list.
function mark(s, id, key) {
  const other = key === "liked" ? "disliked" : "liked";
  return { ...s, [key]: [...s[key].filter((x) => x !== id), id].slice(-limits.films), [other]: s[other].filter((x) => x !== id) };
}

function renderChips() {
  for (const key of ["liked", "disliked"]) {
    $(`${key}-chips`).replaceChildren(...state[key].map((id) => chip(id, key)));
    $(`${key}-group`).hidden = !state[key].length;
  }
  $("picks").hidden = !state.liked.length && !state.disliked.length;
}

function chip(id, key) {
  const name = names.get(id) ?? `Film #${id}`;
  const remove = el("button", { type: "button", "aria-label": `Remove ${name}` }, "×");
  remove.addEventListener("click", () => navigate({ ...state, [key]: state[key].filter((x) => x !== id) }).then(focusResults));
  return el("li", { class: "chip" }, el("span", {}, name), remove);
}

// ---------- messages

function showError(status, data) {
  if (status === 404 && data.code === "unknown_title") return unknownTitle(data);
  if (status === 401) return $("message").append(el("p", {}, "This gateway needs an API key: enter it above."));
  if (status === 422) return $("message").append(el("p", {}, data.detail || "The request is not valid."));
  if (status === 413) return $("message").append(el("p", {}, TOO_LARGE));
  $("alert").append(el("p", {}, status === 502 ? FAILED : status === 504 ? TIMEOUT : UNAVAILABLE));
}

function unknownTitle(data) {
  const suggestions = data.suggestions?.length ? data.suggestions : (data.unresolved ?? []).flatMap((u) => u.suggestions);
  const what = state.title || data.unresolved?.[0]?.input?.title || "this title";
  $("message").append(el("p", {}, `No film matches “${what}”.`));
  if (!suggestions.length) return;
  const links = suggestions.map((film) => {
    const next = { ...state, title: film.title, year: film.year ?? null };
    const link = el("a", { href: `?${toQuery(next)}` }, label(film));
    link.addEventListener("click", (event) => {
      event.preventDefault();
      input.value = film.title;
      navigate(next, { push: true });
    });
    return el("li", {}, link, el("span", { class: "s-meta" }, ` ${film.genres?.join(", ") ?? ""}`));
  });
  $("message").append(el("p", {}, "Did you mean:"), el("ul", { class: "suggestion-links" }, ...links));
}

function clearResults() {
  stopWatching(); // the cards on screen go: what they still had to send goes now
  for (const id of ["alert", "message", "query-card", "cards"]) $(id).replaceChildren();
  $("status").textContent = "";
  $("results-title").hidden = true;
  $("intro").hidden = true;
}

function showIntro() {
  loadSeq++; // an answer still on its way is not shown
  recommendationSignal();
  $("results").removeAttribute("aria-busy");
  clearResults();
  $("intro").hidden = false;
}

// After a card's or a chip's button, whose node is gone: keyboard focus goes on to the new list.
function focusResults() {
  ($("results-title").hidden ? $("results") : $("results-title")).focus();
}

function askForKey(rejected) {
  $("key-form").hidden = false;
  $("key-label").textContent = rejected ? "That API key was not accepted. API key:" : "This gateway needs an API key:";
  if (document.activeElement !== input) $("api-key").focus();
}

function useKey(event) {
  event.preventDefault();
  saveKey($("api-key").value.trim());
  $("api-key").value = "";
  $("key-form").hidden = true;
  loadGenres();
  load();
}

// ---------- the anonymous id and "Forget me"

function renderUser() {
  const id = storedUser();
  if (id && $("user-known").hidden) $("forget-status").textContent = ""; // a new id: what was said of the old is past
  $("user-id").textContent = id ?? "";
  $("user-known").hidden = !id;
  $("user-none").hidden = Boolean(id);
}

// Asks the gateway to forget the person's events; the id is dropped once it has (or will have, 202), and the next
// request makes a new one. On an error the id stays, so the person can try again.
async function forgetMe() {
  const id = storedUser();
  if (!id) return renderUser();
  const button = $("forget");
  button.disabled = true;
  unlinkUser(); // nothing more is sent in this id's name
  const { status, data } = await api(`/movies/users/${encodeURIComponent(id)}`, { method: "DELETE" });
  button.disabled = false;
  if (status === 200 || status === 202) dropUser();
  renderUser();
  loadForYou();
  $("forget-status").textContent = forgetMessage(status, data);
}

function forgetMessage(status, data) {
  const next = "A new anonymous id will be made when you next ask for films.";
  if (status === 200) {
    const events = data.deleted === 1 ? "1 event" : `${data.deleted ?? 0} events`;
    return `Forgotten: ${events} deleted, and your past requests no longer carry your id. ${next}`;
  }
  if (status === 202) return `The event store is away right now: you will be forgotten as soon as it is back. ${next}`;
  if (status === 401) return "This gateway needs an API key to forget you: enter it above, then try again.";
  const why = data.detail ? ` (${data.detail})` : "";
  return `You could not be forgotten right now${why}. Your id is kept: try again in a moment.`;
}

// ---------- filters

async function loadGenres() {
  const { status, data } = await api("/movies/genres");
  const genres = status === 200 && Array.isArray(data.genres) ? data.genres : [];
  $("genre-filter").hidden = !genres.length; // an older gateway has no genre list: no genre filter then
  $("genre-list").replaceChildren(...genres.map((genre) => el("label", {},
    el("input", { type: "checkbox", value: genre.name }), ` ${genre.name} `,
    el("span", { class: "count" }, `${genre.films}`))));
  syncControls();
}

// The API's limits, once read: the controls offer no more than it takes, and a state over them (from a URL, or from
// the fallbacks) is clipped, its URL replaced and its films asked for again.
async function applyLimits() {
  if (!(await loadLimits())) return;
  renderLimits();
  const clipped = readState(toQuery(state));
  if (toQuery(clipped) === toQuery(state)) return;
  state = clipped;
  writeUrl(false);
  load();
}

function renderLimits() {
  $("top-n").replaceChildren(...topNs().map((n) => el("option", { value: n }, String(n))));
  for (const id of ["year-min", "year-max"]) {
    $(id).min = String(limits.yearMin);
    $(id).max = String(limits.yearMax);
  }
  input.maxLength = limits.titleChars;
  syncControls();
}

function syncControls() {
  if (document.activeElement !== input) input.value = state.title;
  for (const box of $("genre-list").querySelectorAll("input")) box.checked = state.genres.includes(box.value);
  $("year-min").value = state.yearMin ?? "";
  $("year-max").value = state.yearMax ?? "";
  $("diversity").value = String(state.diversity);
  $("diversity-value").value = state.diversity.toFixed(1);
  $("top-n").value = String(state.n);
}

function fromControls() {
  const checked = [...$("genre-list").querySelectorAll("input:checked")].map((box) => box.value);
  return {
    ...state,
    genres: $("genre-filter").hidden ? state.genres : checked,
    yearMin: toInt($("year-min").value),
    yearMax: toInt($("year-max").value),
    diversity: Number($("diversity").value),
    n: Number($("top-n").value),
  };
}

// ---------- wiring

input.addEventListener("input", suggestSoon);
input.addEventListener("keydown", onSearchKey);
input.addEventListener("blur", closeList);
$("search-form").addEventListener("submit", (event) => event.preventDefault());
$("filter-form").addEventListener("change", () => navigate(fromControls()));
$("filter-form").addEventListener("submit", (event) => {
  event.preventDefault();
  navigate(fromControls());
});
$("diversity").addEventListener("input", () => ($("diversity-value").value = Number($("diversity").value).toFixed(1)));
$("key-form").addEventListener("submit", useKey);
$("forget").addEventListener("click", forgetMe);
// What the cards on screen still have to send goes when the page is hidden or left (a tab closed, a link followed).
window.addEventListener("pagehide", flushOnLeave);
document.addEventListener("visibilitychange", () => document.visibilityState === "hidden" && flushOnLeave());
window.addEventListener("popstate", () => {
  state = readState(location.search);
  input.value = state.title;
  load();
});
$("filters").open = matchMedia("(min-width: 50rem)").matches;
renderLimits();
renderUser();
applyLimits();
loadGenres();
load();
