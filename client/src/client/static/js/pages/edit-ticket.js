/** "Edit ticket": the owner changes the title and price of a ticket nobody has reserved. */

import { api, errorsOf } from "../api.js";
import { clearPageErrors, onPageShow, setStatus, showPageErrors } from "../dom.js";
import { requireUser } from "../session.js";
import { resetTicketForm, ticketForm } from "../ticket-form.js";

const form = document.getElementById("edit-form");
const ticketId = form.dataset.ticketId;

ticketForm(form, async (changes) => {
  await api("PUT", `/api/tickets/${ticketId}`, changes);
  window.location.replace(`/tickets/${ticketId}`);
});

async function init() {
  clearPageErrors();
  form.hidden = true;
  resetTicketForm(form);
  setStatus("Loading the ticket…");
  const user = await requireUser();
  if (!user) return;
  let ticket;
  try {
    ticket = await api("GET", `/api/tickets/${ticketId}`);
  } catch (error) {
    setStatus(error.status === 404 ? "This ticket does not exist." : "");
    if (error.status !== 404) showPageErrors(errorsOf(error));
    return;
  }
  if (ticket.userId !== user.id) {
    setStatus("You can only edit your own tickets.");
  } else if (ticket.orderId) {
    setStatus("A buyer has reserved or bought this ticket, so it can no longer be edited.");
  } else {
    setStatus("");
    form.elements.title.value = ticket.title;
    form.elements.price.value = Number(ticket.price).toFixed(2);
    form.hidden = false;
  }
}

onPageShow(init);
