/** The sign-up and sign-in forms: post the email and password, then go where the person was going. */

import { api, errorsOf } from "./api.js";
import { nextPath, onPageShow } from "./dom.js";
import { busy, clearErrors, showErrors } from "./forms.js";
import { loadSession } from "./session.js";

export function credentialsForm(form, endpoint) {
  const button = form.querySelector('button[type="submit"]');

  // Carry ?next= over to the other form (sign in <-> sign up).
  for (const link of document.querySelectorAll("[data-keep-next]")) {
    const next = nextPath();
    if (next !== "/") link.href = `${link.pathname}?next=${encodeURIComponent(next)}`;
  }

  onPageShow(async () => {
    clearErrors(form);
    busy(button, false);
    // Someone already signed in (or coming back here after signing in) has nothing to do here.
    if (await loadSession()) window.location.replace(nextPath());
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    busy(button, true);
    try {
      await api("POST", endpoint, {
        email: form.elements.email.value.trim(),
        password: form.elements.password.value,
      });
      window.location.replace(nextPath());
    } catch (error) {
      showErrors(form, errorsOf(error));
      busy(button, false);
    }
  });
}
