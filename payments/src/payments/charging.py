"""The charge flow: one Stripe attempt per charge, its outcome recorded, refunds when owed.

Rules it keeps:
- a charge is recorded (`created`, ChargeCreated) before Stripe is called, so an order is never
  completed without a charge, and orders sees the attempt start (`awaiting_payment`);
- the charge id is the Stripe idempotency key: retrying an attempt whose outcome is unknown
  (timeout, 5xx, crash) replays it at Stripe instead of charging the card again;
- money taken for an order that ended cancelled is refunded (`stripeRefundId`, ChargeUpdated).
"""

import asyncio
import logging
from datetime import timedelta
from typing import Any

from common.auth import UserPayload
from common.domain_errors import (
    Conflict,
    Forbidden,
    Invalid,
    InvalidState,
    NotFound,
    PaymentDeclined,
    Unavailable,
)
from common.types import utc_now

from payments import repository
from payments.runtime import PaymentsRuntime
from payments.stripe_gateway import CardDeclined, StripeUnavailable

log = logging.getLogger("payments.charging")

UNAVAILABLE = "Payment service unavailable, try again"
ALREADY_PAID = "Order has already been paid"
CANCELLED = "Cannot pay for a cancelled order"


def _lease(runtime: PaymentsRuntime) -> timedelta:
    return timedelta(seconds=runtime.settings.stripe_attempt_seconds)


async def pay(
    runtime: PaymentsRuntime, *, user: UserPayload, order_id: str, token: str
) -> dict[str, Any]:
    """POST /api/payments: charge the order's price to the buyer's card; the completed charge."""
    db = runtime.db
    order = await repository.find_order(db, order_id=order_id)
    if order is None:
        raise NotFound("Order not found")
    if order["user_id"] != user.id:
        raise Forbidden("You can only pay for your own orders")
    # A declined charge cancels the order; refuse before the cancellation even arrives,
    # rather than take money that would have to be refunded.
    if order["status"] == "cancelled" or await repository.has_failed_charge(db, order_id=order_id):
        raise InvalidState(CANCELLED)
    if order["status"] == "completed":
        raise InvalidState(ALREADY_PAID)
    stored_user = await repository.find_user(db, user_id=user.id)
    receipt_email = stored_user["email"] if stored_user else user.email
    charge = await repository.start_charge(
        db,
        runtime.outbox,
        order=order,
        token=token,
        receipt_email=receipt_email,
        lease=_lease(runtime),
    )
    if charge is None:
        charge = await _resume_live_charge(runtime, order_id=order_id)
    return await _attempt(runtime, charge, answer_buyer=True)


async def _resume_live_charge(runtime: PaymentsRuntime, *, order_id: str) -> dict[str, Any]:
    """The order has a live charge: paid already, in flight elsewhere, or unresolved (resume)."""
    live = await repository.find_live_charge(runtime.db, order_id=order_id)
    if live is None:  # it failed between our insert and this read: the buyer may try again
        raise Invalid("The previous payment attempt just failed; please try again")
    if live["status"] == "completed":
        raise InvalidState(ALREADY_PAID)
    claimed = await repository.claim_attempt(
        runtime.db, charge_id=live["_id"], lease=_lease(runtime)
    )
    if claimed is None:
        raise Conflict("A payment for this order is already in progress")
    # The earlier attempt's outcome is unknown: replay it (same card, same idempotency key), so
    # a charge Stripe already made is returned rather than made twice.
    return claimed


async def _attempt(
    runtime: PaymentsRuntime, charge: dict[str, Any], *, answer_buyer: bool
) -> dict[str, Any]:
    db = runtime.db
    try:
        payment = await runtime.gateway.charge(
            amount=charge["amount"],
            token=charge["token"],
            receipt_email=charge.get("receipt_email"),
            idempotency_key=str(charge["_id"]),
        )
    except CardDeclined as declined:
        failed = await repository.fail_charge(
            db, runtime.outbox, charge=charge, reason=declined.message
        )
        if answer_buyer:
            raise PaymentDeclined(declined.message) from None
        return failed or charge
    except StripeUnavailable:
        await repository.release_attempt(db, charge=charge)
        if answer_buyer:
            raise Unavailable(UNAVAILABLE) from None
        return charge
    completed = await repository.complete_charge(
        db, runtime.outbox, charge=charge, stripe_id=payment.payment_intent_id
    )
    if completed is None:  # recorded by whoever else replayed this attempt
        completed = await repository.find_charge(db, charge_id=charge["_id"])
        assert completed is not None
    order = await repository.find_order(db, order_id=charge["order_id"])
    if order is not None and order["status"] == "cancelled":
        # The order expired (or was cancelled) while the card was being charged.
        await refund_if_cancelled(runtime, order_id=charge["order_id"])
        if answer_buyer:
            raise Invalid(
                "The order was cancelled before the payment went through; it has been refunded"
            )
    return completed


async def refund_if_cancelled(runtime: PaymentsRuntime, *, order_id: str) -> int:
    """Refund every completed charge of a cancelled order; returns how many were refunded now.

    A refund Stripe cannot take right now stays flagged (`refund_due`) for the sweeper.
    """
    await repository.mark_refund_due(runtime.db, order_id=order_id)
    return await _refund_owed(
        runtime, await repository.charges_owed_a_refund(runtime.db, order_id=order_id)
    )


async def _refund_owed(runtime: PaymentsRuntime, charges: list[dict[str, Any]]) -> int:
    refunded = 0
    for charge in charges:
        try:
            refund_id = await runtime.gateway.refund(
                payment_intent_id=charge["stripe_id"], idempotency_key=f"refund-{charge['_id']}"
            )
        except StripeUnavailable:
            continue
        if await repository.record_refund(
            runtime.db, runtime.outbox, charge=charge, refund_id=refund_id
        ):
            log.info("refunded charge %s of cancelled order %s", charge["_id"], charge["order_id"])
            refunded += 1
    return refunded


async def settle_cancelled_order(runtime: PaymentsRuntime, *, order_id: str) -> None:
    """An order ended cancelled: resolve its unresolved attempt, then refund what was taken."""
    live = await repository.find_live_charge(runtime.db, order_id=order_id)
    if live is not None and live["status"] == "created":
        claimed = await repository.claim_attempt(
            runtime.db, charge_id=live["_id"], lease=_lease(runtime)
        )
        if claimed is not None:
            await _attempt(runtime, claimed, answer_buyer=False)
    await refund_if_cancelled(runtime, order_id=order_id)


async def sweep_once(runtime: PaymentsRuntime) -> None:
    """Retry what a failed request or a Stripe outage left: owed refunds, unresolved attempts."""
    await _refund_owed(runtime, await repository.charges_owed_a_refund(runtime.db))
    for charge in await repository.unresolved_attempts(runtime.db, now=utc_now()):
        order = await repository.find_order(runtime.db, order_id=charge["order_id"])
        # An open order's unresolved attempt waits for its buyer to retry (or for its expiry).
        if order is not None and order["status"] == "cancelled":
            await settle_cancelled_order(runtime, order_id=charge["order_id"])


async def run_sweeper(runtime: PaymentsRuntime) -> None:
    """Background task: sweep periodically; closes the Stripe client when the service stops."""
    try:
        while True:
            try:
                await sweep_once(runtime)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("payments sweep failed; trying again later")
            await asyncio.sleep(runtime.settings.payments_sweep_seconds)
    finally:
        await runtime.gateway.close()
