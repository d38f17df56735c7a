/** The title-and-price form shared by "Sell a ticket" and "Edit ticket". */

import { errorsOf } from "./api.js";
import { busy, clearErrors, showErrors } from "./forms.js";
import { parsePrice } from "./format.js";

/** Calls `save({title, price})` on submit; shows its errors beside the fields. */
export function ticketForm(form, save) {
  const button = form.querySelector('button[type="submit"]');
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const title = form.elements.title.value.trim();
    const price = parsePrice(form.elements.price.value);
    const problems = [];
    if (!title) problems.push({ field: "title", message: "Enter a title." });
    if (price === null) problems.push({ field: "price", message: "Enter a price as a number, for example 20 or 12.50." });
    if (problems.length) {
      showErrors(form, problems);
      return;
    }
    busy(button, true);
    try {
      // On success `save` navigates away; the button stays disabled so it cannot save twice.
      await save({ title, price });
    } catch (error) {
      showErrors(form, errorsOf(error));
      busy(button, false);
    }
  });
}

export function resetTicketForm(form) {
  clearErrors(form);
  busy(form.querySelector('button[type="submit"]'), false);
}
