// The person's anonymous id: made on first use, kept in localStorage so that their feedback across visits is one
// user's (and a canary stays sticky), sent as `user`; dropped when they ask to be forgotten, and a new one is made
// on the next use. It names no one: a random UUID.

const USER_STORE = "recommender-user";
let unstored = null; // the id when localStorage refuses to keep one: it lasts as long as the page then

// The id, made now if there is none.
export function userId() {
  const known = storedUser();
  if (known) return known;
  const made = `anon-${randomId()}`;
  try {
    localStorage.setItem(USER_STORE, made);
  } catch {
    unstored = made;
  }
  return made;
}

// The id if one was made, else null (asking makes none).
export function storedUser() {
  try {
    return localStorage.getItem(USER_STORE) || unstored;
  } catch {
    return unstored;
  }
}

export function dropUser() {
  unstored = null;
  try {
    localStorage.removeItem(USER_STORE);
  } catch {
    // nothing was stored
  }
}

// crypto.randomUUID exists only in secure contexts (https, or loopback): a gateway opened over plain http on
// another address makes the same shape of id from getRandomValues.
function randomId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const hex = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
