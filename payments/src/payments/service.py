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
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, Literal

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
    ChargeDispute,
    ChargeStatus,
    ChargeUpdated,
    ChargeUpdatedV2,
    OrderCreated,
    OrderStatus,
    UserCreated,
)
from common.metrics import CHARGES, REFUNDS
from common.mongo import Database
from common.types import price_to_cents, utc_now

from payments import repository
from payments.models import ChargeDocument, DisputeDocument
from payments.runtime import PaymentsRuntime
from payments.stripe_gateway import CardDeclined, Intent, StripeUnavailable

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
        status="created",  # a charge is announced at its start, before any outcome
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


def _dispute_announced(charge: ChargeDocument, dispute: DisputeDocument) -> ChargeUpdatedV2:
    """The charge's next version with its dispute's new state (only v2 can carry it)."""
    return ChargeUpdatedV2(
        **_charge_updated(charge).model_dump(),
        dispute=ChargeDispute(
            id=dispute["id"],
            status=dispute["status"],
            reason=dispute["reason"],
            amount=dispute["amount"],
        ),
    )


# --- paying --------------------------------------------------------------------------------------

AUTHENTICATION_FAILED = (
    "Your bank could not confirm this payment (3-D Secure was not completed), so nothing was "
    "charged and the order was cancelled."
)
PAYMENT_CANCELLED = "The payment was cancelled, so nothing was charged."
CANCELLED_BEFORE_PAYING = "The order was cancelled before the payment was made."
REFUNDED = "The order was cancelled before the payment went through; it has been refunded"


@dataclass(frozen=True)
class PaymentOutcome:
    """What the buyer is told: the charge, and while it waits for them (3-D Secure) or for
    Stripe (processing), what Stripe.js needs to go on."""

    charge: ChargeDocument
    waiting_for: Literal["requires_action", "processing"] | None = None
    client_secret: str | None = None
    payment_intent_id: str | None = None


def _lease(runtime: PaymentsRuntime) -> timedelta:
    return timedelta(seconds=runtime.settings.stripe_attempt_seconds)


async def pay(
    runtime: PaymentsRuntime, *, user: UserPayload, order_id: str, token: str
) -> PaymentOutcome:
    """Charge the order's price to the buyer's card. The outcome is a completed charge, or one
    waiting for the buyer's 3-D Secure challenge; paying again after the challenge resumes the
    same charge, which Stripe's answer then completes or fails."""
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
    """The order has a live charge: paid already, in flight elsewhere, unresolved or waiting
    for 3-D Secure (resume it: its PaymentIntent is looked up, not made again)."""
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
    return claimed


async def _order_cancelled(runtime: PaymentsRuntime, order_id: str) -> bool:
    order = await repository.find_order(runtime.db, order_id=order_id)
    return order is not None and order["status"] == "cancelled"


async def _advance(runtime: PaymentsRuntime, charge: ChargeDocument) -> Intent | None:
    """Take the attempt as far as Stripe lets it go now, resolving before retrying: a
    PaymentIntent Stripe created is retrieved, never created again; one it never confirmed is
    confirmed only for an order still open, and cancelled otherwise. None: Stripe never saw the
    attempt and the order is cancelled, so it is not made at all."""
    gateway = runtime.gateway
    charge_id = str(charge["_id"])
    confirm_key = f"confirm-{charge_id}"
    intent_id = charge.get("intent_id")
    if intent_id is None:
        if await _order_cancelled(runtime, charge["order_id"]):
            return None
        intent = await gateway.create_intent(
            amount=charge["amount"],
            token=charge["token"],
            receipt_email=charge.get("receipt_email"),
            charge_id=charge_id,
            order_id=charge["order_id"],
        )
        await repository.set_intent(runtime.db, charge_id=charge["_id"], intent_id=intent.id)
        charge["intent_id"] = intent.id
        if intent.status == "requires_confirmation":
            intent = await gateway.confirm_intent(intent.id, idempotency_key=confirm_key)
        return intent
    intent = await gateway.retrieve_intent(intent_id)
    if intent.status in ("requires_confirmation", "requires_action"):
        if await _order_cancelled(runtime, charge["order_id"]):
            intent = await gateway.cancel_intent(intent_id)
        elif intent.status == "requires_confirmation":
            intent = await gateway.confirm_intent(intent_id, idempotency_key=confirm_key)
    return intent


