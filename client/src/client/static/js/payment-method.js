/**
 * Where the payment token comes from, and how a 3-D Secure challenge is run.
 *
 * With a publishable key: Stripe's Payment Element (cards and the wallets Stripe offers the
 * browser), mounted once the order's amount is known. Without one: the test card the person
 * picked. Either way a card that asks for 3-D Secure is challenged by Stripe.js (make up serves
 * localstripe's stand-in), and Stripe's errors are shown in plain words.
 */

import { ApiError } from "./api.js";

const CURRENCY = "usd";
const NO_STRIPE_JS = "The card form could not be loaded. Check your connection and reload the page.";

/** Stripe's error codes, in words a buyer understands (Stripe's own message otherwise). */
const PLAIN_WORDS = {
  card_declined: "Your card was declined. Try another card.",
  expired_card: "Your card has expired. Try another card.",
  incorrect_cvc: "The security code (CVC) is wrong.",
  incorrect_number: "The card number is wrong.",
  insufficient_funds: "Your card has insufficient funds. Try another card.",
  processing_error: "Your card could not be processed. Try again in a moment.",
  payment_intent_authentication_failure:
    "Your bank could not confirm this payment (3-D Secure was not completed).",
};

export function plainWords(error) {
  if (!error) return "The payment could not be completed.";
  return PLAIN_WORDS[error.decline_code] || PLAIN_WORDS[error.code] || error.message ||
    "The payment could not be completed.";
}

function meta(name) {
  const found = document.querySelector(`meta[name="${name}"]`);
  return found ? found.content : null;
}

function stripeJs() {
  // Stripe() needs a publishable key; localstripe's stand-in (test cards) ignores it.
  return window.Stripe ? window.Stripe(meta("stripe-publishable-key") || "pk_test_gittix") : null;
}

function paymentElement(key, form) {
  if (!window.Stripe) return { ready: false, problem: NO_STRIPE_JS };
  const stripe = window.Stripe(key);
  const slot = form.querySelector('[data-error-for="token"]');
  let elements = null;
  return {
    ready: true,
    /** Mount the Payment Element for this amount (cents); once per page. */
    prepare(amountCents) {
      if (elements) return;
      elements = stripe.elements({
        mode: "payment",
        amount: amountCents,
        currency: CURRENCY,
        paymentMethodCreation: "manual",
      });
      const element = elements.create("payment");
      element.mount("#card-element");
      element.on("change", (event) => {
        slot.textContent = event.error ? plainWords(event.error) : "";
      });
    },
    async token() {
      const submitted = await elements.submit();
      if (submitted.error) {
        throw new ApiError(400, [{ message: plainWords(submitted.error), field: "token" }]);
      }
      const { paymentMethod, error } = await stripe.createPaymentMethod({ elements });
      if (error) throw new ApiError(400, [{ message: plainWords(error), field: "token" }]);
      return paymentMethod.id;
    },
  };
}

function testCards(form) {
  return {
    ready: true,
    prepare() {},
    async token() {
      return form.elements.token.value;
    },
  };
}

export function paymentMethod(form) {
  const key = meta("stripe-publishable-key");
  return key ? paymentElement(key, form) : testCards(form);
}

/**
 * Run the bank's 3-D Secure challenge for a PaymentIntent that requires action. Resolves to
 * null when Stripe.js reports no error (the server then reads the outcome from Stripe), or to
 * the plain words of what went wrong.
 */
export async function completeChallenge(clientSecret) {
  const stripe = stripeJs();
  if (!stripe) return NO_STRIPE_JS;
  const result = stripe.handleNextAction
    ? await stripe.handleNextAction({ clientSecret })
    : await stripe.confirmCardPayment(clientSecret);
  if (result.error) return plainWords(result.error);
  const intent = result.paymentIntent;
  if (intent && intent.status === "requires_payment_method") {
    return plainWords(intent.last_payment_error || { code: "payment_intent_authentication_failure" });
  }
  return null;
}
