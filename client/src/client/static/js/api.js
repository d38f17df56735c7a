/** Same-origin calls to the GitTix APIs at /api/*: JSON in, JSON out, failures as ApiError. */

export class ApiError extends Error {
  /** @param {number} status HTTP status (0: the request never got an answer) */
  constructor(status, errors) {
    super(errors.map((error) => error.message).join(" "));
    this.status = status;
    this.errors = errors;
  }
}

export async function api(method, path, body) {
  // no-store: a page reached with Back must not show a cached answer (Chromium serves history
  // navigations' requests from the HTTP cache when it can).
  const init = {
    method,
    headers: { Accept: "application/json" },
    credentials: "same-origin",
    cache: "no-store",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, [{ message: "GitTix cannot be reached. Check your connection and try again." }]);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const errors = Array.isArray(data?.errors) && data.errors.length
      ? data.errors
      : [{ message: `Something went wrong (${response.status}). Please try again.` }];
    throw new ApiError(response.status, errors);
  }
  return data;
}

/** The errors to show for anything a page's code caught. */
export function errorsOf(error) {
  if (error instanceof ApiError) return error.errors;
  console.error(error);
  return [{ message: "Something went wrong on this page. Please reload it and try again." }];
}
