/** Who is signed in (GET /api/users/currentuser), and the header links that follow from it. */

import { api, errorsOf, refreshSession } from "./api.js";
import { showPageErrors } from "./dom.js";

function renderNav(user) {
  document.querySelector('[data-nav="signed-out"]').hidden = Boolean(user);
  document.querySelector('[data-nav="signed-in"]').hidden = !user;
  document.querySelector("[data-user-email]").textContent = user ? user.email : "";
}

/** The signed-in user or null; the header shows the matching links either way. */
export async function loadSession() {
  let user = null;
  try {
    user = (await api("GET", "/api/users/currentuser")).currentUser;
    // The access token lasts a minute; a session may still be there to refresh.
    if (!user && await refreshSession()) {
      user = (await api("GET", "/api/users/currentuser")).currentUser;
    }
  } catch (error) {
    showPageErrors(errorsOf(error));
  }
  renderNav(user);
  return user;
}

/** The signed-in user, or null after sending the browser to sign in (and back here after). */
export async function requireUser() {
  const user = await loadSession();
  if (!user) {
    const here = window.location.pathname + window.location.search;
    window.location.replace(`/signin?next=${encodeURIComponent(here)}`);
  }
  return user;
}
