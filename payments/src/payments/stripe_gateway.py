"""The Stripe gateway: PaymentIntents, Refunds and webhook events through Stripe's official SDK.

A payment is two requests, each with its own idempotency key: create the PaymentIntent (no money
moves; its id is stored at once), then confirm it. So an attempt whose outcome is unknown is
resolved by retrieving its PaymentIntent, and one that Stripe never confirmed is never confirmed
for an order that was cancelled meanwhile.

Every request ends as an answer (an `Intent`), a refusal (`CardDeclined`: Stripe's message for
the buyer) or `StripeUnavailable` (timeouts, connection errors, 5xx, rate limits), where the
caller does not know whether anything happened and must retry with the same idempotency key.
"""

import logging
from dataclasses import dataclass
from typing import Any

import stripe
from stripe.params import PaymentIntentCreateParams

from payments.settings import Settings

log = logging.getLogger("payments.stripe")

CURRENCY = "usd"
# What Stripe allows between an event's signing and its check (the SDK's default, 5 minutes).
WEBHOOK_TOLERANCE_SECONDS = 300


class CardDeclined(Exception):
    """Stripe refused the payment; `message` is Stripe's words for the buyer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StripeUnavailable(Exception):
    """Stripe could not be reached or failed; the outcome of the request is unknown."""


class BadSignature(Exception):
    """A webhook request that Stripe did not sign with our endpoint secret (or too old)."""


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent as GitTix reads it."""

    id: str
    # Stripe's status: requires_payment_method, requires_confirmation, requires_action,
    # processing, requires_capture, canceled or succeeded.
    status: str
    client_secret: str | None
    # Why the last attempt failed, in Stripe's words for the buyer (declined, not authenticated).
    failure: str | None = None


def _intent(found: Any) -> Intent:
    fields = found.to_dict()
    error = fields.get("last_payment_error") or {}
    return Intent(
        id=fields["id"],
        status=fields["status"],
        client_secret=fields.get("client_secret"),
        failure=error.get("message"),
    )


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
        self._webhook_secret = settings.stripe_webhook_secret

    async def create_intent(
        self,
        *,
        amount: int,
        token: str,
        receipt_email: str | None,
        charge_id: str,
        order_id: str,
    ) -> Intent:
        """Create (not confirm) a PaymentIntent for `amount` cents on the card `token`; the
        charge id is its idempotency key and, with the order id, its metadata (so an event
        for it finds the charge even if its id was never stored)."""
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": CURRENCY,
            "payment_method": token,
            # Cards only, confirmed by us: no redirect-based methods, no return_url.
            "automatic_payment_methods": {"enabled": False},
            "metadata": {"charge_id": charge_id, "order_id": order_id},
        }
        if receipt_email:
            params["receipt_email"] = receipt_email
        return await self._call(
            "create a PaymentIntent",
            self._client.v1.payment_intents.create_async(params, {"idempotency_key": charge_id}),
        )

    async def confirm_intent(self, intent_id: str, *, idempotency_key: str) -> Intent:
        """Confirm it: the card is charged now, or Stripe asks for 3-D Secure (requires_action)."""
        return await self._call(
            "confirm a PaymentIntent",
            self._client.v1.payment_intents.confirm_async(
                intent_id, options={"idempotency_key": idempotency_key}
            ),
        )

    async def retrieve_intent(self, intent_id: str) -> Intent:
        return await self._call(
            "retrieve a PaymentIntent", self._client.v1.payment_intents.retrieve_async(intent_id)
        )

    async def cancel_intent(self, intent_id: str) -> Intent:
        """Cancel it so it can never take money; a refusal (it succeeded or was cancelled
        meanwhile) answers with the intent as it now is."""
        try:
            return await self._call(
                "cancel a PaymentIntent", self._client.v1.payment_intents.cancel_async(intent_id)
            )
        except CardDeclined:
            return await self.retrieve_intent(intent_id)

    async def _call(self, what: str, request: Any) -> Intent:
        try:
            found = await request
        except stripe.CardError as error:
            raise CardDeclined(error.user_message or "Your card was declined.") from error
        except stripe.InvalidRequestError as error:
            # Stripe refused the request itself (unknown token, amount below its minimum, an
            # intent in the wrong state): it would be refused again on every retry.
            log.warning("Stripe refused to %s: %s", what, error)
            raise CardDeclined(error.user_message or "This payment cannot be made.") from error
        except stripe.StripeError as error:
            log.warning("Stripe unavailable to %s: %s", what, error)
            raise StripeUnavailable(str(error)) from error
        return _intent(found)

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

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event Stripe signed (Stripe-Signature, the endpoint secret, its tolerance)."""
        if not self._webhook_secret:
            raise BadSignature("no webhook endpoint secret is configured")
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self._webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except (stripe.SignatureVerificationError, ValueError) as error:
            raise BadSignature(str(error)) from error
        return dict(event.to_dict())

    async def close(self) -> None:
        await self._http.close_async()