async def _attempt(
    runtime: PaymentsRuntime, charge: ChargeDocument, *, answer_buyer: bool
) -> PaymentOutcome:
    """One step of `charge` at Stripe, its outcome recorded. `answer_buyer`: a buyer waits for
    it, so a decline or an outage is raised to them (the sweeper's attempts raise nothing)."""
    db = runtime.db
    try:
        intent = await _advance(runtime, charge)
    except CardDeclined as declined:
        CHARGES.labels("declined").inc()
        await _cancel_quietly(runtime, charge.get("intent_id"))
        await _fail(runtime, charge, declined.message)
        if answer_buyer:
            raise PaymentDeclined(declined.message) from None
        return PaymentOutcome(charge)
    except StripeUnavailable:
        CHARGES.labels("unavailable").inc()
        await repository.release_attempt(db, charge_id=charge["_id"])
        if answer_buyer:
            raise Unavailable(UNAVAILABLE) from None
        return PaymentOutcome(charge)
    if intent is None:
        CHARGES.labels("cancelled").inc()
        await _fail(runtime, charge, CANCELLED_BEFORE_PAYING)
        if answer_buyer:
            raise InvalidState(CANCELLED)
        return PaymentOutcome(charge)
    if intent.status == "succeeded":
        CHARGES.labels("succeeded").inc()
        completed = await _complete(runtime, charge, intent.id)
        if await _order_cancelled(runtime, charge["order_id"]):
            # The order expired (or was cancelled) while the card was being charged.
            await refund_if_cancelled(runtime, order_id=charge["order_id"])
            if answer_buyer:
                raise Invalid(REFUNDED)
        return PaymentOutcome(completed)
    if intent.status in ("requires_payment_method", "canceled"):
        # Declined later, or 3-D Secure failed: the intent is cancelled so it can never take
        # money, and the charge fails at once, which cancels the order.
        message = AUTHENTICATION_FAILED if intent.status == "requires_payment_method" else None
        CHARGES.labels("declined").inc()
        await _cancel_quietly(runtime, intent.id)
        await _fail(runtime, charge, message or PAYMENT_CANCELLED)
        if answer_buyer:
            raise PaymentDeclined(message or PAYMENT_CANCELLED)
        return PaymentOutcome(charge)
    # Waiting for the buyer's challenge or for Stripe: the webhook (or the buyer paying again
    # after the challenge) records the outcome; nobody holds the attempt meanwhile.
    await repository.release_attempt(db, charge_id=charge["_id"])
    CHARGES.labels("pending").inc()
    if intent.status == "requires_action":
        return PaymentOutcome(charge, "requires_action", intent.client_secret, intent.id)
    return PaymentOutcome(charge, "processing", None, intent.id)


async def _cancel_quietly(runtime: PaymentsRuntime, intent_id: str | None) -> None:
    """Cancel an intent that failed; if Stripe cannot be reached it still takes no money
    without a confirmation, which GitTix never sends for a failed charge."""
    if intent_id is None:
        return
    try:
        await runtime.gateway.cancel_intent(intent_id)
    except (CardDeclined, StripeUnavailable):
        log.info("could not cancel PaymentIntent %s; it stays unconfirmed", intent_id)


async def _fail(runtime: PaymentsRuntime, charge: ChargeDocument, reason: str) -> None:
    await repository.fail_charge(
        runtime.db,
        runtime.outbox,
        charge=charge,
        reason=reason,
        event=_charge_updated(charge, status="failed"),
    )


async def _complete(
    runtime: PaymentsRuntime, charge: ChargeDocument, intent_id: str
) -> ChargeDocument:
    """`created` -> `completed` with its PaymentIntent (whoever records it first wins)."""
    completed = await repository.complete_charge(
        runtime.db,
        runtime.outbox,
        charge=charge,
        stripe_id=intent_id,
        event=_charge_updated(charge, status="completed", stripe_id=intent_id),
    )
    if completed is None:  # recorded by whoever else resolved this attempt
        completed = await repository.find_charge(runtime.db, charge_id=charge["_id"])
        assert completed is not None
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
            REFUNDS.labels("unavailable").inc()
            continue
        if await repository.record_refund(
            runtime.db,
            runtime.outbox,
            charge=charge,
            refund_id=refund_id,
            event=_charge_updated(charge, stripe_refund_id=refund_id),
        ):
            log.info("refunded charge %s of cancelled order %s", charge["_id"], charge["order_id"])
            REFUNDS.labels("refunded").inc()
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


# --- Stripe's webhook events: the source of truth ------------------------------------------------


async def apply_stripe_event(runtime: PaymentsRuntime, event: dict[str, Any]) -> bool:
    """Apply one verified webhook event; False when it was applied before (a redelivery).

    Each handling is idempotent and reads the charge as it is now, so events may come twice, in
    any order, or for a PaymentIntent GitTix does not know (acknowledged, nothing changes). The
    event id is remembered only once applied: an event that failed halfway is applied again
    when Stripe redelivers it.
    """
    event_id, event_type = event.get("id"), event.get("type")
    found = (event.get("data") or {}).get("object")
    if (
        not isinstance(event_id, str)
        or not isinstance(event_type, str)
        or not isinstance(found, dict)
    ):
        # Signed with our secret, yet not an event: nothing Stripe would send again differently.
        raise Invalid("Not a Stripe event")
    if await repository.stripe_event_applied(runtime.db, event_id=event_id):
        return False
    if event_type.startswith("payment_intent."):
        await _intent_event(runtime, event_type, found)
    elif event_type == "charge.refunded":
        await _refunded_event(runtime, found)
    elif event_type.startswith("charge.dispute."):
        await _dispute_event(runtime, found, created=int(event.get("created") or 0))
    else:
        log.info("Stripe event %s (%s) is not one GitTix acts on", event_id, event_type)
    await repository.remember_stripe_event(runtime.db, event_id=event_id, event_type=event_type)
    return True


