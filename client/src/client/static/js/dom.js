/** Small DOM helpers: build elements without innerHTML, page-level messages, back-button safety. */

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** The page's loading / empty message; empty text hides it. */
export function setStatus(text) {
  const status = document.querySelector("[data-status]");
  if (!status) return;
  status.textContent = text || "";
  status.hidden = !text;
}

/** Errors that concern no field of a form, shown at the top of the page. */
export function showPageErrors(errors) {
  const box = document.querySelector("[data-page-errors]");
  box.replaceChildren(...errors.map((error) => h("p", {}, error.message)));
}

export function clearPageErrors() {
  document.querySelector("[data-page-errors]").replaceChildren();
}

/**
 * Run `init` now, and again when the page comes back from the back/forward cache, so a page
 * reached with the back button shows what is true now (a ticket just reserved, an order paid).
 */
export function onPageShow(init) {
  init();
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) init();
  });
}

/**
 * Where `next` may send the browser: a path on `origin`, or "/" (never another site: that would
 * be an open redirect). The browser's own URL parser decides what `next` means, so its tricks
 * (tabs and newlines dropped, backslashes read as slashes, "/.//host") are judged as it reads them.
 */
export function safeNextPath(next, origin = window.location.origin) {
  if (!next) return "/";
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return "/";
  }
  if (url.origin !== origin) return "/";
  // "/.//evil.com" resolves to the path "//evil.com", which would read as another host when
  // navigated to: one leading slash only.
  const path = `/${url.pathname.replace(/^\/+/, "")}${url.search}${url.hash}`;
  return new URL(path, origin).origin === origin ? path : "/";
}

/** The local path in a query string's ?next=. */
export function nextPathFrom(search, origin = window.location.origin) {
  return safeNextPath(new URLSearchParams(search).get("next"), origin);
}

/** The local path in this page's ?next=. */
export function nextPath() {
  return nextPathFrom(window.location.search);
}

export function setTitle(text) {
  document.title = `${text} · GitTix`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
