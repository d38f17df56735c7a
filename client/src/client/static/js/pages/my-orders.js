/** "My orders": every order of the signed-in person with its ticket, status and time left. */

import { api, errorsOf } from "../api.js";
import { startCountdown } from "../countdown.js";
import { clearPageErrors, h, onPageShow, setStatus, showPageErrors } from "../dom.js";
import { formatMoney, isOpen, statusLabel } from "../format.js";
import { requireUser } from "../session.js";

const list = document.getElementById("order-list");
let stopCountdowns = [];

function orderItem(order) {
  const timeLeft = isOpen(order) ? h("span", { class: "time-left", role: "timer" }) : null;
  if (timeLeft) stopCountdowns.push(startCountdown(timeLeft, order.expiresAt, { prefix: "Time left: " }));
  return h(
    "li",
    { class: "card" },
    h("a", { class: "card-title", href: `/orders/${order.id}` }, order.ticket.title),
    h("span", { class: "price" }, formatMoney(order.ticket.price)),
    h("span", { class: `badge status-${order.status}` }, statusLabel(order.status)),
    timeLeft,
  );
}

async function init() {
  clearPageErrors();
  for (const stop of stopCountdowns) stop();
  stopCountdowns = [];
  const user = await requireUser();
  if (!user) return;
  let orders;
  try {
    orders = await api("GET", "/api/orders");
  } catch (error) {
    setStatus("");
    showPageErrors(errorsOf(error));
    return;
  }
  // Newest first: a later expiry means a later order.
  orders.sort((a, b) => Date.parse(b.expiresAt) - Date.parse(a.expiresAt));
  list.replaceChildren(...orders.map(orderItem));
  setStatus(orders.length ? "" : "You have no orders yet.");
}

onPageShow(init);
