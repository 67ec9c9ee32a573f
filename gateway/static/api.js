// The gateway's API as the page calls it: its own origin only, JSON both ways, the X-API-Key header once the person
// has given a key (kept in sessionStorage, so it lasts for the browser session and never travels in a URL).

export const KEY_STORE = "recommender-api-key";

export function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORE) || "";
  } catch {
    return ""; // storage refused (a privacy setting): no key, the gateway asks again
  }
}

export function saveKey(key) {
  sessionStorage.setItem(KEY_STORE, key);
}

export function jsonHeaders(withBody) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  if (withBody) headers["Content-Type"] = "application/json";
  return headers;
}

// One call: { status, data, sentKey } (status 0 when the gateway cannot be reached; `aborted` when `signal`, an
// AbortController's, cancelled it because a newer request replaced it).
export async function call(path, { method, body, signal } = {}) {
  const headers = jsonHeaders(body !== undefined);
  const sentKey = "X-API-Key" in headers;
  const init = { method: method ?? (body === undefined ? "GET" : "POST"), headers, signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  try {
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    return { status: response.status, data, sentKey };
  } catch (error) {
    return { status: 0, data: {}, sentKey, aborted: error?.name === "AbortError" };
  }
}

// A new AbortController for one kind of request, cancelling the one of the same kind still in flight: only the
// latest search or recommendation matters, and an older answer must neither cost the gateway nor be shown.
export function latest() {
  let controller = null;
  return () => {
    controller?.abort();
    controller = new AbortController();
    return controller.signal;
  };
}
