/**
 * One W3C trace per purchase: from the buyer's "Purchase" click to the order's end, every API
 * call carries a `traceparent` with the same trace id, so the services record the purchase as
 * one trace (docs/observability.md). Kept in sessionStorage (this tab only) with the page the
 * purchase is on; a call from any other page means the buyer left the flow, and ends it.
 */

const KEY = "gittix.purchaseTrace";

function randomHex(bytes) {
  const values = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(values, (value) => value.toString(16).padStart(2, "0")).join("");
}

function randomId(bytes) {
  // All zeros is an invalid id in W3C trace context; 2^-64 odds, but then draw again.
  for (;;) {
    const id = randomHex(bytes);
    if (/[^0]/.test(id)) return id;
  }
}

function stored() {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return typeof value?.traceId === "string" && typeof value?.page === "string" ? value : null;
  } catch {
    return null;
  }
}

function store(value) {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(value));
  } catch {
    // Storage refused (private mode, quota): the purchase still works, only untraced.
  }
}

/** The buyer starts a purchase on this page: a new trace. */
export function startPurchase() {
  store({ traceId: randomId(16), page: window.location.pathname });
}

/** The purchase goes on at `path` (the order page), in the same trace. */
export function continuePurchaseAt(path) {
  const purchase = stored();
  if (purchase) store({ ...purchase, page: path });
}

/** The purchase is over (order completed or cancelled, or abandoned). */
export function endPurchase() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing stored, then
  }
}

/**
 * The `traceparent` for a call made now, or null outside a purchase. A new parent span id per
 * call: each request is its own child of the purchase.
 */
export function purchaseTraceparent() {
  const purchase = stored();
  if (!purchase) return null;
  if (purchase.page !== window.location.pathname) {
    endPurchase();
    return null;
  }
  return `00-${purchase.traceId}-${randomId(8)}-01`;
}
