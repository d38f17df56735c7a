/** "Sell a ticket": create a ticket, then show its page. */

import { api } from "../api.js";
import { clearPageErrors, onPageShow } from "../dom.js";
import { requireUser } from "../session.js";
import { resetTicketForm, ticketForm } from "../ticket-form.js";

const form = document.getElementById("sell-form");

ticketForm(form, async (ticket) => {
  const created = await api("POST", "/api/tickets", ticket);
  // Replace, so Back does not return to a filled-in form that would sell the ticket twice.
  window.location.replace(`/tickets/${created.id}`);
});

onPageShow(async () => {
  clearPageErrors();
  resetTicketForm(form);
  await requireUser();
});
