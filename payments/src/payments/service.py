"""payments' business rules: the charge flow (one Stripe attempt per charge, its outcome
recorded, refunds when owed), the orders and users replicas, and the events each change
announces. Routes, listeners and the sweeper call these; none of them knows HTTP or the bus.

Rules it keeps:
- a charge is recorded (`created`, ChargeCreated) before Stripe is called, so an order is never
  completed without a charge, and orders sees the attempt start (`awaiting_payment`);
- the charge id is the Stripe idempotency key: retrying an attempt whose outcome is unknown
  (timeout, 5xx, crash) replays it at Stripe instead of charging the card again;
- money taken for an order that ended cancelled is refunded (`stripeRefundId`, ChargeUpdated).
"""

import logging
from datetime import timedelta
from enum import Enum

from bson import ObjectId
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
from common.events import (
    ChargeCreated,
    ChargeStatus,
    ChargeUpdated,
    OrderCreated,
    OrderStatus,
    UserCreated,
)
from common.mongo import Database
from common.types import price_to_cents, utc_now

from payments import repository
from payments.models import ChargeDocument
from payments.runtime import PaymentsRuntime
from payments.stripe_gateway import CardDeclined, StripeUnavailable

log = logging.getLogger("payments.service")

UNAVAILABLE = "Payment service unavailable, try again"
ALREADY_PAID = "Order has already been paid"
CANCELLED = "Cannot pay for a cancelled order"


# --- the orders and users replicas ---------------------------------------------------------------


