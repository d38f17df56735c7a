/**
 * Where the payment token comes from: Stripe Elements when the page carries a publishable key
 * (Stripe.js is only loaded then), otherwise the test card the person picked.
 */

import { ApiError } from "./api.js";

function stripeElements(key, form) {
  if (!window.Stripe) {
    return {
      ready: false,
      problem: "The card form could not be loaded. Check your connection and reload the page.",
    };
  }
  const stripe = window.Stripe(key);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  const slot = form.querySelector('[data-error-for="token"]');
  card.on("change", (event) => {
    slot.textContent = event.error ? event.error.message : "";
  });
  return {
    ready: true,
    async token() {
      const { paymentMethod, error } = await stripe.createPaymentMethod({ type: "card", card });
      if (error) throw new ApiError(400, [{ message: error.message, field: "token" }]);
      return paymentMethod.id;
    },
  };
}

function testCards(form) {
  return {
    ready: true,
    async token() {
      return form.elements.token.value;
    },
  };
}

export function paymentMethod(form) {
  const key = document.querySelector('meta[name="stripe-publishable-key"]');
  return key ? stripeElements(key.content, form) : testCards(form);
}
