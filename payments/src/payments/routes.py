"""payments' HTTP routes: POST /api/payments charges an order; POST /api/payments/webhooks takes
Stripe's signed events (no session: Stripe's signature is its credential)."""

from common.auth import RequiredUser
from common.domain_errors import Invalid
from common.mongo import parse_object_id
from fastapi import APIRouter, Request, Response, status

from payments import service
from payments.models import ChargeOut, PaymentBody, WebhookOut
from payments.runtime import RuntimeDep
from payments.stripe_gateway import BadSignature

router = APIRouter(prefix="/api/payments", tags=["payments"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ChargeOut,
    response_model_exclude_none=True,
    responses={
        202: {
            "model": ChargeOut,
            "description": "The card needs 3-D Secure (requires_action, with the clientSecret "
            "Stripe.js needs) or Stripe is still processing; the order stays awaiting payment",
        }
    },
)
async def create_payment(
    body: PaymentBody, user: RequiredUser, runtime: RuntimeDep, response: Response
) -> ChargeOut:
    order_id = str(parse_object_id(body.order_id, field="orderId"))
    outcome = await service.pay(runtime, user=user, order_id=order_id, token=body.token)
    if outcome.waiting_for is not None:
        response.status_code = status.HTTP_202_ACCEPTED
    return ChargeOut(
        id=str(outcome.charge["_id"]),
        status=outcome.waiting_for,
        client_secret=outcome.client_secret,
        payment_intent_id=outcome.payment_intent_id,
    )


@router.post("/webhooks", response_model=WebhookOut)
async def stripe_webhook(request: Request, runtime: RuntimeDep) -> WebhookOut:
    """A Stripe event, verified by its Stripe-Signature; applied once per event id."""
    payload = await request.body()
    try:
        event = runtime.gateway.verify_event(payload, request.headers.get("stripe-signature"))
    except BadSignature:
        raise Invalid("Invalid Stripe signature", field="Stripe-Signature") from None
    await service.apply_stripe_event(runtime, event)
    return WebhookOut(received=True)