class ReplicaOutcome(Enum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already applied"
    AHEAD = "ahead"  # its predecessor has not been applied yet
    UNKNOWN = "unknown"  # the document's first event has not been applied yet

    @property
    def applicable_later(self) -> bool:
        """The event cannot be applied yet, and will be once what it follows arrives."""
        return self in (ReplicaOutcome.AHEAD, ReplicaOutcome.UNKNOWN)


def _versioned_outcome(written: bool, current: int | None, version: int) -> ReplicaOutcome:
    """Version N applies only on top of version N-1."""
    if written:
        return ReplicaOutcome.APPLIED
    if current is None:
        return ReplicaOutcome.UNKNOWN
    # Below this version, the write did not happen yet. At version - 1 too: the predecessor
    # was stored between the conditional write and this read (its own consumer runs beside
    # this one), so the event is applied on its next delivery, never taken as a repeat.
    if current < version:
        return ReplicaOutcome.AHEAD
    return ReplicaOutcome.ALREADY_APPLIED


async def add_order(db: Database, event: OrderCreated) -> ReplicaOutcome:
    """An order joins the replica as OrderCreated describes it; a repeat is already applied."""
    inserted = await repository.insert_order(
        db,
        {
            "_id": event.id,
            "version": event.version,
            "status": event.status,
            "user_id": event.user_id,
            "ticket_id": event.ticket.id,
            "amount": price_to_cents(event.ticket.price),
        },
    )
    return ReplicaOutcome.APPLIED if inserted else ReplicaOutcome.ALREADY_APPLIED


async def update_order_status(
    db: Database, *, order_id: str, version: int, status: OrderStatus
) -> ReplicaOutcome:
    written = await repository.write_order_status(
        db, order_id=order_id, version=version, status=status
    )
    current = None if written else await repository.order_version(db, order_id=order_id)
    return _versioned_outcome(written, current, version)


async def cancel_order(runtime: PaymentsRuntime, *, order_id: str, version: int) -> ReplicaOutcome:
    """The replica records the cancellation; then an unresolved attempt is resolved and money
    already taken for the order is refunded (also on a repeat: a refund Stripe could not take
    then is tried again, and one it cannot take now is left to the sweeper)."""
    outcome = await update_order_status(
        runtime.db, order_id=order_id, version=version, status="cancelled"
    )
    if not outcome.applicable_later:
        await settle_cancelled_order(runtime, order_id=order_id)
    return outcome


async def add_user(db: Database, event: UserCreated) -> ReplicaOutcome:
    """A user joins the replica; a repeat is already applied."""
    inserted = await repository.insert_user(
        db, {"_id": event.id, "email": event.email, "version": event.version}
    )
    return ReplicaOutcome.APPLIED if inserted else ReplicaOutcome.ALREADY_APPLIED


async def update_user_email(
    db: Database, *, user_id: str, version: int, email: str
) -> ReplicaOutcome:
    written = await repository.write_user_email(db, user_id=user_id, version=version, email=email)
    current = None if written else await repository.user_version(db, user_id=user_id)
    return _versioned_outcome(written, current, version)


# --- the events a charge announces ---------------------------------------------------------------


def _charge_created(charge: ChargeDocument) -> ChargeCreated:
    return ChargeCreated(
        id=str(charge["_id"]),
        version=charge["version"],
        order_id=charge["order_id"],
        status=charge["status"],
        amount=charge["amount"],
    )


def _charge_updated(
    charge: ChargeDocument,
    *,
    status: ChargeStatus | None = None,
    stripe_id: str | None = None,
    stripe_refund_id: str | None = None,
) -> ChargeUpdated:
    """The charge as its next version (read at `charge`, with these changes) will be."""
    return ChargeUpdated(
        id=str(charge["_id"]),
        version=charge["version"] + 1,
        order_id=charge["order_id"],
        status=status if status is not None else charge["status"],
        amount=charge["amount"],
        stripe_id=stripe_id if stripe_id is not None else charge["stripe_id"],
        stripe_refund_id=(
            stripe_refund_id if stripe_refund_id is not None else charge["stripe_refund_id"]
        ),
    )


# --- paying --------------------------------------------------------------------------------------


def _lease(runtime: PaymentsRuntime) -> timedelta:
    return timedelta(seconds=runtime.settings.stripe_attempt_seconds)


async def pay(
    runtime: PaymentsRuntime, *, user: UserPayload, order_id: str, token: str
) -> ChargeDocument:
    """Charge the order's price to the buyer's card; returns the completed charge."""
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
    now = utc_now()
    new_charge: ChargeDocument = {
        "_id": ObjectId(),
        "order_id": order["_id"],
        "user_id": order["user_id"],
        "status": "created",
        "live": True,
        "amount": order["amount"],
        "token": token,
        "receipt_email": stored_user["email"] if stored_user else user.email,
        "stripe_id": None,
        "stripe_refund_id": None,
        "version": 0,
        "created_at": now,
        "attempt_until": now + _lease(runtime),
    }
    charge = await repository.insert_charge(
        db, runtime.outbox, new_charge, _charge_created(new_charge)
    )
    if charge is None:
        charge = await _resume_live_charge(runtime, order_id=order_id)
    return await _attempt(runtime, charge, answer_buyer=True)


async def _resume_live_charge(runtime: PaymentsRuntime, *, order_id: str) -> ChargeDocument:
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
    runtime: PaymentsRuntime, charge: ChargeDocument, *, answer_buyer: bool
) -> ChargeDocument:
    """One Stripe attempt for `charge`, its outcome recorded. `answer_buyer`: a buyer waits for
    it, so a decline or an outage is raised to them (the sweeper's attempts raise nothing)."""
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
            db,
            runtime.outbox,
            charge=charge,
            reason=declined.message,
            event=_charge_updated(charge, status="failed"),
        )
        if answer_buyer:
            raise PaymentDeclined(declined.message) from None
        return failed or charge
    except StripeUnavailable:
        await repository.release_attempt(db, charge_id=charge["_id"])
        if answer_buyer:
            raise Unavailable(UNAVAILABLE) from None
        return charge
    stripe_id = payment.payment_intent_id
    completed = await repository.complete_charge(
        db,
        runtime.outbox,
        charge=charge,
        stripe_id=stripe_id,
        event=_charge_updated(charge, status="completed", stripe_id=stripe_id),
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


# --- refunds and what a failed request left behind -----------------------------------------------


async def refund_if_cancelled(runtime: PaymentsRuntime, *, order_id: str) -> int:
    """Refund every completed charge of a cancelled order; returns how many were refunded now.

    A refund Stripe cannot take right now stays flagged (`refund_due`) for the sweeper.
    """
    await repository.mark_refund_due(runtime.db, order_id=order_id)
    return await _refund_owed(
        runtime, await repository.charges_owed_a_refund(runtime.db, order_id=order_id)
    )


async def _refund_owed(runtime: PaymentsRuntime, charges: list[ChargeDocument]) -> int:
    refunded = 0
    for charge in charges:
        stripe_id = charge["stripe_id"]
        if stripe_id is None:  # only a completed charge is owed a refund, and it has its intent
            continue
        try:
            refund_id = await runtime.gateway.refund(
                payment_intent_id=stripe_id, idempotency_key=f"refund-{charge['_id']}"
            )
        except StripeUnavailable:
            continue
        if await repository.record_refund(
            runtime.db,
            runtime.outbox,
            charge=charge,
            refund_id=refund_id,
            event=_charge_updated(charge, stripe_refund_id=refund_id),
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
