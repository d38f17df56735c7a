/** Form errors: each next to the field it names (`field`), the rest at the top of the form. */

import { h } from "./dom.js";

export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  form.querySelector("[data-form-errors]").replaceChildren();
}

function fieldMessage(error) {
  // The API prefixes validation messages with the field ("price: ..."); beside the field
  // that prefix only repeats its label.
  const prefix = `${error.field}: `;
  const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  return message.charAt(0).toUpperCase() + message.slice(1);
}

export function showErrors(form, errors) {
  clearErrors(form);
  const general = [];
  let firstInvalid = null;
  for (const error of errors) {
    const slot = error.field ? form.querySelector(`[data-error-for="${CSS.escape(error.field)}"]`) : null;
    if (!slot) {
      general.push(error.message);
      continue;
    }
    const message = fieldMessage(error);
    slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
    const control = form.elements.namedItem(error.field);
    const inputs = control instanceof RadioNodeList ? [...control] : control ? [control] : [];
    for (const input of inputs) input.setAttribute("aria-invalid", "true");
    firstInvalid = firstInvalid || inputs[0] || null;
  }
  form.querySelector("[data-form-errors]").replaceChildren(...general.map((message) => h("p", {}, message)));
  if (firstInvalid) firstInvalid.focus();
}

/**
 * Marks a submit button as working (and stops double submits) until `busy(button, false)`.
 * Submit buttons are served disabled and enabled by the page script once it handles submit, so a
 * form sent before the script runs never posts itself (with a password) natively.
 */
export function busy(button, isBusy) {
  button.disabled = isBusy;
  if (isBusy) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}
