"""payments' HTTP route: POST /api/payments charges an order."""

from common.auth import RequiredUser
from common.mongo import parse_object_id
from fastapi import APIRouter, status

from payments import service
from payments.models import ChargeOut, PaymentBody
from payments.runtime import RuntimeDep

router = APIRouter(prefix="/api/payments", tags=["payments"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ChargeOut)
async def create_payment(body: PaymentBody, user: RequiredUser, runtime: RuntimeDep) -> ChargeOut:
    order_id = str(parse_object_id(body.order_id, field="orderId"))
    charge = await service.pay(runtime, user=user, order_id=order_id, token=body.token)
    return ChargeOut(id=str(charge["_id"]))