async def _charge_of(
    runtime: PaymentsRuntime, intent_id: str | None, metadata: Any
) -> ChargeDocument | None:
    if not intent_id:
        return None
    charge_id = metadata.get("charge_id") if isinstance(metadata, dict) else None
    charge = await repository.find_charge_for_intent(
        runtime.db, intent_id=intent_id, charge_id=charge_id
    )
    if charge is None:
        log.info("Stripe event for PaymentIntent %s, which no charge knows", intent_id)
    return charge


async def _intent_event(runtime: PaymentsRuntime, event_type: str, intent: dict[str, Any]) -> None:
    charge = await _charge_of(runtime, intent.get("id"), intent.get("metadata"))
    if charge is None:
        return
    intent_id = str(intent["id"])
    if event_type == "payment_intent.succeeded":
        await _succeeded_event(runtime, charge, intent_id)
    elif event_type == "payment_intent.payment_failed" and charge["status"] == "created":
        error = intent.get("last_payment_error") or {}
        message = (
            AUTHENTICATION_FAILED
            if error.get("code") == "payment_intent_authentication_failure"
            else error.get("message") or "Your card was declined."
        )
        await _cancel_quietly(runtime, intent_id)
        await _fail(runtime, charge, message)
    elif event_type == "payment_intent.canceled" and charge["status"] == "created":
        await _fail(runtime, charge, PAYMENT_CANCELLED)


async def _money_taken(
    runtime: PaymentsRuntime, charge: ChargeDocument, intent_id: str
) -> ChargeDocument:
    """Stripe took the money for this charge: it completes if it had no outcome yet."""
    if charge["status"] == "created":
        return await _complete(runtime, charge, intent_id)
    return charge


async def _succeeded_event(
    runtime: PaymentsRuntime, charge: ChargeDocument, intent_id: str
) -> None:
    """The charge completes; its money goes back if its order ended cancelled, or if the
    charge had failed meanwhile."""
    charge = await _money_taken(runtime, charge, intent_id)
    if charge["status"] == "completed":
        if await _order_cancelled(runtime, charge["order_id"]):
            await refund_if_cancelled(runtime, order_id=charge["order_id"])
        return
    if charge["stripe_refund_id"] is not None:
        return
    # Never expected (a failed charge's intent is cancelled first), but money taken for a
    # failed charge must go back.
    log.error("money taken for failed charge %s (%s): refunding", charge["_id"], intent_id)
    try:
        refund_id = await runtime.gateway.refund(
            payment_intent_id=intent_id, idempotency_key=f"refund-{charge['_id']}"
        )
    except StripeUnavailable:
        raise Unavailable(UNAVAILABLE) from None  # Stripe redelivers the event later
    await repository.record_refund(
        runtime.db,
        runtime.outbox,
        charge=charge,
        refund_id=refund_id,
        stripe_id=intent_id,
        event=_charge_updated(charge, stripe_id=intent_id, stripe_refund_id=refund_id),
    )


async def _refunded_event(runtime: PaymentsRuntime, stripe_charge: dict[str, Any]) -> None:
    """A refund, GitTix's own or one made in Stripe's dashboard: the charge records it."""
    intent_id = stripe_charge.get("payment_intent")
    charge = await _charge_of(runtime, intent_id, stripe_charge.get("metadata"))
    if charge is None or intent_id is None:
        return
    refunds = (stripe_charge.get("refunds") or {}).get("data") or []
    if not refunds:
        log.warning("charge.refunded for %s without a refund in it", intent_id)
        return
    # A refund can arrive before the success it follows: the money was taken, so complete first.
    charge = await _money_taken(runtime, charge, str(intent_id))
    if charge["stripe_refund_id"] is not None:
        return
    refund_id = str(refunds[0]["id"])
    await repository.record_refund(
        runtime.db,
        runtime.outbox,
        charge=charge,
        refund_id=refund_id,
        stripe_id=None if charge["stripe_id"] else str(intent_id),
        event=_charge_updated(charge, stripe_id=str(intent_id), stripe_refund_id=refund_id),
    )


async def _dispute_event(
    runtime: PaymentsRuntime, dispute: dict[str, Any], *, created: int
) -> None:
    """A chargeback opened, changed or closed: the charge shows its latest state."""
    intent_id = dispute.get("payment_intent")
    charge = await _charge_of(runtime, intent_id, None)
    if charge is None or intent_id is None:
        return
    charge = await _money_taken(runtime, charge, str(intent_id))
    stored = charge.get("dispute")
    if stored is not None and stored["event_created"] > created:
        return  # a newer state of the dispute is recorded already
    state: DisputeDocument = {
        "id": str(dispute["id"]),
        "status": str(dispute.get("status")),
        "reason": dispute.get("reason"),
        "amount": int(dispute.get("amount") or 0),
        "event_created": created,
    }
    if stored is not None and {**stored, "event_created": created} == state:
        return
    await repository.record_dispute(
        runtime.db,
        runtime.outbox,
        charge=charge,
        dispute=state,
        event=_dispute_announced(charge, state),
    )
