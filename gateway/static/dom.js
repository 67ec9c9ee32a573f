// Building the page's nodes: attributes by setAttribute, children as nodes or text nodes, never HTML, so no string
// from the API can become markup.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

// "Title (year)", or the title alone.
export function label(film) {
  return film.year ? `${film.title} (${film.year})` : film.title;
}

// "year · genres", under a suggestion's title.
export function describe(film) {
  return [film.year, film.genres?.join(", ")].filter(Boolean).join(" · ");
}

// An http(s) URL as given, else null: no javascript: or data: URL from a catalog becomes a link or an image.
export function safeUrl(url) {
  if (!url) return null;
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}
