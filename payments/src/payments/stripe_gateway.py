"""The Stripe gateway: PaymentIntents and Refunds through Stripe's official SDK, async.

Every outcome is one of three: succeeded (the PaymentIntent id), declined (Stripe's message for
the buyer) or unavailable (timeouts, connection errors, 5xx, rate limits, bad configuration),
where the caller does not know whether money moved and must retry with the same idempotency key.
"""

import logging
from dataclasses import dataclass

import stripe
from stripe.params import PaymentIntentCreateParams

from payments.settings import Settings

log = logging.getLogger("payments.stripe")

CURRENCY = "usd"


class CardDeclined(Exception):
    """Stripe refused the payment; `message` is Stripe's words for the buyer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StripeUnavailable(Exception):
    """Stripe could not be reached or failed; the outcome of the request is unknown."""


@dataclass(frozen=True)
class Payment:
    payment_intent_id: str


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            # Unset: the SDK's default, Stripe itself.
            base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else {},
            max_network_retries=settings.stripe_max_network_retries,
            http_client=self._http,
        )

    async def charge(
        self, *, amount: int, token: str, receipt_email: str | None, idempotency_key: str
    ) -> Payment:
        """Create and confirm a PaymentIntent for `amount` cents on the card `token`."""
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": CURRENCY,
            "payment_method": token,
            # Cards only, confirmed here and now: no redirect-based methods, no return_url.
            "automatic_payment_methods": {"enabled": False},
            "confirm": True,
        }
        if receipt_email:
            params["receipt_email"] = receipt_email
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.CardError as error:
            raise CardDeclined(error.user_message or "Your card was declined.") from error
        except stripe.InvalidRequestError as error:
            # Stripe refused the request itself (unknown token, amount below its minimum): it
            # would be refused again on every retry, so this attempt has failed, like a decline.
            log.warning("Stripe refused a PaymentIntent: %s", error)
            raise CardDeclined(error.user_message or "This payment cannot be made.") from error
        except stripe.StripeError as error:
            log.warning("Stripe unavailable for a charge: %s", error)
            raise StripeUnavailable(str(error)) from error
        if intent.status != "succeeded":
            # Cards that need 3-D Secure are not supported by this checkout.
            raise CardDeclined("This card needs authentication, which is not supported here.")
        return Payment(payment_intent_id=intent.id)

    async def refund(self, *, payment_intent_id: str, idempotency_key: str) -> str:
        """Refund a PaymentIntent in full; returns the Refund id."""
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": payment_intent_id}, {"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as error:
            log.warning("refund of %s failed for now: %s", payment_intent_id, error)
            raise StripeUnavailable(str(error)) from error
        return refund.id

    async def close(self) -> None:
        await self._http.close_async()
