/** Same-origin calls to the GitTix APIs at /api/*: JSON in, JSON out, failures as ApiError. */

import { purchaseTraceparent } from "./purchase-trace.js";

export class ApiError extends Error {
  /** @param {number} status HTTP status (0: the request never got an answer) */
  constructor(status, errors) {
    super(errors.map((error) => error.message).join(" "));
    this.status = status;
    this.errors = errors;
  }
}

const REFRESH_PATH = "/api/users/refresh";
// Answers that a refresh cannot change: the session calls themselves.
const NO_RETRY = new Set([REFRESH_PATH, "/api/users/signin", "/api/users/signup", "/api/users/signout"]);
let refreshing = null;
// Refreshes that worked on this page: a call sent before one of them may come back 401 after it.
let refreshed = 0;

/**
 * Swap this browser's refresh token (an HttpOnly cookie only auth sees) for a new access token,
 * which lasts a minute. One at a time per page: two calls at once share the same refresh, since
 * presenting a used refresh token twice ends the session. Resolves to whether it worked.
 */
export function refreshSession() {
  refreshing ??= fetch(REFRESH_PATH, {
    method: "POST",
    headers: traced({ Accept: "application/json", "Content-Type": "application/json" }),
    body: "{}",
    credentials: "same-origin",
    cache: "no-store",
  })
    .then((response) => response.ok, () => false)
    .then((ok) => {
      if (ok) refreshed += 1;
      return ok;
    })
    .finally(() => { refreshing = null; });
  return refreshing;
}

export async function api(method, path, body) {
  return (await request(method, path, body)).data;
}

/**
 * One page of a paginated list: its items, and the path of the next page (from the Link
 * header's rel="next", RFC 8288), or null on the last page.
 */
export async function apiPage(path) {
  const { data, response } = await request("GET", path);
  return { items: data, next: nextPage(response.headers.get("Link")) };
}

function nextPage(link) {
  const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link ?? "");
  return match ? match[1] : null;
}

async function request(method, path, body) {
  const sentAfter = refreshed;
  let response = await send(method, path, body);
  // The access token ran out (or was refused): get a new one and try once more. If another call
  // refreshed the session while this one was out, the new token is already here: a late 401
  // must not start a second refresh.
  if (response.status === 401 && !NO_RETRY.has(path)
      && (refreshed !== sentAfter || await refreshSession())) {
    response = await send(method, path, body);
  }
  if (response.status === 204) return { data: null, response };
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const errors = Array.isArray(data?.errors) && data.errors.length
      ? data.errors
      : [{ message: `Something went wrong (${response.status}). Please try again.` }];
    throw new ApiError(response.status, errors);
  }
  return { data, response };
}

/** `headers`, plus the purchase's trace context while a purchase is in progress. */
function traced(headers) {
  const traceparent = purchaseTraceparent();
  return traceparent ? { ...headers, traceparent } : headers;
}

async function send(method, path, body) {
  // no-store: a page reached with Back must not show a cached answer (Chromium serves history
  // navigations' requests from the HTTP cache when it can).
  const init = {
    method,
    headers: traced({ Accept: "application/json" }),
    credentials: "same-origin",
    cache: "no-store",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(path, init);
  } catch {
    throw new ApiError(0, [{ message: "GitTix cannot be reached. Check your connection and try again." }]);
  }
}

/** The errors to show for anything a page's code caught. */
export function errorsOf(error) {
  if (error instanceof ApiError) return error.errors;
  console.error(error);
  return [{ message: "Something went wrong on this page. Please reload it and try again." }];
}
