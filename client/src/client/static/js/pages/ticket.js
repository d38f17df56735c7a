/** Ticket page: title, price, and what this person can do with it (buy, edit, see their order). */

import { api, errorsOf } from "../api.js";
import { clearPageErrors, h, onPageShow, setStatus, setTitle, showPageErrors, sleep } from "../dom.js";
import { busy } from "../forms.js";
import { formatMoney } from "../format.js";
import { continuePurchaseAt, endPurchase, startPurchase } from "../purchase-trace.js";
import { loadSession } from "../session.js";

const section = document.getElementById("ticket");
const ticketId = section.dataset.ticketId;
const details = document.getElementById("ticket-details");
const heading = document.getElementById("ticket-title");
const availability = document.getElementById("ticket-availability");
const actions = document.getElementById("ticket-actions");

async function createOrder() {
  // A ticket listed a moment ago may not have reached the orders service yet (it learns of
  // tickets from events), so "unknown ticket" is worth a couple of quick retries.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api("POST", "/api/orders", { ticketId });
    } catch (error) {
      if (error.status !== 404 || attempt === 3) throw error;
      await sleep(500 * attempt);
    }
  }
}

function purchaseButton() {
  const button = h("button", { type: "button" }, "Purchase");
  button.addEventListener("click", async () => {
    clearPageErrors();
    busy(button, true);
    startPurchase();
    try {
      const order = await createOrder();
      continuePurchaseAt(`/orders/${order.id}`);
      window.location.assign(`/orders/${order.id}`);
    } catch (error) {
      endPurchase();
      showPageErrors(errorsOf(error));
      busy(button, false);
      if (error.status === 400) init(); // most likely reserved meanwhile: show that
    }
  });
  return button;
}

async function callersOrder(ticket) {
  // The caller's own order for this ticket, if they hold it.
  try {
    const orders = await api("GET", "/api/orders");
    return orders.find((order) => order.id === ticket.orderId) || null;
  } catch {
    return null;
  }
}

async function renderActions(user, ticket) {
  if (!ticket.orderId) {
    availability.textContent = "Available";
    if (!user) {
      return [h("a", { href: `/signin?next=${encodeURIComponent(window.location.pathname)}` }, "Sign in to buy this ticket")];
    }
    if (ticket.userId === user.id) {
      return [h("p", {}, "This is your ticket."), h("a", { href: `/tickets/${ticket.id}/edit` }, "Edit ticket")];
    }
    return [purchaseButton()];
  }
  if (user && ticket.userId === user.id) {
    availability.textContent = "A buyer has reserved or bought this ticket, so it can no longer be edited.";
    return [];
  }
  const order = user ? await callersOrder(ticket) : null;
  if (order) {
    availability.textContent = order.status === "completed" ? "You bought this ticket." : "You have reserved this ticket.";
    return [h("a", { href: `/orders/${order.id}` }, "Go to your order")];
  }
  availability.textContent = "Someone else has reserved or bought this ticket.";
  return [];
}

async function init() {
  clearPageErrors();
  const [user, ticket] = await Promise.all([
    loadSession(),
    api("GET", `/api/tickets/${ticketId}`).catch((error) => {
      if (error.status === 404) setStatus("This ticket does not exist.");
      else {
        setStatus("");
        showPageErrors(errorsOf(error));
      }
      return null;
    }),
  ]);
  if (!ticket) {
    details.hidden = true;
    return;
  }
  heading.textContent = ticket.title;
  setTitle(ticket.title);
  document.getElementById("ticket-price").textContent = formatMoney(ticket.price);
  actions.replaceChildren(...(await renderActions(user, ticket)));
  setStatus("");
  details.hidden = false;
}

onPageShow(init);
