// The recommender's page: find a film with a typo-tolerant autocomplete, see films like it as cards, refine the list
// with filters, "More like this" and "Not this". The whole state lives in the URL, so a list can be reloaded, shared,
// and walked back and forth with the browser's history.
// It uses the gateway's API on its own origin only: GET /movies/search (autocomplete), GET /movies/genres (the genre
// filter), POST /movies/recommendations/ (the cards); with the X-API-Key header, kept in sessionStorage, once the
// gateway asks for a key (401). Every string from the API reaches the page through textContent or setAttribute.

const $ = (id) => document.getElementById(id);
const KEY_STORE = "recommender-api-key";
const TOP_NS = [5, 10, 20, 50];
const DEFAULT_N = 10;
const MAX_FILMS = 50; // liked and disliked films per request, at most
const DEBOUNCE_MS = 150;
const UNAVAILABLE = "The recommendation service is unavailable right now. Try again in a moment.";
const FIELD_WORDS = { title: "title", plot: "plot", genres: "genre", directors: "director", cast: "cast", writers: "writer" };

const input = $("search");
const listbox = $("suggestions");
const names = new Map(); // film id -> "Title (year)", for the chips
let state = readState(location.search);
let loadSeq = 0; // only the latest recommendation answer is shown
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
    n: TOP_NS.includes(n) ? n : DEFAULT_N,
  };
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
  return (text || "").split(",").map(toInt).filter((id) => id !== null && id >= 0).slice(-MAX_FILMS);
}

// Moves to a new state: a new history entry, then the request.
function navigate(next) {
  state = next;
  const url = `${location.pathname}${toQuery(state) ? `?${toQuery(state)}` : ""}`;
  if (url !== `${location.pathname}${location.search}`) history.pushState(null, "", url);
  return load();
}

// ---------- the API

async function api(path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const init = body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) };
  try {
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) askForKey(Boolean(key));
    return { status: response.status, data };
  } catch {
    return { status: 0, data: {} }; // the gateway itself is unreachable
  }
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
  const { status, data } = await api(`/movies/search?q=${encodeURIComponent(text)}&limit=8`);
  if (seq !== search.seq) return; // a later keystroke's answer wins
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
  navigate({ ...state, title: film.title, year: film.year ?? null, liked: [], disliked: [] });
}

// ---------- recommendations

async function load() {
  syncControls();
  renderChips();
  if (!state.title && !state.liked.length) return showIntro();
  const seq = ++loadSeq;
  $("results").setAttribute("aria-busy", "true");
  $("status").textContent = "Loading…";
  const { status, data } = await api("/movies/recommendations/", requestBody(state));
  if (seq !== loadSeq) return;
  $("results").removeAttribute("aria-busy");
  clearResults();
  if (status === 200) showResults(data);
  else showError(status, data);
}

function showResults(data) {
  for (const film of [data.query, ...data.liked, ...data.disliked, ...data.recommendations]) {
    if (film) names.set(film.id, label(film));
  }
  const heading = $("results-title");
  heading.textContent = data.query ? `Films like ${label(data.query)}` : "Films like your choices";
  heading.hidden = false;
  if (data.query) $("query-card").append(card(data.query, true));
  $("cards").append(...data.recommendations.map((film) => el("li", {}, card(film, false))));
  const count = data.recommendations.length;
  $("status").textContent = count ? `${count} film${count === 1 ? "" : "s"}.` : "";
  if (!count) $("message").append(el("p", {}, "No film fits these filters."));
  renderChips();
}

function card(film, isQuery) {
  const body = el("div", { class: "card-body" },
    isQuery ? el("p", { class: "badge" }, "Your pick") : null,
    el("h3", {}, titleLink(film), " ", el("span", { class: "year" }, film.year ? `(${film.year})` : "")),
    el("p", { class: "genres" }, film.genres.join(", ")),
    film.directors.length ? el("p", {}, `Directed by ${film.directors.join(", ")}`) : null,
    film.cast.length ? el("p", {}, `With ${film.cast.slice(0, 3).join(", ")}`) : null);
  if (!isQuery) {
    const why = explain(film.because);
    if (why) body.append(el("p", { class: "because" }, why));
    body.append(el("p", { class: "score" }, `Score ${film.score.toFixed(2)}`), actions(film));
  }
  return el("article", { class: isQuery ? "card query" : "card", "data-id": film.id }, cover(film), body);
}

function titleLink(film) {
  const href = safeUrl(film.imdb_url);
  if (!href) return el("span", { class: "title" }, film.title);
  return el("a", { class: "title", href, target: "_blank", rel: "noopener" }, film.title);
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
  ].filter(Boolean).join(" · ");
}

function someNames(list, most) {
  const more = list.length - most;
  return more > 1 ? `${list.slice(0, most).join(", ")} and ${more} more` : list.join(", ");
}

function actions(film) {
  const button = (text, key) => {
    const node = el("button", { type: "button" }, text, el("span", { class: "visually-hidden" }, ` (${film.title})`));
    node.addEventListener("click", () => navigate(mark(state, film.id, key)).then(focusResults));
    return node;
  };
  return el("div", { class: "actions" }, button("More like this", "liked"), button("Not this", "disliked"));
}

// `id` moved to the end of `key` (liked or disliked) and out of the other list.
function mark(s, id, key) {
  const other = key === "liked" ? "disliked" : "liked";
  return { ...s, [key]: [...s[key].filter((x) => x !== id), id].slice(-MAX_FILMS), [other]: s[other].filter((x) => x !== id) };
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
  $("alert").append(el("p", {}, UNAVAILABLE));
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
      navigate(next);
    });
    return el("li", {}, link, el("span", { class: "s-meta" }, ` ${film.genres?.join(", ") ?? ""}`));
  });
  $("message").append(el("p", {}, "Did you mean:"), el("ul", { class: "suggestion-links" }, ...links));
}

function clearResults() {
  for (const id of ["alert", "message", "query-card", "cards"]) $(id).replaceChildren();
  $("status").textContent = "";
  $("results-title").hidden = true;
  $("intro").hidden = true;
}

function showIntro() {
  loadSeq++; // an answer still on its way is not shown
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
  sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
  $("api-key").value = "";
  $("key-form").hidden = true;
  loadGenres();
  load();
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

// ---------- DOM helper: attributes by setAttribute, children as nodes or text nodes, never HTML

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

function label(film) {
  return film.year ? `${film.title} (${film.year})` : film.title;
}

function describe(film) {
  return [film.year, film.genres?.join(", ")].filter(Boolean).join(" · ");
}

function safeUrl(url) {
  if (!url) return null;
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
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
window.addEventListener("popstate", () => {
  state = readState(location.search);
  input.value = state.title;
  load();
});
$("filters").open = matchMedia("(min-width: 50rem)").matches;
loadGenres();
load();
