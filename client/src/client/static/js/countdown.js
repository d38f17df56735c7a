/** A live "time left" for an order's expiresAt that ends in "Order expired". */

import { formatTimeLeft } from "./format.js";

export const EXPIRED_TEXT = "Order expired";

/** Starts ticking `element`; returns a function that stops it. `onExpired` runs once, at zero. */
export function startCountdown(element, expiresAt, { prefix = "Time left to pay: ", onExpired } = {}) {
  const deadline = Date.parse(expiresAt);
  let timer = null;
  const tick = () => {
    const left = deadline - Date.now();
    if (left <= 0) {
      element.textContent = EXPIRED_TEXT;
      element.classList.add("expired");
      timer = null;
      if (onExpired) onExpired();
      return;
    }
    element.classList.remove("expired");
    element.textContent = `${prefix}${formatTimeLeft(left)}`;
    // Wake on the next whole second before the deadline, so the display never lags and
    // "Order expired" appears at the deadline itself.
    timer = setTimeout(tick, left % 1000 || 1000);
  };
  tick();
  return () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
}
