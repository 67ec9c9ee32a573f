// The API's limits, read from the gateway's own OpenAPI document so the page never keeps a second copy of them.
// The fallbacks are used until the document has answered, or when it cannot be read: they are the limits the page
// was written against, and the gateway still refuses anything over its real limits with a message.

export const limits = {
  films: 50, // liked and disliked films per request, each list
  topN: 100, // films per answer
  search: 50, // autocomplete results per search
  feedback: 100, // events per feedback batch
  titleChars: 300,
  yearMin: 1800,
  yearMax: 2100,
};

// Fetches /openapi.json and fills `limits` with what it documents; resolves to whether anything changed. Never
// throws: the page works on the fallbacks.
export async function loadLimits() {
  try {
    const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return update(documented(await response.json()));
  } catch (error) {
    console.warn("The API's limits could not be read; the page uses its own.", error);
    return false;
  }
}

// The limits an OpenAPI document states, by the paths FastAPI gives them; a limit it does not state is left out.
function documented(doc) {
  const schemas = doc?.components?.schemas ?? {};
  const request = schemas.RecommendationRequest?.properties ?? {};
  const searchLimit = doc?.paths?.["/movies/search"]?.get?.parameters?.find((p) => p.name === "limit");
  return {
    films: Math.min(bound(request.liked, "maxItems") ?? Infinity, bound(request.disliked, "maxItems") ?? Infinity),
    topN: bound(request.top_n, "maximum"),
    search: bound(searchLimit?.schema, "maximum"),
    feedback: bound(schemas.FeedbackBatch?.properties?.events, "maxItems"),
    titleChars: bound(request.title, "maxLength"),
    yearMin: bound(request.year_min, "minimum"),
    yearMax: bound(request.year_max, "maximum"),
  };
}

// `key` of a property's schema, or of the first member of its `anyOf` (an optional field is `anyOf: [T, null]`).
function bound(schema, key) {
  const value = [schema, ...(schema?.anyOf ?? [])].map((s) => s?.[key]).find((v) => v !== undefined);
  return Number.isFinite(value) ? value : null;
}

function update(found) {
  let changed = false;
  for (const [name, value] of Object.entries(found)) {
    if (Number.isInteger(value) && value >= 0 && value !== limits[name]) {
      limits[name] = value;
      changed = true;
    }
  }
  return changed;
}
