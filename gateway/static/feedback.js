// What the person does with the films of the answer on screen, sent to POST /movies/feedback: `shown` once a card has
// been at least half in view, `click` when its link is followed, `like` ("More like this"), `dismiss` ("Not this").
// Each event names the answer's request_id (and the user the answer was asked for); the gateway counts each once
// per request, film and event. Feedback never gets in the person's way: a failure is a console message, nothing more.

import { apiKey, jsonHeaders } from "./api.js";
import { limits } from "./limits.js";

const FEEDBACK = "/movies/feedback";
const SHOWN_RATIO = 0.5; // share of a card in view for it to count as shown
const SHOWN_DELAY_MS = 400; // cards coming into view together (the first screen, a scroll) go as one batch

export const MAIN = "main"; // the answer of the page's main list
export const FOR_YOU = "for-you"; // the answer of the "For you" row

const watching = new Map(); // row -> { requestId, user, shown: Set of film ids sent or queued, pending: film ids to send, ... }

// Follows a new answer on screen in `row` (MAIN or FOR_YOU): `cards` are its recommendation cards (elements with
// data-id). What the row's previous answer still had to send goes first.
export function watchAnswer(requestId, user, cards, row = MAIN) {
  stopWatching(row);
  if (!requestId) return; // an answer without an id cannot be given feedback
  const watched = { requestId, user, shown: new Set(), pending: [], timer: 0, observer: null };
  watching.set(row, watched);
  if (typeof IntersectionObserver !== "function") {
    for (const node of cards) queueShown(watched, Number(node.dataset.id));
    return;
  }
  // bound to this answer: a callback already queued when a newer answer replaced it still counts for this one
  watched.observer = new IntersectionObserver((entries) => onView(watched, entries), { threshold: SHOWN_RATIO });
  for (const node of cards) watched.observer.observe(node);
}

// Sends what is queued and stops following the answer of `row` (its cards are no longer on screen).
export function stopWatching(row = MAIN) {
  const watched = watching.get(row);
  if (!watched) return;
  watched.observer?.disconnect();
  flushShown(watched, false);
  watching.delete(row);
}

// One event on a film of the answer in `row`. `leaving`: the page may be left now (a link followed), so the request
// must outlive it. Resolves once the gateway has answered it.
export function sendEvent(filmId, event, leaving = false, row = MAIN) {
  const watched = watching.get(row);
  if (!watched) return Promise.resolve();
  queueShown(watched, filmId); // acted on, so it was seen, even if never half in view
  flushShown(watched, leaving);
  return post([eventOf(watched, filmId, event)], leaving);
}

// The person was forgotten: nothing queued in their name is sent, and later events of the answers on screen go
// without a user (the gateway has unlinked those answers from them too).
export function unlinkUser() {
  for (const watched of watching.values()) {
    clearTimeout(watched.timer);
    watched.pending = [];
    watched.user = null;
  }
}

// The page is being hidden or left: what is queued goes now, in a request that outlives the page.
export function flushOnLeave() {
  for (const watched of watching.values()) flushShown(watched, true);
}

function onView(watched, entries) {
  for (const entry of entries) {
    if (!entry.isIntersecting || entry.intersectionRatio < SHOWN_RATIO) continue;
    watched.observer.unobserve(entry.target);
    queueShown(watched, Number(entry.target.dataset.id));
  }
}

function queueShown(watched, filmId) {
  if (!Number.isInteger(filmId) || watched.shown.has(filmId)) return;
  watched.shown.add(filmId);
  watched.pending.push(filmId);
  clearTimeout(watched.timer);
  watched.timer = setTimeout(() => flushShown(watched, false), SHOWN_DELAY_MS);
}

function flushShown(watched, leaving) {
  clearTimeout(watched.timer);
  const films = watched.pending.splice(0);
  if (films.length) post(films.map((id) => eventOf(watched, id, "shown")), leaving);
}

function eventOf(watched, filmId, event) {
  const item = { request_id: watched.requestId, film_id: filmId, event };
  if (watched.user) item.user = watched.user;
  return item;
}

// Sends events in batches the gateway takes. A beacon is what browsers keep sending after the page is gone, but it
// cannot carry the X-API-Key header: with a key, fetch with `keepalive` does the same and can.
function post(events, leaving) {
  const sent = [];
  for (let start = 0; start < events.length; start += limits.feedback) {
    const body = JSON.stringify({ events: events.slice(start, start + limits.feedback) });
    if (leaving && !apiKey() && beacon(body)) continue;
    sent.push(fetch(FEEDBACK, { method: "POST", headers: jsonHeaders(true), body, keepalive: leaving })
      .then(report)
      .catch((error) => console.warn("Feedback was not sent.", error)));
  }
  return Promise.all(sent);
}

function beacon(body) {
  try {
    return navigator.sendBeacon?.(FEEDBACK, new Blob([body], { type: "application/json" })) ?? false;
  } catch {
    return false; // a browser that refuses a JSON beacon: fetch then
  }
}

async function report(response) {
  const data = await response.json().catch(() => ({}));
  if (!response.ok) console.warn(`Feedback refused (${response.status}):`, data.detail ?? data);
  else if (data.errors?.length) console.warn("Some feedback events were refused:", data.errors);
}
