"""Stripe webhook events as Stripe sends them: a JSON event signed (Stripe-Signature) with the
endpoint secret, for payments' tests to deliver to POST /api/payments/webhooks."""

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx

WEBHOOK_PATH = "/api/payments/webhooks"


def stripe_event(
    event_type: str, data: dict[str, Any], *, created: int | None = None
) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "type": event_type,
        "created": created if created is not None else int(time.time()),
        "livemode": False,
        "api_version": "2024-06-20",
        "data": {"object": data},
    }


def signature(payload: bytes, secret: str, *, at: int | None = None) -> str:
    """Stripe's scheme: v1 = HMAC-SHA256 of "<timestamp>.<payload>" with the endpoint secret."""
    timestamp = at if at is not None else int(time.time())
    signed = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256)
    return f"t={timestamp},v1={signed.hexdigest()}"


async def deliver(
    client: httpx.AsyncClient, event: dict[str, Any], secret: str, *, at: int | None = None
) -> httpx.Response:
    payload = json.dumps(event).encode()
    return await client.post(
        WEBHOOK_PATH,
        content=payload,
        headers={
            "content-type": "application/json",
            "stripe-signature": signature(payload, secret, at=at),
        },
    )


def intent_data(
    intent_id: str,
    status: str,
    *,
    charge_id: str | None = None,
    error_code: str | None = None,
) -> dict[str, Any]:
    """A PaymentIntent as an event carries it (only what payments reads, plus Stripe's shape)."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": status,
        "amount": 2550,
        "currency": "usd",
        "metadata": {"charge_id": charge_id} if charge_id else {},
        "last_payment_error": (
            {"code": error_code, "message": "The card was declined."} if error_code else None
        ),
    }


def intent_succeeded(intent_id: str, *, charge_id: str | None = None) -> dict[str, Any]:
    """payment_intent.succeeded for that PaymentIntent (a new event id each time)."""
    return stripe_event(
        "payment_intent.succeeded", intent_data(intent_id, "succeeded", charge_id=charge_id)
    )


def refunded_charge_data(intent_id: str, refund_id: str) -> dict[str, Any]:
    return {
        "id": "ch_" + secrets.token_hex(8),
        "object": "charge",
        "payment_intent": intent_id,
        "amount": 2550,
        "amount_refunded": 2550,
        "refunded": True,
        "metadata": {},
        "refunds": {
            "object": "list",
            "data": [{"id": refund_id, "object": "refund", "amount": 2550}],
        },
    }


def dispute_data(intent_id: str, dispute_id: str, status: str) -> dict[str, Any]:
    return {
        "id": dispute_id,
        "object": "dispute",
        "payment_intent": intent_id,
        "charge": "ch_" + secrets.token_hex(8),
        "amount": 2550,
        "reason": "fraudulent",
        "status": status,
    }
