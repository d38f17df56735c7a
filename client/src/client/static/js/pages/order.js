/** Order page: the ticket, a live countdown to expiresAt, and the payment form. */

import { api, errorsOf } from "../api.js";
import { EXPIRED_TEXT, startCountdown } from "../countdown.js";
import { clearPageErrors, h, onPageShow, setStatus, showPageErrors, sleep } from "../dom.js";
import { busy, clearErrors, showErrors } from "../forms.js";
import { formatMoney, isOpen, statusLabel } from "../format.js";
import { completeChallenge, paymentMethod } from "../payment-method.js";
import { endPurchase } from "../purchase-trace.js";
import { requireUser } from "../session.js";

const orderId = document.getElementById("order").dataset.orderId;
const details = document.getElementById("order-details");
const countdown = document.getElementById("countdown");
const outcome = document.getElementById("order-outcome");
const form = document.getElementById("payment-form");
const payButton = document.getElementById("pay-button");
const payment = paymentMethod(form);

let stopCountdown = () => {};
let expiredHere = false; // the countdown reached zero while this page was open
let paying = false;

const fetchOrder = () => api("GET", `/api/orders/${orderId}`);

/** Polls the order until `done(order)` (the services settle a payment or an expiry by events). */
async function waitForOrder(done, { attempts = 40, interval = 500 } = {}) {
  let order = await fetchOrder();
  for (let attempt = 1; !done(order) && attempt < attempts; attempt += 1) {
    await sleep(interval);
    order = await fetchOrder();
  }
  return order;
}

const OUTCOMES = {
  created: "",
  awaiting_payment: "Your payment is being processed…",
  completed: "Order completed. Your payment was received and the ticket is yours.",
  cancelled: "This order was cancelled. The ticket has been released.",
};

function render(order) {
  // Completed or cancelled: the purchase's trace ends here.
  if (!isOpen(order)) endPurchase();
  setStatus("");
  details.hidden = false;
  document.getElementById("order-ticket").replaceChildren(
    h("a", { href: `/tickets/${order.ticket.id}` }, order.ticket.title),
  );
  document.getElementById("order-price").textContent = formatMoney(order.ticket.price);
  document.getElementById("order-status").textContent = statusLabel(order.status);
  payButton.textContent = `Pay ${formatMoney(order.ticket.price)}`;

  stopCountdown();
  if (isOpen(order)) {
    countdown.hidden = false;
    stopCountdown = startCountdown(countdown, order.expiresAt, { onExpired: expired });
  } else if (order.status === "cancelled" && expiredHere) {
    countdown.hidden = false;
    countdown.textContent = EXPIRED_TEXT;
  } else {
    countdown.hidden = true;
  }
  if (!expiredHere || !isOpen(order)) {
    outcome.textContent = OUTCOMES[order.status] || "";
  }
  form.hidden = order.status !== "created" || expiredHere;
  if (!form.hidden && payment.ready) payment.prepare(Math.round(order.ticket.price * 100));
}

/**
 * Pay with `token`. A card that asks for 3-D Secure answers 202: the bank's challenge runs in
 * Stripe.js, then the same payment is asked for again and the server reads its outcome from
 * Stripe (if this tab is closed meanwhile, Stripe's webhook completes the order instead).
 */
async function pay(token) {
  const answer = await api("POST", "/api/payments", { orderId, token });
  if (answer && answer.status === "requires_action") {
    outcome.textContent = "Your bank asks you to confirm this payment…";
    const problem = await completeChallenge(answer.clientSecret);
    if (problem) outcome.textContent = problem;
    try {
      await api("POST", "/api/payments", { orderId, token });
    } catch (error) {
      // 400: Stripe's webhook settled it first (paid), or the order ran out meanwhile; the
      // order itself, fetched next, says which.
      if (error.status !== 400) throw error;
    }
  }
}

async function expired() {
  if (expiredHere) return; // poll for the cancellation once, not on every re-render
  expiredHere = true;
  form.hidden = true;
  outcome.textContent = "The time to pay ran out, so the ticket has been released.";
  if (paying) return; // the payment's own follow-up shows where the order ended up
  try {
    render(await waitForOrder((order) => !isOpen(order), { attempts: 20 }));
  } catch (error) {
    showPageErrors(errorsOf(error));
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (paying || !payment.ready) return;
  clearErrors(form);
  clearPageErrors();
  paying = true;
  busy(payButton, true);
  try {
    const token = await payment.token();
    await pay(token);
    form.hidden = true;
    outcome.textContent = "Payment received. Confirming your order…";
    render(await waitForOrder((order) => !isOpen(order)));
  } catch (error) {
    if (error.status === 402 || error.status === 400 || error.status === 404) {
      // A decline cancels the order; a 400 means it was already cancelled or paid. Either
      // way the form is going away, so the reason goes to the top of the page.
      showPageErrors(errorsOf(error));
      if (error.status !== 404) render(await waitForOrder((order) => !isOpen(order), { attempts: 20 }));
    } else {
      showErrors(form, errorsOf(error));
    }
  } finally {
    paying = false;
    busy(payButton, false);
  }
});

async function init() {
  clearPageErrors();
  stopCountdown();
  const user = await requireUser();
  if (!user) return;
  let order;
  try {
    order = await fetchOrder();
  } catch (error) {
    endPurchase();
    details.hidden = true;
    if (error.status === 404) setStatus("This order does not exist.");
    else if (error.status === 403) setStatus("This order belongs to someone else.");
    else {
      setStatus("");
      showPageErrors(errorsOf(error));
    }
    return;
  }
  render(order);
  if (payment.ready) busy(payButton, false);
  else showPageErrors([{ message: payment.problem }]);
  if (order.status === "awaiting_payment") render(await waitForOrder((o) => o.status !== "awaiting_payment"));
}

onPageShow(init);
