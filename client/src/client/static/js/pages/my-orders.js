/** "My orders": the signed-in person's orders, newest first, a page at a time ("Load more"), each
 * with its ticket, status and time left. */

import { errorsOf } from "../api.js";
import { startCountdown } from "../countdown.js";
import { clearPageErrors, h, onPageShow, setStatus, showPageErrors } from "../dom.js";
import { formatMoney, isOpen, statusLabel } from "../format.js";
import { showPaged } from "../paging.js";
import { requireUser } from "../session.js";

const list = document.getElementById("order-list");
const more = document.getElementById("load-more");
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
  let shown;
  try {
    // The API lists them newest first, a page at a time.
    shown = await showPaged(list, more, "/api/orders", orderItem);
  } catch (error) {
    setStatus("");
    showPageErrors(errorsOf(error));
    return;
  }
  setStatus(shown ? "" : "You have no orders yet.");
}

onPageShow(init);
