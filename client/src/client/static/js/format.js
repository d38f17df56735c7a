/** How money, time left and order statuses read on every page. */

const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

/** 20 -> "$20.00" */
export function formatMoney(price) {
  return money.format(price);
}

/** Milliseconds -> "14:59" (or "1:02:03"), rounded up so it reads 0:00 only at the end. */
export function formatTimeLeft(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

export const STATUS_LABELS = {
  created: "Waiting for payment",
  awaiting_payment: "Payment processing",
  completed: "Completed",
  cancelled: "Cancelled",
};

export function statusLabel(status) {
  return STATUS_LABELS[status] || status;
}

/** An order that still holds its ticket and may yet be paid or expire. */
export function isOpen(order) {
  return order.status === "created" || order.status === "awaiting_payment";
}

/**
 * The number typed in a price field ("20", "$12.50"), or null when it is not a number at all.
 * Range and decimals are the API's to judge, so its message is the one a person sees.
 */
export function parsePrice(text) {
  const cleaned = text.trim().replace(/^\$\s*/, "").replace(/,/g, "");
  return /^-?(\d+(\.\d*)?|\.\d+)$/.test(cleaned) ? Number(cleaned) : null;
}
