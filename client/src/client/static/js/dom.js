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

/** The local path in ?next=, never another site (an open redirect). */
export function nextPath() {
  const next = new URLSearchParams(window.location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

export function setTitle(text) {
  document.title = `${text} · GitTix`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
