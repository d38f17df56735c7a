/**
 * Sign-out page: opening it only asks; the session ends when the person presses the button, so a
 * link (or another site's page) can never sign anyone out.
 */

import { api, errorsOf } from "../api.js";
import { clearPageErrors, onPageShow, setStatus, showPageErrors } from "../dom.js";
import { busy } from "../forms.js";
import { loadSession } from "../session.js";

const form = document.getElementById("signout-form");
const button = form.querySelector('button[type="submit"]');

onPageShow(async () => {
  busy(button, false);
  const user = await loadSession();
  form.hidden = !user;
  setStatus(user ? "" : "You are signed out.");
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearPageErrors();
  busy(button, true);
  try {
    await api("POST", "/api/users/signout", {});
    window.location.replace("/");
  } catch (error) {
    showPageErrors(errorsOf(error));
    busy(button, false);
  }
});
